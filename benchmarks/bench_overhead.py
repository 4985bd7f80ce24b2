"""Does the benchmark engine add overhead over a bare runtime call? (target: p50 within 3 %)

Runs the engine's timed loop (with a live sample callback, as the GUI uses it) and a bare
``perf_counter`` loop over the *same* session and inputs, interleaved in rounds so drift hits both,
and prints the ratio of the medians of their p50s.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edgestudio.backends.runtimes import get_runtime  # noqa: E402
from edgestudio.bench.inputs import make_inputs  # noqa: E402
from edgestudio.bench.latency import timed_loop  # noqa: E402


def bare_p50(call, n: int) -> float:  # type: ignore[no-untyped-def]
    lat = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter_ns()
        call()
        lat[i] = (time.perf_counter_ns() - t0) / 1e6
    return float(np.percentile(lat, 50))


def engine_p50(call, n: int) -> float:  # type: ignore[no-untyped-def]
    received: list[float] = []
    lat = timed_loop(call, n, on_sample=lambda i, ms: received.append(ms))
    assert len(received) == n
    return float(np.percentile(lat, 50))


def measure(model: Path, runtime: str, n: int, rounds: int = 7) -> tuple[float, float]:
    sess = get_runtime(runtime).load(model, threads=1)
    call = sess.bind(make_inputs(sess.inputs))
    for _ in range(20):
        call()
    bare, engine = [], []
    for _ in range(rounds):
        bare.append(bare_p50(call, n))
        engine.append(engine_p50(call, n))
    return statistics.median(bare), statistics.median(engine)


def main() -> int:
    import onnx

    samples = Path(__file__).resolve().parent.parent / "resources" / "samples"
    zoo = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
    cases = [(samples / "digits_cnn.onnx", "onnxruntime", 2000), (samples / "digits_cnn.tflite", "litert", 2000),
             (zoo / "light_squeezenet.onnx", "onnxruntime", 100), (zoo / "light_squeezenet.onnx", "openvino", 100)]
    print(f"{'model':<24}{'runtime':<13}{'bare p50 ms':>12}{'engine p50 ms':>15}{'ratio':>8}")
    worst = 0.0
    for model, rt, n in cases:
        bare, engine = measure(model, rt, n)
        ratio = engine / bare
        worst = max(worst, ratio)
        print(f"{model.name:<24}{rt:<13}{bare:>12.4f}{engine:>15.4f}{ratio:>8.3f}")
    print(f"worst engine/bare p50 ratio: {worst:.3f} (target <= 1.03)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
