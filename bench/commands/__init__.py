"""commands floor of colorbench (see ARCHITECTURE.md)."""
