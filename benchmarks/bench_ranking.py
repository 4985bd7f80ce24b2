"""Which variant is fastest? Sequential one-off benchmarks vs the paired round, each repeated: how often does each
method give the same ranking? (The paired round loads every variant once and times them in alternating blocks,
so the machine's drift hits all alike.)

    python benchmarks/bench_ranking.py [--repeats 5] [--iterations 300]

Variants: the digits CNN on ONNX Runtime, OpenVINO and LiteRT (all 2 threads), and MobileNetV2 224 (Keras,
weights=None) on ONNX Runtime and OpenVINO, whose p50s are close enough for the order to be in doubt.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import mobilenet_onnx  # noqa: E402

SAMPLES = ROOT / "resources" / "samples"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--iterations", type=int, default=300)
    args = ap.parse_args()
    from edgestudio.bench.latency import BenchConfig, run_benchmark
    from edgestudio.bench.paired import paired_benchmark

    with tempfile.TemporaryDirectory() as tmp:
        mnv2 = mobilenet_onnx(Path(tmp))
        sets = {
            "digits CNN x3 runtimes": [(SAMPLES / "digits_cnn.onnx", "onnxruntime"),
                                       (SAMPLES / "digits_cnn.onnx", "openvino"),
                                       (SAMPLES / "digits_cnn.tflite", "litert")],
            "MobileNetV2 ORT vs OpenVINO": [(mnv2, "onnxruntime"), (mnv2, "openvino")],
        }
        for name, variants in sets.items():
            seq, par = collections.Counter(), collections.Counter()
            seq_p50: dict[str, list[float]] = collections.defaultdict(list)
            par_p50: dict[str, list[float]] = collections.defaultdict(list)
            ties = 0
            for _ in range(args.repeats):
                p50 = {}
                for model, rt in variants:
                    res = run_benchmark(model, BenchConfig(runtime=rt, iterations=args.iterations, threads=2))
                    p50[rt] = res.latency_ms.p50
                    seq_p50[rt].append(res.latency_ms.p50)
                seq[" < ".join(sorted(p50, key=p50.get))] += 1
                r = paired_benchmark([{"model": str(m), "runtime": rt, "threads": 2} for m, rt in variants],
                                     blocks=6, block=max(20, args.iterations // 6))
                ranked = sorted(r["variants"], key=lambda v: v["rank"])
                par[" < ".join(v["runtime"] for v in ranked)] += 1
                ties += sum(bool(v["tied"]) for v in ranked)
                for v in ranked:
                    par_p50[v["runtime"]].append(v["p50_ms"])
            print(f"{name}: {args.repeats} repeats")
            print(f"  sequential rankings: {dict(seq)}")
            print(f"  paired rankings:     {dict(par)}   (ties declared: {ties})")
            for rt in seq_p50:
                s, p = seq_p50[rt], par_p50[rt]
                spread = lambda xs: (max(xs) - min(xs)) / min(xs) * 100  # noqa: E731
                print(f"  {rt:<12} sequential p50 {min(s):.3f}-{max(s):.3f} ms (spread {spread(s):.0f} %); "
                      f"paired {min(p):.3f}-{max(p):.3f} ms (spread {spread(p):.0f} %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
