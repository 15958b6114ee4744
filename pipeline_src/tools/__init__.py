"""Tools: the `emerald` command line, the demo, the synthetic photos."""
