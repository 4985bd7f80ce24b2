"""Throughput mode: inferences per second when requests overlap, as a batch x streams grid.

Each runtime runs the overlapping requests its own way (``Runtime.throughput_run``): by default one session per
stream, each in a thread of its own, the cores split evenly (a session need not be thread-safe: LiteRT's are
not); ONNX Runtime runs one session from N threads at once (it releases the GIL); OpenVINO uses the THROUGHPUT
hint with ``NUM_STREAMS`` and that many infer requests in flight (its own parallel-request machinery).

Each cell runs for ``duration_s`` after a short warm-up and reports FPS (samples/s: requests x batch) and the
per-request latency percentiles; a batch the model cannot take (a fixed batch dimension) is that cell's error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgestudio.core.errors import EdgeStudioError
from edgestudio.core.formats import detect_format
from edgestudio.core.progress import CancelToken, ProgressCallback, noop_progress

def _feeds(session: Any, batch: int, inputs: Any, model: Path) -> dict[str, np.ndarray]:
    from edgestudio.bench.inputs import make_inputs
    from edgestudio.core.inputspec import InputSpec

    spec = InputSpec.from_dict(inputs) if isinstance(inputs, dict) else (inputs or InputSpec())
    one = make_inputs(session.inputs, spec, model=str(model))
    return {k: np.repeat(v[:1], batch, axis=0) if v.ndim else v for k, v in one.items()}


def throughput_sweep(model: str | Path, *, runtime: str | None = None, batches: list[int] | None = None,
                     streams: list[int] | None = None, duration_s: float = 2.0, inputs: Any = None,
                     progress: ProgressCallback = noop_progress, cancel: CancelToken | None = None) -> dict[str, Any]:
    from edgestudio.backends.runtimes import get_runtime, runtime_for_format
    from edgestudio.core.machine import default_threads, machine_facts

    model = Path(model)
    cancel = cancel or CancelToken()
    fmt = detect_format(model)
    runtime = runtime or runtime_for_format(fmt)
    rt = get_runtime(runtime)
    if fmt not in rt.formats:
        raise EdgeStudioError(model, f"{runtime} does not run {fmt.label} models")
    batches, streams = batches or [1], streams or [1, 2]
    cores = default_threads()
    cells = []
    grid = [(b, s) for b in batches for s in streams]
    for i, (b, s) in enumerate(grid):
        cancel.check()
        progress(i / len(grid), f"batch {b}, {s} stream(s)")
        cell: dict[str, Any] = {"batch": b, "streams": s, "error": None}
        try:
            feeds = _feeds(rt.load(model, threads=max(1, cores // s)), b, inputs, model)
            lat, wall, per = rt.throughput_run(model, feeds, batch=b, streams=s, cores=cores, duration_s=duration_s,
                                               cancel=cancel)
            a = np.asarray(lat)
            cell.update(requests=int(a.size), fps=round(a.size * b / wall, 2) if wall > 0 else 0.0,
                        p50_ms=round(float(np.percentile(a, 50)), 4), p90_ms=round(float(np.percentile(a, 90)), 4),
                        threads_per_stream=per)
        except Exception as exc:  # noqa: BLE001 - one cell that cannot run (a fixed batch) leaves the others
            from edgestudio.core.errors import describe_exception

            cell["error"] = describe_exception(exc, model)
        cells.append(cell)
    cancel.check()
    progress(1.0, "done")
    ok = [c for c in cells if c["error"] is None]
    return {"model": str(model), "runtime": runtime, "duration_s": duration_s, "cores": cores, "cells": cells,
            "batches": batches, "streams": streams, "machine": machine_facts(),
            "best": max(ok, key=lambda c: c["fps"]) if ok else None}
