"""ONNX -> TensorFlow SavedModel with onnx2tf (the same run as ONNX -> TFLite; NCHW inputs become NHWC).

What it is for: TensorFlow's own tools on an ONNX model, above all full-integer TFLite quantization with a
representative dataset (``optimize --method int8-static --runtime litert`` on an ONNX or TFLite source goes
ONNX -> SavedModel -> INT8 TFLite), which microcontrollers need.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from edgestudio.backends.converters.base import CONVERTERS, ConversionError, Converter, ConvertOptions
from edgestudio.backends.converters.onnx_to_tflite import run_onnx2tf
from edgestudio.core.formats import ModelFormat
from edgestudio.core.progress import CancelToken, ProgressCallback

SAVED_MODEL_PARTS = ("saved_model.pb", "variables", "assets", "fingerprint.pb")


@CONVERTERS.register
class OnnxToSavedModel(Converter):
    name = "onnx2tf-savedmodel"
    label = "onnx2tf (SavedModel)"
    sources = frozenset({ModelFormat.ONNX})
    target = ModelFormat.SAVED_MODEL
    requires = ("onnx2tf", "tensorflow", "onnxslim")
    distributions = ("onnx2tf", "tensorflow-cpu", "onnxslim")
    uses = ("shapes", "layout")
    preference = 50
    tolerance = 1e-3

    def convert(self, src: Path, fmt: ModelFormat, dst: Path, opts: ConvertOptions, *,
                progress: ProgressCallback, cancel: CancelToken) -> None:
        with tempfile.TemporaryDirectory(prefix="edgestudio-onnx2tf-") as tmp:
            # on the way to TF.js, whose conv2d has no groups: grouped convolutions are written as separate ones
            # (onnx2tf's -dgc; not for TFLite, whose INT8 quantizer then leaves them in float)
            out = run_onnx2tf(src, opts, Path(tmp), progress=progress, cancel=cancel,
                              portable=opts.chain_target == ModelFormat.TFJS.value)
            if not (out / "saved_model.pb").exists():
                raise ConversionError(src, "onnx2tf finished without writing a SavedModel", converter=self.name)
            dst.mkdir(parents=True, exist_ok=True)
            for part in SAVED_MODEL_PARTS:
                if (out / part).exists():
                    shutil.move(str(out / part), dst / part)

    def layout_change(self, opts: ConvertOptions) -> str | None:
        return None if opts.layout == "nchw" else "nhwc"
