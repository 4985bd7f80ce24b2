"""The worker process: receives jobs on its pipe, runs them, sends events back on the same pipe.

One pipe per worker (not a shared queue): a worker killed in the middle of a write can only break its own
channel, never block its siblings.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

WORKER_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0", "OMP_WAIT_POLICY": "PASSIVE"}


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the parent (the app) dies, so no orphan keeps running a job."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def worker_main(conn: Any, cancel_event: Any, warm_imports: tuple[str, ...] = ()) -> None:
    _die_with_parent()
    for k, v in WORKER_ENV.items():
        os.environ.setdefault(k, v)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C in a terminal is for the app, which cancels jobs
    faulthandler.enable()
    from edgestudio.core.errors import Cancelled, EdgeStudioError, describe_exception
    from edgestudio.core.jobs import JobSpec
    from edgestudio.core.progress import CancelToken
    from edgestudio.workers.context import JobContext
    from edgestudio.workers.tasks import run_job

    for name in warm_imports:
        try:
            __import__(name)
        except Exception:  # a missing optional runtime must not stop the worker
            pass
    conn.send(("ready", None, {"pid": os.getpid()}))
    token = CancelToken(cancel_event)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return  # the app is gone
        if msg is None:
            return
        job_id, spec_dict, staging = msg
        cancel_event.clear()
        spec = JobSpec.from_dict(spec_dict)
        ctx = JobContext(job_id, conn.send, token, Path(staging) if staging else None)
        try:
            result = run_job(spec, ctx)
            ctx.flush()
            conn.send(("done", job_id, {"result": result}))
        except Cancelled:
            ctx.flush()
            conn.send(("cancelled", job_id, {}))
        except MemoryError:
            ctx.flush()
            conn.send(("failed", job_id, {"error": describe_exception(MemoryError("out of memory"), spec.model),
                                           "log": []}))
        except BaseException as exc:  # noqa: BLE001 - report everything, keep serving
            ctx.flush()
            tb = traceback.format_exc().splitlines()[-15:]
            error = exc.one_line() if isinstance(exc, EdgeStudioError) else describe_exception(exc, spec.model)
            try:
                conn.send(("failed", job_id, {"error": error, "log": tb}))
            except (OSError, ValueError):
                return
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                return
