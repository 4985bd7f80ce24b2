"""How EdgeStudio starts its helper processes (the TFLite Micro runner, the QtWebEngine host, environment and
agent workers, the block server), from source and from the standalone bundle alike.

From source a helper is ``python -m MODULE``. A frozen bundle's executable is not a Python interpreter (``-m`` is
an unknown option of the CLI there), so it is started as ``edgestudio --edgestudio-helper MODULE ...`` and the
bundle's entry point runs the module (:func:`run_helper`). Environments need a real Python: the bundle uses the
system's ``python3`` (the .deb depends on python3 and python3-venv), and puts EdgeStudio's sources, which it
carries, on the environment's path."""

from __future__ import annotations

import shutil
import sys

HELPER_FLAG = "--edgestudio-helper"


def frozen() -> bool:
    """True in the standalone bundle (PyInstaller sets ``sys.frozen``)."""
    return bool(getattr(sys, "frozen", False))


def helper_command(module: str, python: str | None = None) -> list[str]:
    """The command that runs ``python -m module`` with ``python`` (default: this process's own interpreter,
    which in the bundle is the bundle's executable)."""
    if python is None or python == sys.executable:
        return [sys.executable, HELPER_FLAG, module] if frozen() else [sys.executable, "-m", module]
    return [python, "-m", module]


def base_python() -> str | None:
    """A Python that can create virtual environments: this one from source, the system's in the bundle."""
    if not frozen():
        return sys.executable
    return shutil.which("python3") or shutil.which("python")


def run_helper(argv: list[str]) -> int | None:
    """Run ``argv``'s helper module when the bundle was started as one (None: it was not: start the app).
    Only EdgeStudio's own modules run this way."""
    if len(argv) < 3 or argv[1] != HELPER_FLAG:
        return None
    module = argv[2]
    if not module.startswith("edgestudio.") or not all(p.isidentifier() for p in module.split(".")):
        print(f"edgestudio: error: {module!r} is not one of EdgeStudio's helper modules", file=sys.stderr)
        return 2
    import runpy

    sys.argv = [module, *argv[3:]]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0
