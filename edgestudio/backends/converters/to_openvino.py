"""ONNX / SavedModel / TFLite -> OpenVINO IR with openvino.convert_model."""

from __future__ import annotations

import re
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
    quick_from = frozenset({ModelFormat.ONNX})
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
        reason = _frontend_reason(str(exc))
        if err.op and reason:  # "does not support op Conv" would be wrong: it supports Conv, not this instance
            node = re.search(r"<Node\((\w+)\): ([^>]+)>", str(exc))
            where = f" (node {node.group(2)})" if node else (f" (node {err.node})" if err.node else "")
            err = ConversionError(src, f"{self.label} could not convert op {err.op}{where}: {reason}",
                                  converter=self.name, op=err.op, node=node.group(2) if node else err.node)
        runtime = {ModelFormat.ONNX: "onnxruntime", ModelFormat.TFLITE: "litert",
                   ModelFormat.SAVED_MODEL: "tensorflow"}[fmt]
        if err.op:
            err.hint = (f"keep the model on its source runtime ({runtime}), or convert through another format "
                        f"with --via (e.g. --via onnx / --via tflite)")
        return err


_NOISE = ("Check ", "While validating", "FrontEnd API failed", "-- ", "[ONNX Frontend]", "Model wasn't",
          "Failed operations", "Summary", "Exception from", "Traceback")


def _frontend_reason(message: str) -> str | None:
    """The first line of OpenVINO's frontend report that says why an op failed (not where it failed)."""
    for line in message.splitlines():
        line = line.strip()
        if line and not line.startswith(_NOISE) and not line.endswith(":"):
            return line[:200]
    return None
