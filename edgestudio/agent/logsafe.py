"""The agent's log, one record a line whatever a client sends: control characters (newlines, carriage returns,
ESC, Unicode line separators, bidi overrides) in any logged field are escaped, so a job id or a file name cannot
forge a line; a traceback's lines are indented under their record."""

from __future__ import annotations

import logging

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape(text: str) -> str:
    """``text`` with every non-printable character (but the space) as a visible escape (``\\n``, ``\\x1b``)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _NAMED.get(c) or _code(c) for c in text)


def _code(c: str) -> str:
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


class EscapingFormatter(logging.Formatter):
    """A formatter whose records are one line each: the message escaped after formatting (every argument
    included), a traceback's lines escaped and indented with ``    | ``."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = escape(record.getMessage())
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        extra: list[str] = []
        if record.exc_info:
            extra += self.formatException(record.exc_info).splitlines()
        if record.stack_info:
            extra += self.formatStack(record.stack_info).splitlines()
        return line + "".join(f"\n    | {escape(x)}" for x in extra)
