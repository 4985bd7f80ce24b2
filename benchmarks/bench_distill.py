"""Knowledge distillation on the digits sample, the full run: the CNN teaches itself at widths 0.5 and 0.25 on the
train split's images (no labels), 60 epochs; top-1 of teacher and student on the test split, parameters, time; then
the students' latency beside the teacher's (ONNX Runtime, paired).

    python benchmarks/bench_distill.py [--epochs 60]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import SAMPLES, cli  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=60)
    args = ap.parse_args()
    import numpy as np

    from edgestudio.execution.block_server import paired_benchmark
    from edgestudio.samples import load_digits_split

    with tempfile.TemporaryDirectory(prefix="bench-distill-") as tmp:
        folder = Path(tmp)
        np.savez(folder / "unlabeled.npz", x=load_digits_split(0)[0])
        variants = [{"model": str(SAMPLES / "digits_cnn.onnx"), "runtime": "onnxruntime", "label": "teacher"}]
        for width in (0.5, 0.25):
            out = folder / f"student_{width}.keras"
            d = cli("distill", str(SAMPLES / "digits_cnn.keras"), "--data", str(folder / "unlabeled.npz"), "--width",
                    str(width), "--epochs", str(args.epochs), "--dataset", str(SAMPLES / "digits_test.npz"),
                    "-o", str(out))
            print(f"width {width}: {d['student_params']:,} parameters ({d['param_ratio']:.0%}), top-1 student "
                  f"{d['student_top1']:.4f} vs teacher {d['teacher_top1']:.4f} "
                  f"({(d['student_top1'] - d['teacher_top1']) * 100:+.2f} points; target within -2), {d['seconds']:.0f} s "
                  f"[{'met' if d['student_top1'] >= d['teacher_top1'] - 0.02 and d['param_ratio'] <= 0.5 else 'MISSED'}]")
            onnx = folder / f"student_{width}.onnx"
            cli("convert", str(out), "--to", "onnx", "-o", str(onnx))
            variants.append({"model": str(onnx), "runtime": "onnxruntime", "label": f"student x{width}"})
        r = paired_benchmark(variants, blocks=6, block=200)
        for v in sorted(r["variants"], key=lambda v: v.get("rank") or 99):
            lo, hi = v["ci_ms"]
            print(f"  #{v['rank']} {v['label']:<14} ORT p50 {v['p50_ms'] * 1000:7.1f} us  [{lo * 1000:.1f}, {hi * 1000:.1f}]")


if __name__ == "__main__":
    main()
