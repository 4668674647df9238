"""``python -m bench.loadtest --help``; see ``bench.loadtest.run``."""

import sys

from bench.loadtest.run import main

if __name__ == "__main__":
    sys.exit(main())
