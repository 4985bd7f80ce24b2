"""The headless command line over the same core as the GUI.

``edgestudio`` with no arguments starts the studio. Every subcommand takes ``--json`` (one JSON document on
stdout). Errors print one line ``error: <file>: <cause>`` on stderr and exit 1; usage errors exit 2.
Nothing heavy is imported here: runtimes load inside the commands that need them.

The modules: ``entry`` (``main``: the studio or a command, errors as one line, exit codes, the native log),
``parser`` (every command's flags), ``common`` (what the commands share: output, inputs, ``run_job``),
``render`` (the text output), and one module a command group: ``convert`` (inspect, convert), ``optimize``
(optimize, rescue, distill), ``bench`` (bench, eval, compare, sweep), ``debug`` (debug, profile, explore),
``targets`` (devices, agent, targets, envs), ``package`` (package, run) and ``workspace`` (jobs, models, import).
"""

from edgestudio.cli.common import run_job
from edgestudio.cli.entry import _error, _NativeLog, main
from edgestudio.cli.parser import build_parser

__all__ = ["main", "build_parser", "run_job", "_NativeLog", "_error"]
