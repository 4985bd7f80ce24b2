"""The execution-target interface: where a job runs (Olive's "systems").

An :class:`Executor` starts typed jobs (:class:`~edgestudio.core.jobs.JobSpec`) and reports what happens as
:class:`~edgestudio.core.jobs.JobEvent` to its subscribers: queued, started, progress, log, samples, finished.
It can cancel a job, describe the target it runs on, and fetch a finished job's artifacts. Implementations:

- ``local``: the spawned worker pool (:class:`edgestudio.workers.pool.WorkerPool`);
- ``env:NAME``: a Python environment's own interpreter (:class:`edgestudio.execution.envs.EnvExecutor`);

and, as they land, a remote agent, a browser and a cluster. The job bookkeeping every executor needs (records,
subscribers, finish hooks, waiting) lives here once, in :class:`ExecutorBase`.
"""

from __future__ import annotations

import abc
import copy
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgestudio.core.jobs import JobEvent, JobRecord, JobSpec, JobStatus

log = logging.getLogger(__name__)

Subscriber = Callable[[JobEvent], None]
LOG_LINES_KEPT = 500


@dataclass
class TargetInfo:
    """One place jobs can run."""

    name: str  # what --env / the GUI's target list uses: "local", "env:tfjs"
    kind: str  # local, env (later: agent, browser, ray)
    python: str = ""
    description: str = ""
    available: bool = True
    detail: str = ""
    facts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Executor(abc.ABC):
    """Start jobs somewhere, stream their events, cancel them, hand back their artifacts."""

    @abc.abstractmethod
    def submit(self, spec: JobSpec, job_id: str | None = None) -> str:
        """Queue ``spec``; returns its job id. Events follow on :meth:`subscribe`."""

    @abc.abstractmethod
    def cancel(self, job_id: str) -> None:
        """Stop a queued or running job (cooperatively first; forcibly after a grace period)."""

    @abc.abstractmethod
    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """``callback(event)`` for every job event; returns an unsubscribe."""

    @abc.abstractmethod
    def add_finish_hook(self, hook: Callable[[JobRecord], None]) -> None:
        """``hook(record)`` when a job ends, before subscribers hear of it (e.g. to persist it)."""

    @abc.abstractmethod
    def get(self, job_id: str) -> JobRecord: ...

    @abc.abstractmethod
    def jobs(self) -> list[JobRecord]: ...

    @abc.abstractmethod
    def wait(self, job_id: str, timeout: float | None = None) -> JobRecord: ...

    @abc.abstractmethod
    def shutdown(self, wait: bool = True) -> None: ...

    @abc.abstractmethod
    def describe(self) -> TargetInfo:
        """The target this executor runs on."""

    @abc.abstractmethod
    def reject(self, spec: JobSpec, job_id: str, error: str) -> None:
        """Record a job that could not be started (its submission failed before it reached the target) as
        failed with ``error``, with the usual queued and finished events."""

    def fetch(self, job_id: str, dest: Path) -> list[Path]:
        """Copy a finished job's artifacts into ``dest``. Targets sharing this machine's files (local pool,
        environments) have them published already; a remote target overrides this to download them."""
        rec = self.get(job_id)
        if rec.status is not JobStatus.SUCCEEDED or not rec.result:
            raise ValueError(f"job {job_id} has no artifacts ({rec.status.value})")
        from edgestudio.core.workspace import copy_model

        dest.mkdir(parents=True, exist_ok=True)
        out: list[Path] = []
        for art in artifacts_of(rec.result):
            src = Path(art["path"])
            copy_model(src, dest / src.name)
            out.append(dest / src.name)
        return out

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def artifacts_of(result: dict[str, Any]) -> list[dict[str, Any]]:
    """What a job made: ``result["artifacts"]`` (each with a ``path`` and an optional ``parent`` index into the
    list, for multi-hop chains), or a single ``result["output"]``."""
    if result.get("artifacts"):
        return [a if isinstance(a, dict) else {"path": a} for a in result["artifacts"]]
    out = result.get("output")
    return [{"path": str(out)}] if out and Path(str(out)).exists() else []


class ExecutorBase(Executor):
    """Records, subscribers, finish hooks and waiting, shared by every executor. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._records: dict[str, JobRecord] = {}
        self._subscribers: list[Subscriber] = []
        self._finish_hooks: list[Callable[[JobRecord], None]] = []

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def add_finish_hook(self, hook: Callable[[JobRecord], None]) -> None:
        self._finish_hooks.append(hook)

    def get(self, job_id: str) -> JobRecord:
        with self._lock:
            return copy.deepcopy(self._records[job_id])

    def jobs(self) -> list[JobRecord]:
        with self._lock:
            return [copy.deepcopy(r) for r in self._records.values()]

    def wait(self, job_id: str, timeout: float | None = None) -> JobRecord:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while not self._records[job_id].status.finished:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"job {job_id} still {self._records[job_id].status.value}")
                self._changed.wait(left if left is not None else 1.0)
            return copy.deepcopy(self._records[job_id])

    def reject(self, spec: JobSpec, job_id: str, error: str) -> None:
        rec = JobRecord(id=job_id, spec=spec)
        with self._lock:
            self._records[job_id] = rec
        self._emit(JobEvent(job_id, "queued", {"spec": spec.to_dict()}))
        with self._lock:
            self._finish(rec, JobStatus.FAILED, error)

    def _emit(self, event: JobEvent) -> None:
        for cb in list(self._subscribers):
            try:
                cb(event)
            except Exception:  # a broken subscriber must not stop the executor
                log.exception("job event subscriber failed")

    def _apply(self, rec: JobRecord, kind: str, data: dict[str, Any]) -> None:
        """Record and forward one progress/log/samples message of a running job."""
        if kind == "progress":
            rec.progress, rec.message = float(data.get("fraction", 0.0)), str(data.get("message", ""))
            self._emit(JobEvent(rec.id, "progress", {"fraction": rec.progress, "message": rec.message}))
        elif kind == "log":
            rec.log.append(str(data.get("line", "")))
            del rec.log[:-LOG_LINES_KEPT]
            self._emit(JobEvent(rec.id, "log", data))
        elif kind == "samples":
            self._emit(JobEvent(rec.id, "samples", data))

    def _finish(self, rec: JobRecord, status: JobStatus, error: str | None = None) -> None:
        rec.status, rec.error, rec.finished_at = status, error, time.time()
        if status is JobStatus.SUCCEEDED:
            rec.progress = 1.0
        for hook in self._finish_hooks:
            try:
                hook(rec)
            except Exception:
                log.exception("job finish hook failed")
        with self._changed:
            self._changed.notify_all()
        # hooks may have amended the record (e.g. an artifact the workspace could not register)
        self._emit(JobEvent(rec.id, "finished", {"status": rec.status.value, "error": rec.error,
                                                 "result": rec.result}))
