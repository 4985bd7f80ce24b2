"""``python -m edgestudio.agent [--host H] [--port P] [--dir D]``: the agent alone, what a device runs (numpy,
websockets and its runtimes are all it needs)."""

import argparse
import sys

from edgestudio.agent.server import add_serve_args, run_from_args

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m edgestudio.agent", description="EdgeStudio's device agent")
    add_serve_args(parser)
    sys.exit(run_from_args(parser.parse_args()))
