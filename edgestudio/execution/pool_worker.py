"""The local pool's worker process: receives jobs on its pipe, runs them with the one job runner
(:mod:`edgestudio.jobs.runner`, placement deciding where each goes), sends messages back on the same pipe.

One pipe per worker (not a shared queue): a worker killed in the middle of a write can only break its own
channel, never block its siblings.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading
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


_REAL_STDERR = 2


def _capture_output(conn: Any) -> tuple[Any, list[str | None]]:
    from edgestudio.jobs.messages import JobMessage

    """Route everything written to fd 1 and 2 (libraries print: tf2onnx, Keras, TensorFlow's C++ logs)
    into the current job's log, so the app's own stdout (maybe ``--json``) and stderr stay clean.

    Returns a thread-safe ``send`` for the pipe and a one-element list holding the current job id."""
    global _REAL_STDERR
    lock = threading.Lock()
    current: list[str | None] = [None]

    def send(msg: Any) -> None:
        with lock:
            conn.send(msg)

    _REAL_STDERR = os.dup(2)
    r, w = os.pipe()
    os.dup2(w, 1)
    os.dup2(w, 2)
    os.close(w)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)

    def pump() -> None:
        with os.fdopen(r, "r", errors="replace") as lines:
            for line in lines:
                line = line.rstrip()
                if line and current[0]:
                    try:
                        send(JobMessage("log", current[0], {"line": line[:2000]}))
                    except (OSError, ValueError):
                        return

    threading.Thread(target=pump, name="edgestudio-output", daemon=True).start()
    return send, current


def _lower_priority(nice: int) -> None:
    """Before any thread starts: on Linux niceness is per thread and new threads inherit it, so the
    runtimes' thread pools (TensorFlow, OpenVINO, ONNX Runtime) all run at the lower priority."""
    if nice > 0 and hasattr(os, "nice"):
        try:
            os.nice(nice)
        except OSError:
            pass


def worker_main(conn: Any, cancel_event: Any, warm_imports: tuple[str, ...] = (), nice: int = 0,
                tmp: str | None = None) -> None:
    _lower_priority(nice)
    _die_with_parent()
    send, current = _capture_output(conn)
    for k, v in WORKER_ENV.items():
        os.environ.setdefault(k, v)
    if tmp:  # the pool's folder for this worker's temporary files (removed when the worker ends)
        import tempfile

        os.environ["TMPDIR"] = tmp
        tempfile.tempdir = tmp
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C in a terminal is for the app, which cancels jobs
    faulthandler.enable(file=os.fdopen(os.dup(_REAL_STDERR), "w"))
    from edgestudio.core.progress import CancelToken
    from edgestudio.execution.placement import run_placed
    from edgestudio.jobs.messages import PROTOCOL_VERSION, JobMessage, RunRequest
    from edgestudio.jobs.runner import run_one

    for name in warm_imports:
        try:
            __import__(name)
        except Exception:  # a missing optional runtime must not stop the worker
            pass
    send(JobMessage("ready", None, {"pid": os.getpid()}))
    token = CancelToken(cancel_event)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return  # the app is gone
        if msg is None:
            return
        if not isinstance(msg, RunRequest) or msg.v != PROTOCOL_VERSION:
            send(JobMessage("failed", getattr(msg, "job_id", None), {"error": f"not a run request: {msg!r}"[:300]}))
            continue
        cancel_event.clear()
        current[0] = msg.job_id
        outcome = run_one(msg.job_id, msg.spec, send, token, msg.staging, run=run_placed)
        try:
            send(outcome.message)
        except (OSError, ValueError):
            return
        if outcome.stop:
            return
