"""Throughput mode: inferences per second when requests overlap, as a batch x streams grid.

- OpenVINO: the THROUGHPUT performance hint with ``NUM_STREAMS`` set, requests in an ``AsyncInferQueue`` of that
  many jobs (the runtime's own parallel-request machinery);
- ONNX Runtime: one session run from N threads at once (it releases the GIL), intra-op threads split evenly;
- LiteRT: N interpreters (an interpreter is not thread-safe), one per thread, the cores split evenly.

Each cell runs for ``duration_s`` after a short warm-up and reports FPS (samples/s: requests x batch) and the
per-request latency percentiles; a batch the model cannot take (a fixed batch dimension) is that cell's error.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgestudio.core.errors import EdgeStudioError
from edgestudio.core.formats import ModelFormat, detect_format
from edgestudio.core.progress import CancelToken, ProgressCallback, noop_progress

RUNTIMES = ("onnxruntime", "openvino", "litert")


def _feeds(session: Any, batch: int, inputs: Any, model: Path) -> dict[str, np.ndarray]:
    from edgestudio.bench.inputs import make_inputs
    from edgestudio.core.inputspec import InputSpec

    spec = InputSpec.from_dict(inputs) if isinstance(inputs, dict) else (inputs or InputSpec())
    one = make_inputs(session.inputs, spec, model=str(model))
    return {k: np.repeat(v[:1], batch, axis=0) if v.ndim else v for k, v in one.items()}


def _threaded(calls: list[Any], duration_s: float, cancel: CancelToken) -> list[float]:
    lat: list[list[float]] = [[] for _ in calls]
    stop = time.perf_counter() + duration_s

    def loop(i: int) -> None:
        call, out = calls[i], lat[i]
        while time.perf_counter() < stop and not cancel.cancelled:
            t0 = time.perf_counter()
            call()
            out.append((time.perf_counter() - t0) * 1e3)

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [x for part in lat for x in part]


def _cell_ort(model: Path, batch: int, streams: int, cores: int, duration_s: float, inputs: Any,
              cancel: CancelToken) -> tuple[list[float], float, int]:
    from edgestudio.backends.runtimes import get_runtime

    per = max(1, cores // streams)
    session = get_runtime("onnxruntime").load(model, threads=per)
    feeds = _feeds(session, batch, inputs, model)
    call = session.bind(feeds)
    for _ in range(5):
        call()
    t0 = time.perf_counter()
    lat = _threaded([call] * streams, duration_s, cancel)
    return lat, time.perf_counter() - t0, per


def _cell_litert(model: Path, batch: int, streams: int, cores: int, duration_s: float, inputs: Any,
                 cancel: CancelToken) -> tuple[list[float], float, int]:
    from edgestudio.backends.runtimes import get_runtime

    per = max(1, cores // streams)
    calls = []
    for _ in range(streams):
        session = get_runtime("litert").load(model, threads=per)
        feeds = _feeds(session, batch, inputs, model)
        call = session.bind(feeds)
        call()
        calls.append(call)
    t0 = time.perf_counter()
    lat = _threaded(calls, duration_s, cancel)
    return lat, time.perf_counter() - t0, per


def _cell_openvino(model: Path, batch: int, streams: int, cores: int, duration_s: float, inputs: Any,
                   cancel: CancelToken) -> tuple[list[float], float, int]:
    import openvino as ov

    from edgestudio.backends.runtimes import get_runtime

    session = get_runtime("openvino").load(model)  # for the input specs
    feeds = _feeds(session, batch, inputs, model)
    core = ov.Core()
    m = core.read_model(str(model))
    if batch > 1:
        m.reshape({inp.get_any_name(): ov.PartialShape([batch, *list(inp.get_partial_shape())[1:]])
                   for inp in m.inputs})
    compiled = core.compile_model(m, "CPU", {"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": str(streams)})
    queue = ov.AsyncInferQueue(compiled, streams)
    lat: list[float] = []
    queue.set_callback(lambda request, started: lat.append((time.perf_counter() - started) * 1e3))
    data = list(feeds.values())
    for _ in range(streams * 2):
        queue.start_async(data, time.perf_counter())
    queue.wait_all()
    lat.clear()
    stop = time.perf_counter() + duration_s
    t0 = time.perf_counter()
    while time.perf_counter() < stop and not cancel.cancelled:
        queue.start_async(data, time.perf_counter())  # blocks while every request is busy
    queue.wait_all()
    return lat, time.perf_counter() - t0, max(1, cores // streams)


CELLS = {"onnxruntime": _cell_ort, "openvino": _cell_openvino, "litert": _cell_litert}


def throughput_sweep(model: str | Path, *, runtime: str | None = None, batches: list[int] | None = None,
                     streams: list[int] | None = None, duration_s: float = 2.0, inputs: Any = None,
                     progress: ProgressCallback = noop_progress, cancel: CancelToken | None = None) -> dict[str, Any]:
    from edgestudio.core.machine import default_threads, machine_facts

    model = Path(model)
    cancel = cancel or CancelToken()
    fmt = detect_format(model)
    runtime = runtime or {ModelFormat.ONNX: "onnxruntime", ModelFormat.ORT: "onnxruntime",
                          ModelFormat.OPENVINO: "openvino", ModelFormat.TFLITE: "litert"}.get(fmt)
    if runtime not in CELLS:
        raise EdgeStudioError(model, f"throughput mode runs on {', '.join(RUNTIMES)}, not {runtime}")
    batches, streams = batches or [1], streams or [1, 2]
    cores = default_threads()
    cells = []
    grid = [(b, s) for b in batches for s in streams]
    for i, (b, s) in enumerate(grid):
        cancel.check()
        progress(i / len(grid), f"batch {b}, {s} stream(s)")
        cell: dict[str, Any] = {"batch": b, "streams": s, "error": None}
        try:
            lat, wall, per = CELLS[runtime](model, b, s, cores, duration_s, inputs, cancel)
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
