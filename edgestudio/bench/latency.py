"""The benchmark engine: load, first inference, warm-up, then N iterations or a duration.

Each latency is handed to ``on_sample(index, ms)`` as soon as it is measured (the GUI charts them live);
the callback runs *between* timed calls, so it adds nothing to the measured latencies.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgestudio.backends.runtimes.base import SampleCallback, timed_loop  # noqa: F401 (re-exported)
from edgestudio.bench.inputs import ShapeOverrides, make_inputs
from edgestudio.bench.stats import LatencyStats, bootstrap_ci
from edgestudio.core.inputspec import InputSpec
from edgestudio.core.progress import CancelToken, ProgressCallback, noop_progress


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
    target: dict[str, Any] = field(default_factory=dict)  # where it ran, as the runtime saw it (browser, threads...)
    ci_ms: dict[str, list[float]] = field(default_factory=dict)  # 95 % bootstrap intervals of p50/p90/p99
    warmup_runs: int | None = None
    steady: bool | None = None
    threads_source: str = "user"  # user, or "equal default" (every runtime the same count)
    machine: dict[str, Any] = field(default_factory=dict)  # CPU, ISA, clock and load when measured
    # the model's own memory: the process's resident size after loading and running it, less before loading (its
    # weights, the runtime's arena and buffers); peak_rss_mb is the whole worker's (Python, every library loaded)
    model_rss_mb: float | None = None

    def to_dict(self, with_samples: bool = False) -> dict[str, Any]:
        d = {
            "runtime": self.runtime, "device": self.device, "model": self.model, "iterations": self.iterations,
            "latency_ms": self.latency_ms.to_dict(), "throughput_fps": round(self.throughput_fps, 3),
            "load_ms": round(self.load_ms, 3), "first_inference_ms": round(self.first_inference_ms, 3),
            "peak_rss_mb": round(self.peak_rss_mb, 1), "precision": self.precision, "threads": self.threads,
            "input_shapes": self.input_shapes,
        }
        d.update(ci_ms=self.ci_ms, warmup_runs=self.warmup_runs, steady=self.steady,
                 threads_source=self.threads_source, machine=self.machine,
                 model_rss_mb=None if self.model_rss_mb is None else round(self.model_rss_mb, 1))
        if self.target:
            d["target"] = dict(self.target)
        if with_samples:
            d["samples_ms"] = [round(x, 5) for x in self.samples_ms]
        return d


def current_rss_mb() -> float | None:
    """This process's resident size now (Linux; None where /proc is not there)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)
    except (OSError, ValueError, IndexError):
        return None


def peak_rss_mb() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return ru / (1024 * 1024) if sys.platform == "darwin" else ru / 1024




def _throughput(lat_ms: np.ndarray, wall_s: float) -> float:
    """Inferences per second, one after another: the count over the time spent *in* the model (the sum of the
    latencies). The wall time also holds the harness's own work between calls (streaming each sample to the
    chart, progress): for a 15 us model that is most of it, and iterations/wall reported 4.6k/s where the model
    runs 66k/s. Concurrent throughput is the throughput sweep's (batch x streams)."""
    busy_s = float(np.sum(lat_ms)) / 1e3
    if busy_s > 0:
        return float(lat_ms.size / busy_s)
    return float(lat_ms.size / wall_s) if wall_s > 0 else 0.0


def run_benchmark(model: str | Path, config: BenchConfig, *, on_sample: SampleCallback | None = None,
                  progress: ProgressCallback = noop_progress, cancel: CancelToken | None = None) -> BenchResult:
    """Benchmark ``model`` on ``config.runtime``/``config.device``; see module docstring."""
    from edgestudio.backends.runtimes import get_runtime
    from edgestudio.core.machine import default_threads, machine_facts

    runtime = get_runtime(config.runtime)
    from edgestudio.core.errors import EdgeStudioError
    from edgestudio.core.formats import detect_format

    fmt = detect_format(model)
    if fmt not in runtime.formats:  # said plainly, not as the runtime's parse error ("corrupt TFLite model")
        raise EdgeStudioError(model, f"{config.runtime} does not run {fmt.label} models (it runs: "
                                     f"{', '.join(sorted(f.label for f in runtime.formats))})")
    progress(0.0, f"loading on {config.runtime}/{config.device}")
    # the same thread count on every runtime unless the user gave one (LiteRT alone defaults to 1), browsers
    # included (their page sets its wasm threads; what it really ran with is read back below)
    threads, source = config.threads, "user"
    if threads is None:
        threads, source = default_threads(), "equal default"
    machine = machine_facts()  # the load and clock just before measuring
    if not getattr(runtime, "in_browser", False) and "@" not in config.device:
        try:  # the runtime's own libraries imported first: the model's memory is the model's, not theirs
            runtime.check_device(config.device)
        except Exception:  # noqa: BLE001 - load says why, below
            pass
    rss_before = current_rss_mb()
    t0 = time.perf_counter()
    session = runtime.load(model, device=config.device, threads=threads, precision=config.precision)
    load_ms = (time.perf_counter() - t0) * 1e3
    if cancel:
        cancel.check()
    # the user's data/values/shapes; a dynamic dim nothing fixes is an error, never a silent 1
    feeds = make_inputs(session.inputs, config.inputs, seed=config.seed, model=str(model))
    # the runtime measures itself: the default is the local timed loop; a remote or browser runtime reports
    # the latencies measured on its device through the same call
    try:
        measured = runtime.benchmark(session, feeds, iterations=config.iterations, warmup=config.warmup,
                                     duration_s=config.duration_s, on_sample=on_sample, cancel=cancel,
                                     progress=progress)
        rss_after = current_rss_mb()  # the model loaded and run, before its session is released
    finally:
        close = getattr(session, "close", None)  # a browser, a remote connection: released now
        if callable(close):
            close()
    lat, wall, first_ms = measured.samples_ms, measured.wall_s, measured.first_ms
    ran = (getattr(session, "facts", {}) or {}).get("threads")
    if getattr(runtime, "in_browser", False) and isinstance(ran, int) and ran and ran != threads:
        # e.g. tfjs-backend-wasm caps its threads at hardwareConcurrency/2: say what ran, not what was asked
        source = f"{source}; asked {threads}, the browser's runtime ran {ran}"
        threads = ran
    progress(1.0, "done")
    return BenchResult(
        runtime=config.runtime, device=session.device, model=str(model), iterations=int(lat.size),
        latency_ms=LatencyStats.from_ms(lat), throughput_fps=_throughput(lat, wall),
        load_ms=load_ms, first_inference_ms=first_ms, peak_rss_mb=peak_rss_mb(), precision=session.precision,
        threads=threads, input_shapes={k: list(v.shape) for k, v in feeds.items()},
        samples_ms=lat.tolist(), target=dict(getattr(session, "facts", {}) or {}),
        ci_ms=bootstrap_ci(lat if lat.size <= 20_000 else np.random.default_rng(0).choice(lat, 20_000)),
        warmup_runs=measured.warmup_runs, steady=measured.steady, threads_source=source, machine=machine,
        model_rss_mb=max(0.0, rss_after - rss_before) if rss_before is not None and rss_after is not None else None,
    )
