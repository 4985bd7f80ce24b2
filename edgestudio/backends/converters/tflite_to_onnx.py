"""TFLite -> ONNX with tf2onnx."""

from __future__ import annotations

from pathlib import Path

from edgestudio.backends.converters.base import (
    CONVERTERS,
    ConversionError,
    Converter,
    ConvertOptions,
    rename_onnx_io,
)
from edgestudio.backends.converters.tf_to_onnx import DEFAULT_OPSET
from edgestudio.core.formats import ModelFormat
from edgestudio.core.progress import CancelToken, ProgressCallback


@CONVERTERS.register
class TfliteToOnnx(Converter):
    name = "tflite2onnx"
    label = "tf2onnx (tflite)"
    sources = frozenset({ModelFormat.TFLITE})
    target = ModelFormat.ONNX
    requires = ("tf2onnx", "tensorflow")
    distributions = ("tf2onnx", "onnx")
    uses = ("opset", "layout", "input_names", "output_names")
    preference = 20
    tolerance = 1e-4

    def layout_change(self, opts: ConvertOptions) -> str | None:
        return "nchw" if opts.layout == "nchw" else None

    def convert(self, src: Path, fmt: ModelFormat, dst: Path, opts: ConvertOptions, *,
                progress: ProgressCallback, cancel: CancelToken) -> None:
        from edgestudio.core.loaders import quiet_tensorflow

        quiet_tensorflow()
        import tf2onnx

        from edgestudio.core.inspection import inspect_model

        opset = opts.opset or DEFAULT_OPSET
        progress(0.2, f"converting (opset {opset})")
        nchw = None
        if opts.layout == "nchw":
            nchw = [t.name for t in inspect_model(src, fmt).inputs if len(t.shape) == 4]
        tf2onnx.convert.from_tflite(str(src), opset=opset, inputs_as_nchw=nchw, output_path=str(dst))
        rename_onnx_io(dst, opts.input_names, opts.output_names)

    def explain(self, exc: BaseException, src: Path, fmt: ModelFormat) -> ConversionError:
        err = super().explain(exc, src, fmt)
        err.hint = "try another --opset, or run the TFLite model as it is on litert / openvino"
        return err
