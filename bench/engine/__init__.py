"""engine floor of colorbench (see ARCHITECTURE.md)."""
