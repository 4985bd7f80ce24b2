"""Where file dialogs start: the folder the user last picked something in (any dialog of the studio), else the
working directory; and telling the user where something is when no file manager or browser can show it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QFileDialog


def start_dir(default: str | Path | None = None) -> str:
    """The folder the user last picked something in; else ``default``; else the working directory."""
    last = QSettings("EdgeStudio", "EdgeStudio").value("last_dir")
    return str(last) if last and Path(str(last)).is_dir() else str(default or Path.cwd())


def remember(path: str | Path) -> None:
    p = Path(path)
    QSettings("EdgeStudio", "EdgeStudio").setValue("last_dir", str(p if p.is_dir() else p.parent))


# The studio's file dialogs: each starts in the folder last used (by any of them) and remembers the pick.
def ask_open(parent: Any, title: str, filters: str) -> str:
    path, _ = QFileDialog.getOpenFileName(parent, title, start_dir(), filters)
    if path:
        remember(path)
    return str(path)


def ask_open_many(parent: Any, title: str, filters: str) -> list[str]:
    files, _ = QFileDialog.getOpenFileNames(parent, title, start_dir(), filters)
    if files:
        remember(files[0])
    return [str(f) for f in files]


def ask_save(parent: Any, title: str, name: str, filters: str) -> str:
    """``name``: the file name offered, in the folder last used."""
    path, _ = QFileDialog.getSaveFileName(parent, title, str(Path(start_dir()) / name), filters)
    if path:
        remember(path)
    return str(path)


def ask_folder(parent: Any, title: str, default: str | Path | None = None) -> str:
    folder = QFileDialog.getExistingDirectory(parent, title, start_dir(default))
    if folder:
        remember(folder)
    return str(folder)


def show_or_copy(window: object, target: str, opened: bool) -> str:
    """After asking the desktop to open ``target`` (a folder or a URL): put it on the clipboard either way, and
    say what happened. Qt's "opened" only means a handler was started (xdg-open with no browser behind it still
    says yes), so the message never claims the page or folder is showing. Returns the message for the status bar."""
    from PySide6.QtWidgets import QApplication

    clip = QApplication.clipboard()
    if clip is not None:
        clip.setText(target)
    if opened:
        return f"Asked your desktop to show {target} (also copied to the clipboard, in case nothing opened)"
    return f"No file manager or browser answered: {target} (copied to the clipboard)"
