"""Adapt the core's plain job events to Qt signals (emitted from the pool's thread, delivered queued on the
GUI thread). The GUI never blocks on a job: it submits and listens."""

from __future__ import annotations

import os
from typing import Any

from PySide6.QtCore import QObject, Signal

from edgestudio.core.jobs import JobEvent, JobSpec
from edgestudio.core.workspace import Workspace
from edgestudio.app.manager import JobManager


# Workers run below the GUI's CPU priority: a conversion or a benchmark using every core must never delay a
# repaint (on 2 cores a paint that costs 4 ms of CPU took 100+ ms of wall time at equal priority). The GUI is
# idle most of the time, so this costs a job nothing then.
def _worker_nice() -> int:
    value = os.environ.get("EDGESTUDIO_WORKER_NICE", "10")
    try:
        return max(0, min(19, int(value)))
    except ValueError:
        return 10  # a typo in the variable must not stop the app from starting


WORKER_NICE = _worker_nice()


class JobBridge(QObject):
    queued = Signal(str, object)  # job id, spec dict
    started = Signal(str)
    progress = Signal(str, float, str)
    log = Signal(str, str)
    samples = Signal(str, object)  # job id, [(index, ms), ...]
    finished = Signal(str, str, object, object)  # job id, status, error, result

    def __init__(self, workspace: Workspace | None, max_workers: int | None = None,
                 warm_imports: tuple[str, ...] = (), nice: int = WORKER_NICE, executor: Any = None) -> None:
        """``executor``: where the jobs run (default: the local worker pool; e.g. a Ray cluster)."""
        super().__init__()
        from edgestudio.execution.pool import WorkerPool

        self.workspace = workspace
        self.manager = JobManager(workspace, executor=executor or WorkerPool(max_workers, warm_imports=warm_imports,
                                                                             nice=nice))
        self._unsubscribe = self.manager.subscribe(self._on_event)
        self.closed = False

    def _on_event(self, e: JobEvent) -> None:  # pool thread: only emit, never touch widgets
        if self.closed:
            return
        if e.type == "queued":
            self.queued.emit(e.job_id, e.data.get("spec"))
        elif e.type == "started":
            self.started.emit(e.job_id)
        elif e.type == "progress":
            self.progress.emit(e.job_id, float(e.data["fraction"]), str(e.data["message"]))
        elif e.type == "log":
            self.log.emit(e.job_id, str(e.data["line"]))
        elif e.type == "samples":
            self.samples.emit(e.job_id, e.data["samples"])
        elif e.type == "finished":
            self.finished.emit(e.job_id, e.data["status"], e.data.get("error"), e.data.get("result"))

    def submit(self, spec: JobSpec, output_name: str | None = None) -> str:
        """Returns at once: hashing the model and the workspace's fsync happen on the manager's submitter thread."""
        return self.manager.submit(spec, output_name=output_name, background=True)

    def cancel(self, job_id: str) -> None:
        self.manager.cancel(job_id)

    def get(self, job_id: str) -> Any:
        return self.manager.get(job_id)

    def shutdown(self) -> None:
        """Stop emitting, then stop the pool. Slots must check :attr:`closed`: events queued before this
        call are still delivered by Qt afterwards (e.g. "cancelled: app closed" for running jobs)."""
        self.closed = True
        self._unsubscribe()
        self.manager.shutdown()
