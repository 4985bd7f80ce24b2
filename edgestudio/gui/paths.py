"""Where file dialogs start: the folder the user last picked something in (any dialog of the studio), else the
working directory; and telling the user where something is when no file manager or browser can show it."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings


def start_dir() -> str:
    last = QSettings("EdgeStudio", "EdgeStudio").value("last_dir")
    return str(last) if last and Path(str(last)).is_dir() else str(Path.cwd())


def remember(path: str | Path) -> None:
    p = Path(path)
    QSettings("EdgeStudio", "EdgeStudio").setValue("last_dir", str(p if p.is_dir() else p.parent))


def show_or_copy(window: object, target: str, opened: bool) -> str:
    """After trying to open ``target`` (a folder or a URL): when nothing could show it, put it on the clipboard.
    Returns the message for the status bar."""
    from PySide6.QtWidgets import QApplication

    if opened:
        return f"Opened {target}"
    clip = QApplication.clipboard()
    if clip is not None:
        clip.setText(target)
    return f"No file manager or browser answered: {target} (copied to the clipboard)"
