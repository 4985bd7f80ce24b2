"""Entry point of the bundled app. freeze_support() makes the frozen executable able to act as a spawned
worker process (the pool starts its workers with multiprocessing's spawn)."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from edgestudio.cli import main

    sys.exit(main())
