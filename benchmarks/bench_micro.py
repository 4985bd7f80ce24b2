"""TensorFlow Lite Micro: the graph-replay arena estimate vs the arena measured in the real TFLM interpreter
(PyPI tflite-micro), for a few models; the measured one is what `package --tflm` writes.

    python benchmarks/bench_micro.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SAMPLES = ROOT / "resources" / "samples"


def _int8(src: Path, out: Path) -> Path:
    subprocess.run([sys.executable, "-m", "edgestudio", "optimize", str(src), "--method", "int8-static", "--runtime",
                    "litert", "--calibration", str(SAMPLES / "digits_calib.npz"), "-o", str(out)], check=True,
                   capture_output=True, cwd=ROOT)
    return out


def _keras_int8(folder: Path, name: str, build: str) -> Path:
    """A Keras model built by ``build`` (code defining ``m``), converted to full INT8 with int8 I/O."""
    code = f"""
import numpy as np, tensorflow as tf
{build}
def rep():
    for _ in range(16):
        yield [np.random.default_rng(0).random((1, 48, 48, 1), dtype=np.float32)]
c = tf.lite.TFLiteConverter.from_keras_model(m)
c.optimizations = [tf.lite.Optimize.DEFAULT]
c.representative_dataset = rep
c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
c.inference_input_type = tf.int8
c.inference_output_type = tf.int8
open({str(folder / name)!r}, "wb").write(c.convert())
"""
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return folder / name


def main() -> int:
    from edgestudio.packaging.tflm import verify_tflm

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        models = {"digits CNN, float": SAMPLES / "digits_cnn.tflite",
                  "digits CNN, full INT8": _int8(SAMPLES / "digits_cnn.keras", folder / "digits_int8.tflite"),
                  "conv + GAP 48x48, INT8 I/O": _keras_int8(folder, "gap.tflite", (
                      "i = tf.keras.Input((48, 48, 1)); x = tf.keras.layers.Conv2D(8, 3, strides=2, activation='relu')(i)\n"
                      "x = tf.keras.layers.GlobalAveragePooling2D()(x)\n"
                      "m = tf.keras.Model(i, tf.keras.layers.Dense(10, activation='softmax')(x))")),
                  "MobileNetV2 0.35 48x48, INT8 I/O": _keras_int8(folder, "mbv2.tflite", (
                      "m = tf.keras.applications.MobileNetV2(input_shape=(48, 48, 1), alpha=0.35, weights=None, "
                      "classes=10)"))}
        print(f"{'model':<36}{'flash B':>10}{'estimate B':>12}{'measured B':>12}{'head':>9}{'tail':>8}  TFLM vs LiteRT")
        from edgestudio.packaging.tflm import TflmError, arena_estimate

        for name, path in models.items():
            try:
                v = verify_tflm(path)
            except TflmError as exc:
                print(f"{name:<36}{path.stat().st_size:>10,}{arena_estimate(path)['arena_bytes']:>12,}"
                      f"{'-':>12}{'':>9}{'':>8}  {exc.cause}")
                continue
            parts = v["arena_parts"]
            print(f"{name:<36}{v['flash_bytes']:>10,}{v['estimate_bytes']:>12,}{v['arena_bytes']:>12,}"
                  f"{parts.get('head', 0):>9,}{parts.get('tail', 0):>8,}  {v['parity']['verdict']} "
                  f"(max abs diff {v['parity']['max_abs_diff']:.3g})")
    print("measured: the smallest 16-byte multiple TFLM allocates and runs with, on this 64-bit host")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
