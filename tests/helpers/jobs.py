"""Job functions for the worker-pool tests (run through JobKind.CALL inside real worker processes)."""

from __future__ import annotations

import os
import signal
import time
from typing import Any


def echo(ctx: Any, value: Any = None) -> dict[str, Any]:
    ctx.progress(0.5, "half way")
    ctx.log("echo says hi")
    return {"value": value, "pid": os.getpid()}


def segfault(ctx: Any) -> None:
    ctx.log("about to crash")
    os.kill(os.getpid(), signal.SIGSEGV)


def sigkill_self(ctx: Any) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def eat_memory(ctx: Any, chunk_mb: int = 50) -> None:
    hoard = []
    while True:
        hoard.append(b"\x01" * (chunk_mb * 2**20))  # written, so it counts in RSS
        time.sleep(0.01)


def raise_memory_error(ctx: Any) -> None:
    raise MemoryError()


def sleep(ctx: Any, seconds: float = 60.0, cooperative: bool = True) -> dict[str, Any]:
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if cooperative:
            ctx.cancel.check()
        ctx.progress((time.monotonic() - t0) / seconds, "sleeping")
        time.sleep(0.02)
    return {"slept": seconds}


def write_artifact(ctx: Any, name: str = "out.bin", size: int = 1000, then_sleep: float = 0.0) -> dict[str, Any]:
    path = ctx.staged(name)
    with open(path, "wb") as fh:
        fh.write(b"\x02" * (size // 2))
        fh.flush()
        ctx.progress(0.5, "half written")
        t0 = time.monotonic()
        while time.monotonic() - t0 < then_sleep:
            ctx.cancel.check()
            time.sleep(0.02)
        fh.write(b"\x02" * (size - size // 2))
    return {"output": str(path)}


def fail(ctx: Any) -> None:
    raise ValueError("the job could not do it")


def stream(ctx: Any, n: int = 500) -> dict[str, Any]:
    for i in range(n):
        ctx.sample(i, float(i))
        time.sleep(0.001)
    return {"n": n}


def copy_model(ctx: Any, src: str, name: str, then_sleep: float = 0.0) -> dict[str, Any]:
    """Write a real model file in two halves, optionally pausing half-way (to be killed there)."""
    data = open(src, "rb").read()
    path = ctx.staged(name)
    with open(path, "wb") as fh:
        fh.write(data[: len(data) // 2])
        fh.flush()
        ctx.progress(0.5, "half written")
        t0 = time.monotonic()
        while time.monotonic() - t0 < then_sleep:
            time.sleep(0.02)
        fh.write(data[len(data) // 2:])
    return {"output": str(path)}


def priority(ctx: Any) -> dict[str, Any]:
    """The niceness of the worker's main thread and of a thread it starts (as a runtime's thread pool would)."""
    import threading

    seen: list[int] = []
    t = threading.Thread(target=lambda: seen.append(os.nice(0)))
    t.start()
    t.join()
    return {"main": os.nice(0), "thread": seen[0]}


def temp_litter(ctx: Any, seconds: float = 60.0, writer: bool = False) -> dict[str, Any]:
    """Leave scratch files where libraries do (tempfile), then hang: a job killed for its timeout. ``writer``: also
    start a process that keeps writing there (as a browser writes its profile), to be stopped with the worker."""
    import subprocess
    import sys
    import tempfile
    import time

    folder = tempfile.mkdtemp(prefix="edgestudio-convert-")
    with tempfile.NamedTemporaryFile("w", prefix="__autograph_generated_file", suffix=".py", delete=False) as f:
        f.write("x = 1\n")
    if writer:
        proc = subprocess.Popen([sys.executable, "-c", "import os, sys, time\nwhile True:\n"
                                 "    os.makedirs(os.path.join(sys.argv[1], 'profile', 'Default'), exist_ok=True)\n"
                                 "    time.sleep(0.01)", folder])
        ctx.log(f"writer: {proc.pid}")
    ctx.log(f"scratch: {folder} {f.name}")
    time.sleep(seconds)
    return {"folder": folder}
