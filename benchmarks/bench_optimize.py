"""MobileNetV2 and ResNet50 (Keras, weights=None, built here) FP32 vs every optimized variant on every
backend of this CPU: p50 latency, speed-up over ONNX Runtime FP32, size, and the variant auto-optimize
picks (target: the pick within 1.1x of the best p50 in the table).

Weights are random (nothing is downloaded), so accuracy is measured as top-1 agreement with the FP32
model on random inputs; latency does not depend on the weights' values.

    python benchmarks/bench_optimize.py [mobilenetv2] [resnet50] [--iterations N] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edgestudio.backends.optimizers.base import OptimizeOptions  # noqa: E402
from edgestudio.optimization.auto import auto_optimize  # noqa: E402


def build(name: str, folder: Path) -> Path:
    import keras

    ctor = {"mobilenetv2": keras.applications.MobileNetV2, "resnet50": keras.applications.ResNet50}[name]
    model = ctor(weights=None, input_shape=(224, 224, 3))
    path = folder / f"{name}.keras"
    model.save(path)
    return path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="*", default=["mobilenetv2", "resnet50"])
    ap.add_argument("--iterations", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgestudio-bench-opt-") as tmp:
        for name in args.models:
            t0 = time.perf_counter()
            src = build(name, Path(tmp))
            table = auto_optimize(src, runtime="any", iterations=args.iterations, warmup=10,
                                  options=OptimizeOptions(calibration="random", subset_size=32, max_drop=0.05),
                                  log=lambda line: print("   ", line, flush=True))
            rows = [r for r in table["candidates"] if r.get("p50_ms")]
            base = next((r["p50_ms"] for r in rows if r["label"] == "ORT FP32"), None)
            best_p50 = min(r["p50_ms"] for r in rows)
            print(f"\n{name} (224x224, batch 1; {time.perf_counter() - t0:.0f} s to build, convert, optimize, measure)")
            print(f"{'variant':<42}{'p50 ms':>9}{'speed-up':>10}{'size MB':>9}{'agreement':>11}  precision")
            for r in table["candidates"]:
                if r.get("p50_ms") is None:
                    print(f"{r['label']:<42}  failed: {r['error']}")
                    continue
                up = f"{base / r['p50_ms']:.2f}x" if base else "-"
                print(f"{r['label']:<42}{r['p50_ms']:>9.2f}{up:>10}{r['size_bytes'] / 2**20:>9.1f}"
                      f"{r['accuracy']:>11.3f}  {r.get('precision_used') or '-'}")
            pick = table["best"]
            if pick:
                print(f"auto-optimize picks: {pick['label']} ({pick['p50_ms']:.2f} ms) = "
                      f"{pick['p50_ms'] / best_p50:.2f}x the best p50 in the table (target <= 1.1)")
            print(flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
