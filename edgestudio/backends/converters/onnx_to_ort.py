"""ONNX -> ORT format (.ort), the flatbuffer format of ONNX Runtime's minimal and mobile builds."""

from __future__ import annotations

from pathlib import Path

from edgestudio.backends.converters.base import CONVERTERS, Converter, ConvertOptions
from edgestudio.core.formats import ModelFormat
from edgestudio.core.progress import CancelToken, ProgressCallback


@CONVERTERS.register
class OnnxToOrt(Converter):
    name = "onnx-ort"
    label = "onnxruntime (ORT format)"
    sources = frozenset({ModelFormat.ONNX})
    target = ModelFormat.ORT
    requires = ("onnxruntime",)
    distributions = ("onnxruntime",)
    preference = 10
    quick_from = frozenset({ModelFormat.ONNX})
    tolerance = 1e-5

    def convert(self, src: Path, fmt: ModelFormat, dst: Path, opts: ConvertOptions, *,
                progress: ProgressCallback, cancel: CancelToken) -> None:
        import onnxruntime as ort

        progress(0.2, "optimizing and saving in ORT format")
        so = ort.SessionOptions()
        so.log_severity_level = 3
        # Basic optimizations only: the result must run on any build (as the ORT tools do for mobile).
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        so.optimized_model_filepath = str(dst)
        so.add_session_config_entry("session.save_model_format", "ORT")
        ort.InferenceSession(str(src), sess_options=so, providers=["CPUExecutionProvider"])
