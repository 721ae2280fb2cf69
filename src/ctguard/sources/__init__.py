"""One module per kind of input: a pure ``parse_*(text)`` and a thin ``read_*(host)``."""
