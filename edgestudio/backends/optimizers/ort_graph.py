"""ONNX Runtime graph optimization (basic / extended / all), saved offline so sessions start faster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgestudio.backends.optimizers.base import OPTIMIZERS, OptimizeOptions, Optimizer
from edgestudio.core.formats import ModelFormat
from edgestudio.core.progress import CancelToken, ProgressCallback


@OPTIMIZERS.register
class OrtGraphOptimization(Optimizer):
    method = "graph-opt"
    runtime = "onnxruntime"
    sources = (ModelFormat.ONNX,)
    requires = ("onnxruntime",)
    distributions = ("onnxruntime",)
    description = "fuse and fold the graph offline; 'all' ties the file to this ONNX Runtime build and CPU"

    def optimize(self, src: Path, fmt: ModelFormat, dst: Path, opts: OptimizeOptions, *,
                 progress: ProgressCallback, cancel: CancelToken) -> dict[str, Any]:
        import onnxruntime as ort

        level = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                 "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                 "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[opts.level]
        progress(0.2, f"optimizing ({opts.level})")
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.graph_optimization_level = level
        so.optimized_model_filepath = str(dst)
        ort.InferenceSession(str(src), sess_options=so, providers=["CPUExecutionProvider"])
        warnings = ["level 'all' includes CPU-specific layout fusions: run the result with ONNX Runtime on a "
                    "similar CPU"] if opts.level == "all" else []
        return {"warnings": warnings}
