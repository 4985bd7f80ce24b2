"""The execution-target protocol: versioned messages, as JSON lines (one message a line).

The same messages can travel over a pipe (an environment worker) or a socket (a remote agent, a browser
bridge). A receiver refuses a message whose ``v`` it does not know, with a clear error.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

PROTOCOL_VERSION = 1


class ProtocolError(Exception):
    """A message this side cannot read (another version, or not a message at all)."""


@dataclass
class RunRequest:
    """Run one job: ``spec`` is a JobSpec as a dict; ``staging`` the folder its artifacts go to."""

    job_id: str
    spec: dict[str, Any]
    staging: str | None = None
    v: int = PROTOCOL_VERSION
    type: str = "run"


@dataclass
class CancelRequest:
    job_id: str
    v: int = PROTOCOL_VERSION
    type: str = "cancel"


#: each message type and its data: (keys it must have, keys it may have). Anything else is refused.
MESSAGE_DATA: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "ready": (frozenset({"pid"}), frozenset({"python"})),
    "progress": (frozenset({"fraction", "message"}), frozenset()),
    "log": (frozenset({"line"}), frozenset()),
    "samples": (frozenset({"samples"}), frozenset()),
    "done": (frozenset({"result"}), frozenset()),
    "failed": (frozenset({"error"}), frozenset({"log"})),
    "cancelled": (frozenset(), frozenset()),
}


def check_data(what: str, kind: str, data: Any, schema: dict[str, tuple[frozenset[str], frozenset[str]]]) -> None:
    """Refuse (ValueError) a ``kind`` the schema does not know, or data missing a key it must have or carrying one
    it does not take: a misspelt key is an error where it is made, never a silently empty field."""
    if kind not in schema:
        raise ValueError(f"unknown {what} type {kind!r} (known: {', '.join(schema)})")
    if not isinstance(data, dict):
        raise ValueError(f"a {kind} {what}'s data must be a mapping, not {type(data).__name__}")
    must, may = schema[kind]
    missing, unknown = sorted(must - set(data)), sorted(set(data) - must - may)
    if missing or unknown:
        raise ValueError(f"a {kind} {what} " + "; ".join(
            ([f"lacks {', '.join(missing)}"] if missing else []) + ([f"does not take {', '.join(unknown)}"] if unknown
                                                                    else [])))


@dataclass
class JobMessage:
    """From the target: ``type`` is ready, progress, log, samples, done, failed or cancelled, each with its own data
    (:data:`MESSAGE_DATA`: checked when the message is made, here or on receipt)."""

    type: str
    job_id: str | None
    data: dict[str, Any] = field(default_factory=dict)
    v: int = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        check_data("message", self.type, self.data, MESSAGE_DATA)


_TYPES = {"run": RunRequest, "cancel": CancelRequest}


def encode(msg: Any) -> str:
    return json.dumps(asdict(msg), default=str) + "\n"


def decode(line: str | bytes) -> Any:
    try:
        d = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not a protocol message ({exc})") from None
    if not isinstance(d, dict) or d.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {d.get('v') if isinstance(d, dict) else '?'} is not "
                            f"{PROTOCOL_VERSION}: the two sides run different EdgeStudio versions")
    cls = _TYPES.get(str(d.get("type")), JobMessage)
    try:
        return cls(**d)
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed {d.get('type')} message ({exc})") from None
