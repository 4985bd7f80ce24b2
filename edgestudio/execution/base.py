"""The execution-target interface: where a job runs (Olive's "systems").

An :class:`Executor` starts typed jobs (:class:`~edgestudio.core.jobs.JobSpec`) and reports what happens as
:class:`~edgestudio.core.jobs.JobEvent` to its subscribers: queued, started, progress, log, samples, finished.
It can cancel a job, describe the target it runs on, and fetch a finished job's artifacts. Implementations:

- ``local``: the spawned worker pool (:class:`edgestudio.execution.pool.WorkerPool`);
- ``env:NAME``: a Python environment's own interpreter (:class:`edgestudio.execution.envs.EnvExecutor`);
- ``agent:NAME``: a remote device (:class:`edgestudio.execution.remote.RemoteExecutor`);
- ``ray``: a Ray cluster (:class:`edgestudio.execution.ray_executor.RayExecutor`);

and, as they land, a remote agent, a browser and a cluster. The job bookkeeping every executor needs (records,
subscribers, finish hooks, waiting) lives here once, in :class:`ExecutorBase`.
"""

from __future__ import annotations

import abc
import copy
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgestudio.core.errors import EdgeStudioError, describe_exception
from edgestudio.core.jobs import JobEvent, JobRecord, JobSpec, JobStatus, new_job_id
from edgestudio.core.progress import CancelToken
from edgestudio.jobs.messages import JobMessage

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
        from edgestudio.core.model_files import copy_model

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
        self._queue: deque[str] = deque()  # job ids waiting for a worker, in order
        self._stopping = False
        self._subscribers: list[Subscriber] = []
        self._finish_hooks: list[Callable[[JobRecord], None]] = []

    def _enqueue(self, spec: JobSpec, job_id: str | None, what: str, **queued: Any) -> JobRecord:
        """Record ``spec`` as a queued job (RuntimeError naming ``what`` once the executor is shut down), say so."""
        if self._stopping:
            raise RuntimeError(f"the {what} is shut down")
        rec = JobRecord(id=job_id or new_job_id(), spec=spec)
        with self._lock:
            self._records[rec.id] = rec
            self._queue.append(rec.id)
        self._emit(JobEvent(rec.id, "queued", {"spec": spec.to_dict(), **queued}))
        return rec

    def _running_record(self, job_id: str) -> JobRecord | None:
        """For a cancel, under the lock: a queued job is cancelled here; the record of one that runs is returned (None
        for a job cancelled here, finished, or unknown: nothing more to stop)."""
        rec = self._records.get(job_id)
        if rec is None or rec.status.finished:
            return None
        if rec.status is JobStatus.QUEUED:
            self._queue.remove(job_id)
            self._finish(rec, JobStatus.CANCELLED)
            return None
        return rec

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


class ThreadedExecutor(ExecutorBase):
    """Jobs that run somewhere else (another interpreter, a device, a cluster), each watched by a thread here:
    a queue, ``max_workers`` at a time, cooperative cancel. Subclasses say how one job runs (:meth:`_execute`),
    what its result is tagged with (:meth:`_tag`) and where they run (:meth:`describe`)."""

    def __init__(self, target_name: str, max_workers: int = 1) -> None:
        super().__init__()
        self.target_name = target_name
        self.max_workers = max(1, max_workers)
        self._running: dict[str, tuple[threading.Thread, CancelToken]] = {}

    @abc.abstractmethod
    def _execute(self, rec: JobRecord, on_message: Callable[[JobMessage], None], token: CancelToken) -> JobRecord:
        """Run one job to its end; messages (progress, log, samples) go to ``on_message``."""

    def _tag(self, result: dict[str, Any]) -> dict[str, Any]:
        return result
    def submit(self, spec: JobSpec, job_id: str | None = None) -> str:
        rec = self._enqueue(spec, job_id, f"executor for {self.target_name}", target=self.target_name)
        self._schedule()
        return rec.id

    def cancel(self, job_id: str) -> None:
        with self._lock:
            if self._running_record(job_id) is None:
                return
            running = self._running.get(job_id)
        if running is not None:
            running[1].cancel()

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            self._stopping = True
            for job_id in list(self._queue):
                self._finish(self._records[job_id], JobStatus.CANCELLED, error="cancelled: app closed")
            self._queue.clear()
            running = list(self._running.values())
        for _, token in running:
            token.cancel()
        if wait:
            for thread, _ in running:
                thread.join(10)

    def _schedule(self) -> None:
        with self._lock:
            while self._queue and len(self._running) < self.max_workers and not self._stopping:
                rec = self._records[self._queue.popleft()]
                token = CancelToken()
                thread = threading.Thread(target=self._run, args=(rec, token), daemon=True,
                                          name=f"edgestudio-{self.target_name}")
                self._running[rec.id] = (thread, token)
                rec.status, rec.started_at = JobStatus.RUNNING, time.time()
                thread.start()

    def _run(self, rec: JobRecord, token: CancelToken) -> None:
        self._emit(JobEvent(rec.id, "started", {"target": self.target_name}))

        def on_message(m: JobMessage) -> None:
            with self._lock:
                self._apply(rec, m.type, m.data)

        try:
            done = self._execute(rec, on_message, token)
            status, error, result = done.status, done.error, done.result
        except EdgeStudioError as exc:
            status, error, result = JobStatus.FAILED, exc.one_line(), None
        except Exception as exc:  # noqa: BLE001 - a job must end, whatever happened
            status, error, result = JobStatus.FAILED, describe_exception(exc, rec.spec.model), None
        with self._lock:
            self._running.pop(rec.id, None)
            if result is not None:
                result = self._tag(result)
            rec.result = result
            self._finish(rec, status, error)
        self._schedule()
