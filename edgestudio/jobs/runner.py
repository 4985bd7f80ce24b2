"""The one job runner: a request in, messages out. Every worker loop uses it (the local pool's worker processes,
an environment's worker, a Ray task, and so a device agent's workers), so a job ends the same way wherever it ran:
``done`` with its result, ``cancelled``, or ``failed`` with one line that names the model.

The runner does not know where a job should run: the function that runs it (``run``) is handed in. The execution
layer hands in its placement (:func:`edgestudio.execution.placement.run_placed`), which sends a job on to the
environment or device it needs; without one, the job runs here (:func:`edgestudio.jobs.tasks.run_job`).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgestudio.core.jobs import JobSpec
from edgestudio.core.progress import CancelToken
from edgestudio.jobs.context import JobContext
from edgestudio.jobs.messages import JobMessage

RunFn = Callable[[JobSpec, JobContext], dict[str, Any]]

#: log lines of a failure's traceback kept in its message (the job log shows them; the error stays one line)
TRACEBACK_LINES = 15
#: set (the tests set it) to fail a job whose result does not match its kind's type; otherwise the log says so
STRICT_RESULTS = "EDGESTUDIO_STRICT_RESULTS"


@dataclass
class Outcome:
    """How one job ended: ``message`` is its last message (done, failed or cancelled; not sent yet), ``stop`` is true
    when the process running it should stop serving (it was interrupted or asked to exit)."""

    message: JobMessage
    stop: bool = False

    @property
    def status(self) -> str:
        return self.message.type


def run_one(job_id: str, spec: JobSpec | dict[str, Any], send: Callable[[JobMessage], None], cancel: CancelToken,
            staging: str | Path | None = None, *, run: RunFn | None = None,
            tag: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> Outcome:
    """Run one job; its progress, log lines and latency samples go to ``send`` as they happen, its end is returned.

    ``run``: what runs it (placement, in an executor; the job functions themselves by default). ``tag``: adds to a
    result where it was made (the environment's Python, the Ray node)."""
    if run is None:
        from edgestudio.jobs.tasks import run_job

        run = run_job
    from edgestudio.core.errors import Cancelled, EdgeStudioError, describe_exception

    model: str | None = spec.get("model") if isinstance(spec, dict) else spec.model
    ctx = JobContext(job_id, send, cancel, Path(staging) if staging else None)
    try:
        job = JobSpec.from_dict(spec) if isinstance(spec, dict) else spec
        result = dict(run(job, ctx))
        result = tag(result) if tag else result
        _check(job, result, ctx)
        ctx.flush()
        return Outcome(JobMessage("done", job_id, {"result": result}))
    except Cancelled:
        ctx.flush()
        return Outcome(JobMessage("cancelled", job_id, {}))
    except MemoryError:
        ctx.flush()
        return Outcome(JobMessage("failed", job_id, {"error": describe_exception(MemoryError("out of memory"), model),
                                                     "log": []}))
    except BaseException as exc:  # noqa: BLE001 - report everything as one message, keep serving
        ctx.flush()
        tb = traceback.format_exc().splitlines()[-TRACEBACK_LINES:]
        if isinstance(exc, EdgeStudioError) and exc.path is None and model and not getattr(exc, "named", False):
            exc.path = model  # every job error names the file it is about
        error = exc.one_line() if isinstance(exc, EdgeStudioError) else describe_exception(exc, model)
        return Outcome(JobMessage("failed", job_id, {"error": error, "log": tb}),
                       stop=isinstance(exc, (KeyboardInterrupt, SystemExit)))


def _check(spec: JobSpec, result: dict[str, Any], ctx: JobContext) -> None:
    """Hold ``result`` to its kind's type (:mod:`edgestudio.jobs.results`)."""
    import os

    from edgestudio.jobs.results import ResultError, check_result

    problem = check_result(spec, result)
    if problem is None:
        return
    if os.environ.get(STRICT_RESULTS) == "1":
        raise ResultError(f"the job's result does not match its type: {problem}")
    ctx.log(f"warning: the job's result does not match its type ({problem}); it is kept as it came")
