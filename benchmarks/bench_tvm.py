"""Apache TVM, untuned and tuned, against ONNX Runtime, OpenVINO and LiteRT on MobileNetV2 (Keras, weights=None,
224x224), paired: every variant loaded once (TVM's in the tvm environment's process) and timed in alternating blocks.

    EDGESTUDIO_ENVS=.cache/envs python benchmarks/bench_tvm.py [--trials 2000] [--minutes 10] [--blocks 6]

Tuning is MetaSchedule with the XGBoost cost model, stopped at --minutes (whatever was measured by then is used).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("EDGESTUDIO_ENVS", str(ROOT / ".cache" / "envs"))

from benchmarks.common import cli, keras_app_onnx, print_paired  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=2000)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--blocks", type=int, default=6)
    ap.add_argument("--block", type=int, default=30)
    args = ap.parse_args()
    from edgestudio.core.machine import default_threads, machine_facts
    from edgestudio.execution.block_server import paired_benchmark

    with tempfile.TemporaryDirectory(prefix="bench-tvm-") as tmp:
        folder = Path(tmp)
        onnx = keras_app_onnx(folder, "MobileNetV2")
        tflite = folder / "mobilenetv2.tflite"
        cli("convert", str(folder / "mobilenetv2.keras"), "--to", "tflite", "-o", str(tflite))
        t0 = time.monotonic()
        cli("convert", str(onnx), "--to", "tvm", "-o", str(folder / "tvm_untuned"))
        print(f"TVM untuned: compiled in {time.monotonic() - t0:.0f} s")
        t0 = time.monotonic()
        cli("convert", str(onnx), "--to", "tvm", "-o", str(folder / "tvm_tuned"), "--tvm-trials", str(args.trials),
            "--tvm-minutes", str(args.minutes))
        tuning = json.loads((folder / "tvm_tuned" / "tvm.json").read_text())["tuning"]
        print(f"TVM tuned: {tuning['records']} measured schedules in {tuning['seconds']:.0f} s "
              f"({'stopped by the budget' if tuning['stopped_by_budget'] else 'all trials'}); "
              f"{time.monotonic() - t0:.0f} s with the compile")
        variants = [{"model": str(onnx), "runtime": "onnxruntime", "label": "ORT FP32"},
                    {"model": str(onnx), "runtime": "openvino", "precision": "f32", "label": "OpenVINO FP32"},
                    {"model": str(tflite), "runtime": "litert", "label": "LiteRT FP32"},
                    {"model": str(folder / "tvm_untuned"), "runtime": "tvm", "label": "TVM untuned"},
                    {"model": str(folder / "tvm_tuned"), "runtime": "tvm", "label": "TVM tuned"}]
        m = machine_facts()
        print(f"paired: {args.blocks} blocks of {args.block} runs, {default_threads()} threads each, on {m.get('cpu')}")
        r = paired_benchmark(variants, blocks=args.blocks, block=args.block)
        print_paired(r)


if __name__ == "__main__":
    main()
