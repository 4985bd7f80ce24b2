"""Jobs as plain data: what to run (:class:`JobSpec`), and what happened (:class:`JobRecord`, :class:`JobEvent`)."""

from __future__ import annotations

import enum
import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any


class JobKind(str, enum.Enum):
    INSPECT = "inspect"
    CONVERT = "convert"
    OPTIMIZE = "optimize"
    BENCH = "bench"
    EVAL = "eval"
    PACKAGE = "package"
    CALL = "call"  # run an importable function ``module:function`` (extensions, tests)


#: how users name a device of a device agent: ``CPU@agent:pi`` is the CPU of the agent ``pi``. A spec keeps the
#: two apart (``device="CPU"``, ``target="agent:pi"``); the joined name is only for people (lists, rows, columns).
REMOTE_DEVICE = "@agent:"
#: the targets a job may name: a Python environment or a device agent (None: placement decides, here by default)
TARGET_KINDS = ("env", "agent")


def device_name(device: str | None, target: str | None) -> str:
    """A job's device as users name it: CPU, or CPU@agent:pi when its target is the agent pi."""
    device = device or "CPU"
    return f"{device}{REMOTE_DEVICE}{target[6:]}" if target and target.startswith("agent:") else device


class JobStatus(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass
class JobSpec:
    """Everything a worker needs to run a job; JSON-serialisable: ``kind`` and its typed request (carried as
    ``options``, see :mod:`edgestudio.core.requests`), the model, and where and how it runs."""

    kind: JobKind
    model: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    runtime: str | None = None
    device: str | None = None
    output: str | None = None  # final path of the artifact this job makes (written elsewhere, moved on success)
    timeout_s: float | None = None
    memory_limit_mb: float | None = None
    exclusive: bool | None = None  # run alone; default: benchmarks do, so nothing disturbs their timings
    # short and light (seconds, little memory): may run beside a long job in a worker of its own instead of
    # waiting behind it; default: inspections are
    quick: bool | None = None
    # where it runs: "env:NAME" (a Python environment), "agent:NAME" (a device agent), or None: placement decides
    # (here, or the environment the model or the optimizer needs). A device named the users' way, CPU@agent:pi,
    # becomes device CPU on target agent:pi.
    target: str | None = None

    def __post_init__(self) -> None:
        from edgestudio.core.errors import UsageError

        self.kind = JobKind(self.kind)
        if self.device and REMOTE_DEVICE in self.device:
            local, _, name = self.device.partition(REMOTE_DEVICE)
            if self.target not in (None, f"agent:{name}"):
                raise UsageError(self.model, f"device {self.device} is on agent {name}, but the job's target is "
                                             f"{self.target}")
            self.device, self.target = local or "CPU", f"agent:{name}"
        if self.target is not None:
            kind, _, name = str(self.target).partition(":")
            if kind not in TARGET_KINDS or not name:
                raise UsageError(self.model, f"unknown job target {self.target!r}: env:NAME (a Python environment) "
                                             "or agent:NAME (a device agent)")

    @property
    def agent(self) -> str | None:
        """The device agent this job runs on, or None."""
        return self.target.partition(":")[2] if self.target and self.target.startswith("agent:") else None

    @property
    def env(self) -> str | None:
        """The Python environment this job was sent to, or None."""
        return self.target.partition(":")[2] if self.target and self.target.startswith("env:") else None

    @property
    def where(self) -> str:
        """The device as users name it: CPU, or CPU@agent:pi for a device agent's."""
        return device_name(self.device, self.target)

    @classmethod
    def of(cls, request: Any, **fields: Any) -> JobSpec:
        """A spec for a typed request: ``JobSpec.of(BenchRequest(iterations=50), model=..., runtime=...)``."""
        from edgestudio.core.requests import kind_of, request_options

        return cls(JobKind(kind_of(request)), options=request_options(request), **fields)

    @property
    def request(self) -> Any:
        """The typed request (unknown or missing options raise a UsageError naming them)."""
        from edgestudio.core.requests import parse_request

        return parse_request(self.kind.value, self.options)

    def validate(self) -> JobSpec:
        """Raise a UsageError (naming the model) if the request is not one this kind takes."""
        from edgestudio.core.errors import UsageError

        try:
            self.request
        except UsageError as exc:
            if exc.path is None and self.model:
                exc.path = self.model
            raise
        except TypeError as exc:
            raise UsageError(self.model, f"bad {self.kind.value} request: {exc}") from None
        return self

    @property
    def runs_alone(self) -> bool:
        return self.exclusive if self.exclusive is not None else self.kind in (JobKind.BENCH,)

    @property
    def is_quick(self) -> bool:
        return self.quick if self.quick is not None else self.kind is JobKind.INSPECT

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kind"] = self.kind.value
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JobSpec:
        from edgestudio.core.requests import known_fields

        return cls(**known_fields(cls, d, "a job"))

    @classmethod
    def from_json(cls, text: str) -> JobSpec:
        return cls.from_dict(json.loads(text))


def new_job_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]


@dataclass
class JobRecord:
    id: str
    spec: JobSpec
    status: JobStatus = JobStatus.QUEUED
    progress: float = 0.0
    message: str = ""
    log: list[str] = field(default_factory=list)
    result: dict[str, Any] | None = None
    error: str | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def elapsed_s(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.finished_at or time.time()) - self.started_at

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.spec.kind.value, "model": self.spec.model, "status": self.status.value,
                "progress": round(self.progress, 4), "message": self.message, "error": self.error,
                "result": self.result, "created_at": self.created_at, "started_at": self.started_at,
                "finished_at": self.finished_at, "spec": self.spec.to_dict()}


#: each event type and its data: (keys it must have, keys it may have); anything else is refused when it is made
EVENT_DATA: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "queued": (frozenset({"spec"}), frozenset({"target"})),
    "started": (frozenset(), frozenset({"pid", "target"})),
    "progress": (frozenset({"fraction", "message"}), frozenset()),
    "log": (frozenset({"line"}), frozenset()),
    "samples": (frozenset({"samples"}), frozenset()),
    "finished": (frozenset({"status", "error", "result"}), frozenset()),
}


@dataclass(frozen=True)
class JobEvent:
    """What subscribers receive. ``type`` is one of: queued, started, progress, log, samples, finished, each with its
    own data (:data:`EVENT_DATA`)."""

    job_id: str
    type: str
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        must, may = EVENT_DATA.get(self.type, (None, None))
        if must is None or may is None:
            raise ValueError(f"unknown job event type {self.type!r} (known: {', '.join(EVENT_DATA)})")
        keys = set(self.data)
        if not must <= keys or keys - must - may:
            raise ValueError(f"a {self.type} job event takes {', '.join(sorted(must | may))}, not "
                             f"{', '.join(sorted(keys)) or 'nothing'}")
