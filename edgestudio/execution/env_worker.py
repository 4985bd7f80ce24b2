"""The worker that runs one job inside a Python environment: ``python -m edgestudio.execution.env_worker``.

Reads one :class:`RunRequest` line on stdin, writes :class:`JobMessage` lines on stdout (its own stdout, where
libraries print, goes to stderr), reads a :class:`CancelRequest` line at any time. Started by
:func:`edgestudio.execution.envs.run_in_env` with only EdgeStudio's package on ``PYTHONPATH``: every other
import comes from the environment's own site-packages.
"""

from __future__ import annotations

import os
import sys
import threading
import traceback
from pathlib import Path


def main() -> int:
    protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # libraries that print (tf2onnx, Keras) must not corrupt the protocol
    sys.stdout = sys.stderr
    from edgestudio.core.errors import Cancelled, EdgeStudioError, describe_exception
    from edgestudio.core.jobs import JobSpec
    from edgestudio.core.progress import CancelToken
    from edgestudio.execution.messages import (
        CancelRequest,
        JobMessage,
        ProtocolError,
        RunRequest,
        decode,
        encode,
    )
    from edgestudio.workers.context import JobContext
    from edgestudio.workers.tasks import run_job

    lock = threading.Lock()

    def send(msg: JobMessage) -> None:
        with lock:
            protocol.write(encode(msg))

    try:
        req = decode(sys.stdin.readline())
    except ProtocolError as exc:
        send(JobMessage("failed", None, {"error": str(exc)}))
        return 2
    if not isinstance(req, RunRequest):
        send(JobMessage("failed", None, {"error": "expected a run request"}))
        return 2
    cancel_event = threading.Event()

    def watch_stdin() -> None:
        for line in sys.stdin:
            try:
                if isinstance(decode(line), CancelRequest):
                    cancel_event.set()
            except ProtocolError:
                pass
        cancel_event.set()  # the app closed the pipe: nobody waits for this job any more

    threading.Thread(target=watch_stdin, daemon=True).start()
    send(JobMessage("ready", req.job_id, {"pid": os.getpid(), "python": sys.executable}))
    spec = JobSpec.from_dict(req.spec)
    ctx = JobContext(req.job_id, send, CancelToken(cancel_event), Path(req.staging) if req.staging else None)
    try:
        result = run_job(spec, ctx)
        ctx.flush()
        result = dict(result)
        result["executed_by"] = {"python": sys.executable, "prefix": sys.prefix}
        send(JobMessage("done", req.job_id, {"result": result}))
        return 0
    except Cancelled:
        ctx.flush()
        send(JobMessage("cancelled", req.job_id, {}))
        return 0
    except BaseException as exc:  # noqa: BLE001 - report everything as one message
        ctx.flush()
        if isinstance(exc, EdgeStudioError) and exc.path is None and spec.model and not getattr(exc, "named", False):
            exc.path = spec.model
        error = exc.one_line() if isinstance(exc, EdgeStudioError) else describe_exception(exc, spec.model)
        send(JobMessage("failed", req.job_id, {"error": error, "log": traceback.format_exc().splitlines()[-15:]}))
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
