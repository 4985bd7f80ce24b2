"""Conversion through the engine vs the bare library call (target: engine <= 1.1x bare, parity check off).

The engine adds format detection, planning, an output check (the result is loaded and inspected) and, when
on, the numerical parity check; the last is printed separately, since it runs both models.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgestudio.backends.converters.base import ConvertOptions  # noqa: E402
from edgestudio.conversion.engine import convert_model  # noqa: E402
from edgestudio.core.formats import ModelFormat  # noqa: E402


def bare_onnx_to_ir(src: Path, dst: Path) -> None:
    import openvino as ov

    ov.save_model(ov.convert_model(str(src)), str(dst), compress_to_fp16=False)


def bare_keras_to_tflite(src: Path, dst: Path) -> None:
    import keras
    import tensorflow as tf

    model = keras.saving.load_model(str(src), compile=False, safe_mode=True)
    dst.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())


def timed(fn, *args, **kwargs) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t0


def main() -> int:
    import onnx

    zoo = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
    samples = ROOT / "resources" / "samples"
    cases = [
        ("resnet50 ONNX -> IR", zoo / "light_resnet50.onnx", ModelFormat.OPENVINO, ".xml", bare_onnx_to_ir),
        ("digits ONNX -> IR", samples / "digits_cnn.onnx", ModelFormat.OPENVINO, ".xml", bare_onnx_to_ir),
        ("digits Keras -> TFLite", samples / "digits_cnn.keras", ModelFormat.TFLITE, ".tflite", bare_keras_to_tflite),
    ]
    print(f"{'conversion':<26}{'bare s':>9}{'engine s':>10}{'ratio':>7}{'+parity s':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        for name, src, target, suffix, bare in cases:
            bare(src, t / f"warm{suffix}")  # first call pays imports for both
            b, e, p = [], [], []
            for i in range(6):  # alternate the order each round so drift (page cache, clocks) hits both
                run_bare = lambda: b.append(timed(bare, src, t / f"b{i}{suffix}"))  # noqa: E731
                run_engine = lambda: e.append(timed(convert_model, src, target, output=t / f"e{i}{suffix}",  # noqa: E731
                                                    options=ConvertOptions(validate=False)))
                for step in ((run_bare, run_engine) if i % 2 == 0 else (run_engine, run_bare)):
                    step()
                if i < 3:
                    p.append(timed(convert_model, src, target, output=t / f"p{i}{suffix}"))
            bm, em, pm = statistics.median(b), statistics.median(e), statistics.median(p)
            print(f"{name:<26}{bm:>9.3f}{em:>10.3f}{em / bm:>7.2f}{pm:>11.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
