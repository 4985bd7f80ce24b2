"""The benchmark engine: load, first inference, warm-up, then N iterations or a duration.

Each latency is handed to ``on_sample(index, ms)`` as soon as it is measured (the GUI charts them live);
the callback runs *between* timed calls, so it adds nothing to the measured latencies.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgestudio.bench.inputs import ShapeOverrides, make_inputs
from edgestudio.core.inputspec import InputSpec
from edgestudio.bench.stats import LatencyStats
from edgestudio.core.progress import CancelToken, ProgressCallback, noop_progress

SampleCallback = Callable[[int, float], None]


@dataclass
class BenchConfig:
    runtime: str
    device: str = "CPU"
    iterations: int = 100
    warmup: int = 10
    duration_s: float | None = None  # if set, run until this much time has passed (iterations is a cap)
    threads: int | None = None
    shapes: ShapeOverrides = field(default_factory=dict)
    precision: str | None = None
    seed: int = 0
    inputs: InputSpec = field(default_factory=InputSpec)  # --input / --value (and --shape, merged with shapes)

    def __post_init__(self) -> None:
        self.inputs = InputSpec.from_dict(self.inputs)
        if self.shapes:
            self.inputs = self.inputs.merged(InputSpec(shapes=dict(self.shapes)))


@dataclass
class BenchResult:
    runtime: str
    device: str
    model: str
    iterations: int
    latency_ms: LatencyStats
    throughput_fps: float
    load_ms: float
    first_inference_ms: float
    peak_rss_mb: float
    precision: str | None
    threads: int | None
    input_shapes: dict[str, list[int]]
    samples_ms: list[float] = field(repr=False, default_factory=list)

    def to_dict(self, with_samples: bool = False) -> dict[str, Any]:
        d = {
            "runtime": self.runtime, "device": self.device, "model": self.model, "iterations": self.iterations,
            "latency_ms": self.latency_ms.to_dict(), "throughput_fps": round(self.throughput_fps, 3),
            "load_ms": round(self.load_ms, 3), "first_inference_ms": round(self.first_inference_ms, 3),
            "peak_rss_mb": round(self.peak_rss_mb, 1), "precision": self.precision, "threads": self.threads,
            "input_shapes": self.input_shapes,
        }
        if with_samples:
            d["samples_ms"] = [round(x, 5) for x in self.samples_ms]
        return d


def peak_rss_mb() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return ru / (1024 * 1024) if sys.platform == "darwin" else ru / 1024


def timed_loop(call: Callable[[], Any], iterations: int, duration_s: float | None = None,
               on_sample: SampleCallback | None = None, cancel: CancelToken | None = None,
               progress: ProgressCallback = noop_progress) -> np.ndarray:
    """Time ``call`` repeatedly; returns latencies in ms. The timed region holds the bare call only."""
    clock = time.perf_counter_ns
    out = np.empty(iterations, dtype=np.float64)
    deadline = clock() + int(duration_s * 1e9) if duration_s else None
    check = cancel.check if cancel is not None else None
    report_every = max(1, iterations // 100)
    n = 0
    for n in range(iterations):
        t0 = clock()
        call()
        t1 = clock()
        ms = (t1 - t0) / 1e6
        out[n] = ms
        if on_sample is not None:
            on_sample(n, ms)
        if n % report_every == 0:
            if check is not None:
                check()
            if deadline is None:
                progress(n / iterations, f"iteration {n}/{iterations}")
            else:
                progress(min(1.0, 1 - (deadline - t1) / (duration_s * 1e9)), f"iteration {n}")  # type: ignore[operator]
        if deadline is not None and t1 >= deadline:
            return out[: n + 1]
    return out[: n + 1] if iterations else out


def run_benchmark(model: str | Path, config: BenchConfig, *, on_sample: SampleCallback | None = None,
                  progress: ProgressCallback = noop_progress, cancel: CancelToken | None = None) -> BenchResult:
    """Benchmark ``model`` on ``config.runtime``/``config.device``; see module docstring."""
    from edgestudio.backends.runtimes import get_runtime

    runtime = get_runtime(config.runtime)
    progress(0.0, f"loading on {config.runtime}/{config.device}")
    t0 = time.perf_counter()
    session = runtime.load(model, device=config.device, threads=config.threads, precision=config.precision)
    load_ms = (time.perf_counter() - t0) * 1e3
    if cancel:
        cancel.check()
    # the user's data/values/shapes; a dynamic dim nothing fixes is an error, never a silent 1
    feeds = make_inputs(session.inputs, config.inputs, seed=config.seed, model=str(model))
    call = session.bind(feeds)
    t0 = time.perf_counter()
    call()
    first_ms = (time.perf_counter() - t0) * 1e3
    progress(0.05, f"warm-up ({config.warmup})")
    for _ in range(config.warmup):
        call()
        if cancel:
            cancel.check()
    iterations = config.iterations if not config.duration_s else 1_000_000
    t_start = time.perf_counter()
    lat = timed_loop(call, iterations, config.duration_s, on_sample, cancel,
                     lambda f, m: progress(0.1 + 0.9 * f, m))
    wall = time.perf_counter() - t_start
    progress(1.0, "done")
    return BenchResult(
        runtime=config.runtime, device=session.device, model=str(model), iterations=int(lat.size),
        latency_ms=LatencyStats.from_ms(lat), throughput_fps=lat.size / wall if wall > 0 else 0.0,
        load_ms=load_ms, first_inference_ms=first_ms, peak_rss_mb=peak_rss_mb(), precision=session.precision,
        threads=config.threads, input_shapes={k: list(v.shape) for k, v in feeds.items()},
        samples_ms=lat.tolist(),
    )
