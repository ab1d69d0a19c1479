"""core floor of colorbench (see ARCHITECTURE.md)."""
