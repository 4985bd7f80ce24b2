"""ONNX / SavedModel / TFLite -> OpenVINO IR with openvino.convert_model."""

from __future__ import annotations

from pathlib import Path

from edgestudio.backends.converters.base import CONVERTERS, ConversionError, Converter, ConvertOptions
from edgestudio.core.formats import ModelFormat
from edgestudio.core.progress import CancelToken, ProgressCallback


@CONVERTERS.register
class ToOpenVino(Converter):
    name = "openvino"
    label = "openvino.convert_model"
    sources = frozenset({ModelFormat.ONNX, ModelFormat.SAVED_MODEL, ModelFormat.TFLITE})
    target = ModelFormat.OPENVINO
    requires = ("openvino",)
    distributions = ("openvino",)
    uses = ("shapes", "compress_fp16")
    preference = 10
    tolerance = 1e-4

    def convert(self, src: Path, fmt: ModelFormat, dst: Path, opts: ConvertOptions, *,
                progress: ProgressCallback, cancel: CancelToken) -> None:
        import openvino as ov

        progress(0.1, "converting")
        kwargs = {}
        if opts.shapes:
            kwargs["input"] = {k: v for k, v in opts.shapes.items() if k} or [opts.shapes[""]]
        model = ov.convert_model(str(src), **kwargs)
        cancel.check()
        progress(0.7, "saving IR" + (" (FP16 weights)" if opts.compress_fp16 else ""))
        ov.save_model(model, str(dst), compress_to_fp16=bool(opts.compress_fp16))

    def explain(self, exc: BaseException, src: Path, fmt: ModelFormat) -> ConversionError:
        err = super().explain(exc, src, fmt)
        runtime = {ModelFormat.ONNX: "onnxruntime", ModelFormat.TFLITE: "litert",
                   ModelFormat.SAVED_MODEL: "tensorflow"}[fmt]
        if err.op:
            err.hint = (f"keep the model on its source runtime ({runtime}), or convert through another format "
                        f"with --via (e.g. --via onnx / --via tflite)")
        return err
