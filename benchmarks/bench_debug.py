"""How long per-layer truth takes on a ResNet50-size graph (target: a debug under a minute on this CPU), and whether
the profilers' per-layer totals add up to the latency measured by the benchmark (target: within 15 %).

ResNet50 (Keras, weights=None) -> ONNX -> ONNX Runtime static INT8 (16 random calibration samples), then:
``debug`` INT8 vs FP32 (every intermediate of both, 4 samples), ``debug`` of the OpenVINO IR twin, and ``profile``
on ONNX Runtime and OpenVINO against ``bench``'s p50 at the same thread count.

    python benchmarks/bench_debug.py [--samples 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import keras_app_onnx  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=4)
    args = ap.parse_args()
    import numpy as np

    from edgestudio.backends.optimizers.base import OptimizeOptions
    from edgestudio.bench.latency import BenchConfig, run_benchmark
    from edgestudio.bench.layers import compare_layers
    from edgestudio.bench.profile import profile_model
    from edgestudio.core.machine import default_threads
    from edgestudio.optimization.engine import optimize_model

    with tempfile.TemporaryDirectory(prefix="bench-debug-") as tmp:
        folder = Path(tmp)
        fp32 = keras_app_onnx(folder, "ResNet50")
        calib = folder / "calib.npz"
        np.savez(calib, x=np.random.default_rng(0).random((16, 224, 224, 3), dtype=np.float32) * 2 - 1)
        int8 = folder / "resnet50_int8.onnx"
        t0 = time.perf_counter()
        optimize_model(fp32, "int8-static", runtime="onnxruntime", output=int8,
                       options=OptimizeOptions(calibration=str(calib), keep_lossy=True))
        print(f"ResNet50 ONNX: {fp32.stat().st_size / 1e6:.0f} MB; ORT static INT8 in {time.perf_counter() - t0:.0f} s")
        t0 = time.perf_counter()
        d = compare_layers(fp32, int8, samples=args.samples)
        took = time.perf_counter() - t0
        first = d["first_diverging"]
        print(f"debug INT8 vs FP32: {took:.1f} s for {d['matched']} matched tensors ({d['matched_by_name']} by name), "
              f"{args.samples} samples; verdict {d['verdict']}; first diverging: "
              f"{first['node'] if first else '-'}  [target < 60 s: {'met' if took < 60 else 'MISSED'}]")
        import openvino as ov

        ir = folder / "resnet50.xml"
        ov.save_model(ov.convert_model(str(fp32)), str(ir), compress_to_fp16=False)
        t0 = time.perf_counter()
        d = compare_layers(fp32, ir, samples=args.samples)
        took = time.perf_counter() - t0
        print(f"debug IR vs ONNX: {took:.1f} s for {d['matched']} matched tensors; verdict {d['verdict']}  "
              f"[target < 60 s: {'met' if took < 60 else 'MISSED'}]")
        threads = default_threads()
        for runtime, model in (("onnxruntime", fp32), ("openvino", fp32)):
            # paired: profiled runs and plain timed runs in alternating blocks (this machine's load drifts)
            totals, p50s, walls, took = [], [], [], 0.0
            for _ in range(4):
                t0 = time.perf_counter()
                prof = profile_model(model, runtime=runtime, runs=20, threads=threads)
                took += time.perf_counter() - t0
                totals.append(prof["total_layer_ms"])
                walls.append(prof["wall_ms"])
                bench = run_benchmark(model, BenchConfig(runtime=runtime, iterations=30, warmup=5, threads=threads))
                p50s.append(bench.latency_ms.p50)
            total, p50, wall = statistics.median(totals), statistics.median(p50s), statistics.median(walls)
            gap = abs(total - p50) / p50
            graph = prof["graph"]
            print(f"profile {runtime}: {total:.2f} ms in layers vs bench p50 {p50:.2f} ms ({gap:.0%} apart; medians "
                  f"of 4 alternating blocks) at {threads} threads [target within 15 %: "
                  f"{'met' if gap <= 0.15 else 'MISSED'}]; the profiled runs' own wall time {wall:.2f} ms (layers "
                  f"{abs(total - wall) / wall:.0%} apart from it, profiling overhead {wall / p50 - 1:+.0%}); "
                  f"{took / 4:.1f} s per profile; {len(graph['nodes'])} nodes on the graph, "
                  f"{len(graph['not_on_graph'])} runtime-inserted")

if __name__ == "__main__":
    main()
