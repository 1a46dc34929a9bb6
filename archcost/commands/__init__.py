"""One module per CLI command. Each defines ``add_parser(sub)``, which adds its subparser and sets
``run``; the module imports only argparse-level things at import time, so heavy libraries
(numba, matplotlib) load only inside the command that needs them."""
