"""ONNX Runtime FP16: weights and compute in half precision (onnxconverter-common), float32 inputs/outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgestudio.backends.optimizers.base import OPTIMIZERS, OptimizeOptions, Optimizer
from edgestudio.core.formats import ModelFormat
from edgestudio.core.progress import CancelToken, ProgressCallback


@OPTIMIZERS.register
class OrtFp16(Optimizer):
    method = "fp16"
    runtime = "onnxruntime"
    sources = (ModelFormat.ONNX,)
    requires = ("onnxconverter_common", "onnx")
    distributions = ("onnxconverter-common", "onnx")
    description = "half-precision weights and compute; halves the size (no speed-up on CPUs without FP16 units)"

    def optimize(self, src: Path, fmt: ModelFormat, dst: Path, opts: OptimizeOptions, *,
                 progress: ProgressCallback, cancel: CancelToken) -> dict[str, Any]:
        import onnx
        from onnxconverter_common import float16

        progress(0.2, "converting weights to FP16")
        model = float16.convert_float_to_float16(onnx.load(str(src), format="protobuf"), keep_io_types=True)
        onnx.save(model, str(dst), format="protobuf")
        return {"warnings": ["FP16 brings no speed-up on x86 CPUs; it halves the size"]}
