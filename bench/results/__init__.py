"""results floor of colorbench (see ARCHITECTURE.md)."""
