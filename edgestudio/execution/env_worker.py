"""The worker that runs one job inside a Python environment: ``python -m edgestudio.execution.env_worker``, with
the one job runner (:mod:`edgestudio.jobs.runner`).

Reads one :class:`RunRequest` line on stdin, writes :class:`JobMessage` lines on stdout (its own stdout, where
libraries print, goes to stderr), reads a :class:`CancelRequest` line at any time. Started by
:func:`edgestudio.execution.envs.run_in_env` with only EdgeStudio's package on ``PYTHONPATH``: every other
import comes from the environment's own site-packages.
"""

from __future__ import annotations

import os
import sys
import threading


def main() -> int:
    protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # libraries that print (tf2onnx, Keras) must not corrupt the protocol
    sys.stdout = sys.stderr
    from edgestudio.core.progress import CancelToken
    from edgestudio.execution.placement import run_placed
    from edgestudio.jobs.messages import CancelRequest, JobMessage, ProtocolError, RunRequest, decode, encode
    from edgestudio.jobs.runner import run_one

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
    outcome = run_one(req.job_id, req.spec, send, CancelToken(cancel_event), req.staging, run=run_placed,
                      tag=lambda r: {**r, "executed_by": {"python": sys.executable, "prefix": sys.prefix}})
    send(outcome.message)
    return 1 if outcome.status == "failed" else 0


if __name__ == "__main__":
    raise SystemExit(main())
