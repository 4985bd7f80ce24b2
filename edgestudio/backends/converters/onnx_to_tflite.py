"""ONNX -> TFLite with onnx2tf (NCHW graphs become NHWC TFLite models unless layout=nchw).

onnx2tf pins old versions of the whole stack; it is installed without its pins (see the Makefile) and
runs fine on ours. The ONNX model is simplified with onnxslim first (onnx2tf needs constant weights), and
onnx2tf's test-image download is replaced by local synthetic images: nothing is fetched at run time.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from edgestudio.backends.converters.base import CONVERTERS, ConversionError, Converter, ConvertOptions
from edgestudio.core.formats import ModelFormat
from edgestudio.core.progress import CancelToken, ProgressCallback


def _synthetic_test_images():  # type: ignore[no-untyped-def]
    import numpy as np

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:128, 0:128] / 127.0
    base = np.stack([yy, xx, (yy + xx) / 2], axis=-1).astype(np.float32)
    return np.clip(base[None] * rng.random((20, 1, 1, 3)) + 0.1 * rng.random((20, 128, 128, 3)), 0, 1).astype(np.float32)


@CONVERTERS.register
class OnnxToTflite(Converter):
    name = "onnx2tf"
    label = "onnx2tf"
    sources = frozenset({ModelFormat.ONNX})
    target = ModelFormat.TFLITE
    requires = ("onnx2tf", "tensorflow", "onnxslim")
    distributions = ("onnx2tf", "tensorflow-cpu", "onnxslim")
    uses = ("shapes", "layout")
    preference = 40
    tolerance = 1e-3

    def convert(self, src: Path, fmt: ModelFormat, dst: Path, opts: ConvertOptions, *,
                progress: ProgressCallback, cancel: CancelToken) -> None:
        from edgestudio.core.loaders import quiet_tensorflow

        quiet_tensorflow()
        import onnx2tf
        import onnx2tf.onnx2tf as impl

        from edgestudio.backends.converters.onnx_simplify import slim

        impl.download_test_image_data = _synthetic_test_images  # never reach for the network
        with tempfile.TemporaryDirectory(prefix="edgestudio-onnx2tf-") as tmp:
            work = Path(tmp)
            progress(0.05, "simplifying (constant weights for onnx2tf)")
            slim(src, work / "model.onnx")
            cancel.check()
            progress(0.2, "converting with onnx2tf")
            kwargs: dict = {"non_verbose": True, "output_signaturedefs": True, "disable_strict_mode": True}
            if opts.shapes:
                kwargs["overwrite_input_shape"] = [f"{k}:{','.join(map(str, v))}" for k, v in opts.shapes.items() if k]
            if opts.layout == "nchw":
                kwargs["keep_ncw_or_nchw_or_ncdhw_input_names"] = _input_names(work / "model.onnx")
            onnx2tf.convert(input_onnx_file_path=str(work / "model.onnx"), output_folder_path=str(work / "out"),
                            **kwargs)
            produced = work / "out" / "model_float32.tflite"
            if not produced.exists():
                raise ConversionError(src, "onnx2tf finished without writing a float32 TFLite model",
                                      converter=self.name)
            shutil.move(str(produced), dst)

    def explain(self, exc: BaseException, src: Path, fmt: ModelFormat) -> ConversionError:
        err = super().explain(exc, src, fmt)
        err.hint = ("convert the original Keras/SavedModel to TFLite directly, or keep the model on "
                    "onnxruntime / openvino")
        return err


def _input_names(path: Path) -> list[str]:
    import onnx

    g = onnx.load(str(path), load_external_data=False).graph
    inits = {i.name for i in g.initializer}
    return [v.name for v in g.input if v.name not in inits]
