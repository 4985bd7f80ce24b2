"""Which process owns a job or a half-written folder, and whether it is still alive.

An owner is ``pid:start time`` (pids are reused; the start time tells processes apart). Staging folders
(``.NAME.partial-<job>``) carry an owner mark; recovery and the next run remove only those whose owner is gone,
never another live process's.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

OWNER_FILE = ".edgestudio-owner"


def process_started(pid: int) -> float | None:
    """When process ``pid`` started (None: there is no such process)."""
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:
        return None


def current_owner() -> str:
    return f"{os.getpid()}:{process_started(os.getpid()) or 0:.2f}"


def owner_alive(owner: str | None) -> bool:
    if not owner:
        return False  # recorded before owners were: the old rule (interrupted) applies
    try:
        pid_text, started_text = owner.split(":", 1)
        pid, started = int(pid_text), float(started_text)
    except ValueError:
        return False
    now = process_started(pid)
    return now is not None and (started == 0 or abs(now - started) < 1.0)


def write_owner(folder: Path) -> None:
    """Mark ``folder`` as this process's."""
    (folder / OWNER_FILE).write_text(json.dumps({"owner": current_owner()}))


_NEW_SUFFIX = ".new-"


def make_marked_folder(folder: Path) -> Path:
    """Create ``folder`` already carrying this process's mark: it is made under a temporary name holding our
    pid, marked, then renamed, so a kill at any moment leaves either nothing, a marked folder, or a temporary
    :func:`clean_stale_partials` recognizes by its pid."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    if (folder / OWNER_FILE).is_file() and marked_owner(folder) == current_owner():
        return folder
    tmp = folder.with_name(f"{folder.name}{_NEW_SUFFIX}{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        write_owner(tmp)
        os.replace(tmp, folder)
    except OSError:  # e.g. no space left for the mark
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def marked_owner(folder: Path) -> str | None:
    """The owner a folder's mark names (None: no readable mark)."""
    try:
        owner = json.loads((folder / OWNER_FILE).read_text())["owner"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(owner)


def partial_is_dead(path: Path) -> bool:
    """A workspace's staging/partial folder whose writer is gone: job staging folders carry an owner mark;
    import temporaries end in ``-<pid>-<thread>``; anything else is from an older layout nothing alive owns."""
    if (path / OWNER_FILE).is_file():
        return not owner_alive(marked_owner(path))
    head, sep, pid_text = path.name.rpartition(_NEW_SUFFIX)
    if sep and pid_text.isdigit():  # a staging folder being marked (make_marked_folder)
        return process_started(int(pid_text)) is None
    tail = path.name.rsplit(".partial-", 1)[-1]
    pid_text = tail.split("-", 1)[0]
    if pid_text.isdigit() and "-" in tail:  # an import temporary of process <pid>
        return process_started(int(pid_text)) is None
    return True


def clean_stale_partials(folder: Path) -> list[Path]:
    """Remove ``.NAME.partial-<job>`` folders beside a user's output left by a process that died (SIGKILL,
    power loss): only those whose mark proves they are EdgeStudio's and that their process is gone."""
    removed: list[Path] = []
    try:
        candidates = [c for c in folder.glob(".*.partial-*") if c.is_dir() and not c.is_symlink()]
    except OSError:
        return removed
    for c in candidates:
        owner = marked_owner(c)
        if owner is None:
            head, sep, pid_text = c.name.rpartition(_NEW_SUFFIX)
            if not (sep and pid_text.isdigit() and process_started(int(pid_text)) is None):
                continue  # not provably ours
        elif owner_alive(owner):
            continue  # its process still runs
        shutil.rmtree(c, ignore_errors=True)
        removed.append(c)
    return removed
