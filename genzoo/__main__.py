"""``python -m genzoo``: the same command line as the ``genzoo`` entry point."""

import sys

from genzoo.cli import main

if __name__ == "__main__":
    sys.exit(main())
