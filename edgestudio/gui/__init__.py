"""The Qt front end: the only package that imports PySide6, pyqtgraph or superqt."""

from __future__ import annotations


def launch(argv: list[str] | None = None, workspace: str | None = None) -> int:
    from edgestudio.gui.app import main

    return main(argv, workspace=workspace)
