"""One module per member or staff flow; each exposes build_handler()."""
