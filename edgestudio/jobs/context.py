"""What a job function gets inside a worker: progress, log, live samples, cancel token, a staging folder.

Everything it reports leaves as :class:`~edgestudio.jobs.messages.JobMessage` (the execution-target
protocol), whether the worker is a pool process, an environment's interpreter or, later, a remote agent."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from edgestudio.core.progress import CancelToken
from edgestudio.jobs.messages import JobMessage

SAMPLE_FLUSH_S = 0.05  # latency samples travel in small batches: live on screen, cheap on the pipe


class JobContext:
    def __init__(self, job_id: str, send: Any, cancel: CancelToken, staging: Path | None) -> None:
        self.job_id = job_id
        self._send = send
        self.cancel = cancel
        self.staging = staging
        self._samples: list[tuple[int, float]] = []
        self._last_flush = time.monotonic()
        self._last_progress = 0.0

    def progress(self, fraction: float, message: str = "") -> None:
        now = time.monotonic()
        if fraction < 1.0 and now - self._last_progress < 0.05:
            return  # at most 20 progress events a second
        self._last_progress = now
        self._send(JobMessage("progress", self.job_id, {"fraction": float(fraction), "message": message}))

    def log(self, line: str) -> None:
        self._send(JobMessage("log", self.job_id, {"line": str(line)}))

    def sample(self, index: int, ms: float) -> None:
        self._samples.append((index, ms))
        now = time.monotonic()
        if now - self._last_flush >= SAMPLE_FLUSH_S:
            self.flush()

    def flush(self) -> None:
        if self._samples:
            self._send(JobMessage("samples", self.job_id, {"samples": self._samples}))
            self._samples = []
        self._last_flush = time.monotonic()

    def staged(self, name: str) -> Path:
        """Where to write an artifact called ``name``: inside the job's staging folder."""
        if self.staging is None:
            raise RuntimeError("this job has no staging folder (no output was requested)")
        return self.staging / name

    def relay(self, where: str) -> Any:
        """A message handler that passes another process's job messages (an environment's worker, a device
        agent) on as this job's own: progress and log lines tagged ``[where]``, latency samples as they are."""

        def on_message(m: Any) -> None:
            if m.type == "progress":
                self.progress(float(m.data.get("fraction", 0.0)), f"[{where}] {m.data.get('message', '')}")
            elif m.type == "log":
                self.log(f"[{where}] {m.data.get('line', '')}")
            elif m.type == "samples":
                for i, ms in m.data.get("samples", []):
                    self.sample(int(i), float(ms))

        return on_message

    def finish_forwarded(self, rec: Any, error_type: Any) -> dict[str, Any]:
        """The result of a forwarded job, or its failure raised here as ``error_type`` (its message names its
        file already), or Cancelled."""
        from edgestudio.core.errors import Cancelled
        from edgestudio.core.jobs import JobStatus

        self.flush()
        if rec.status is JobStatus.CANCELLED:
            raise Cancelled()
        if rec.status is not JobStatus.SUCCEEDED:
            err = error_type(None, rec.error or "failed")
            err.named = True
            raise err
        return dict(rec.result or {})
