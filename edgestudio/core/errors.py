"""Errors a user can act on. Each one names the file and the cause, and prints as one line."""

from __future__ import annotations

import errno
import re
from pathlib import Path


class EdgeStudioError(Exception):
    """Base of all user-facing errors: ``str(err)`` is ``"<path>: <cause>"`` (or just the cause)."""

    def __init__(self, path: str | Path | None, cause: str, *, hint: str | None = None) -> None:
        self.path = str(path) if path is not None else None
        self.cause = clean_message(str(cause), limit=1000)  # always one line, no traceback fragments
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        text = f"{display(self.path)}: {self.cause}" if self.path else self.cause
        if self.hint:
            text += f" ({self.hint})"
        return display(text)


class ModelFormatError(EdgeStudioError):
    """The file is not a model EdgeStudio can read (unknown, corrupt, truncated, empty)."""


class UnsafeModelError(EdgeStudioError):
    """The model would need arbitrary code to load (Lambda layers, pickled objects)."""


class UntrustedModelError(UnsafeModelError):
    """The model's graph holds ops that reach the file system or run Python: it runs only if the user trusts it
    (``--trust-model``; the studio asks)."""


class RuntimeUnavailableError(EdgeStudioError):
    """A runtime, device or package needed for the request is not installed or not visible."""


class UsageError(EdgeStudioError):
    """A request that does not make sense (bad shape override, unknown option)."""


class Cancelled(Exception):
    """Raised inside a job when its cancel token has been set."""


def describe_exception(exc: BaseException, path: str | Path | None = None) -> str:
    """One line for any exception, naming the file when known, never a traceback."""
    if isinstance(exc, EdgeStudioError):
        return exc.one_line()
    first = clean_message(exc, limit=400)
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        where = getattr(exc, "filename", None)
        first = f"no space left on {display(str(Path(where).parent)) if where else 'the device'}"
    cause = f"{type(exc).__name__}: {first}" if not isinstance(exc, (OSError,)) else first
    return display(f"{display(str(path))}: {cause}" if path else cause)


_TRACE_MARKERS = re.compile(r"(Traceback \(most recent call last\)|\bin user code:|\bFile \"[^\"]+\", line \d+)")


def clean_message(exc: BaseException | str, limit: int = 300) -> str:
    """A library's message as one line, cut before any traceback fragment it carries."""
    text = str(exc) if isinstance(exc, str) else (str(exc) or type(exc).__name__)
    # ONNX Runtime names the path it was handed (a staging file, a link): EdgeStudio names the user's file itself
    text = re.sub(r"Load model from .*? failed:\s*", "", text)
    m = _TRACE_MARKERS.search(text)
    if m:
        text = text[: m.start()]
    text = " ".join(text.split()).rstrip(" :") or (type(exc).__name__ if not isinstance(exc, str) else "failed")
    return text if len(text) <= limit else text[: limit - 3] + "..."


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]|[\udc80-\udcff]")


def display(text: str | Path | None) -> str:
    """Text safe for one terminal line: control characters (newline, ANSI escapes) and bytes that are not
    UTF-8 (surrogate-escaped in file names) shown as escapes, so a hostile file name cannot break the line."""
    s = "" if text is None else str(text)

    def esc(m: re.Match[str]) -> str:
        ch = m.group(0)
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:
            return f"\\x{code - 0xDC00:02x}"
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch, f"\\x{code:02x}")

    return _CONTROL.sub(esc, s)


def out_of_space(exc: BaseException, folder: str | Path) -> bool:
    """Whether ``exc`` (from any library: ENOSPC, sqlite, OpenVINO's "basic_ios::clear: iostream error") was
    a write that failed for lack of space in ``folder``."""
    import shutil

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc).lower()
    if "no space left" in text or "disk is full" in text:
        return True
    if "iostream error" in text or "write" in text or "disk i/o" in text:
        try:
            return shutil.disk_usage(folder).free < (4 << 20)
        except OSError:
            return False
    return False
