"""Entry point of the bundled app. freeze_support() makes the frozen executable able to act as a spawned
worker process (the pool starts its workers with multiprocessing's spawn); ``--edgestudio-helper MODULE`` makes it
act as ``python -m MODULE`` for EdgeStudio's other helper processes (edgestudio.core.process)."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from edgestudio.core.process import run_helper

    code = run_helper(sys.argv)
    if code is not None:
        sys.exit(code)
    from edgestudio.cli import main

    sys.exit(main())
