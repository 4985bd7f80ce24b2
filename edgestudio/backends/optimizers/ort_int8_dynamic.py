"""ONNX Runtime dynamic INT8: weights quantized ahead, activations at run time (good for transformers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgestudio.backends.optimizers.base import OPTIMIZERS, OptimizeOptions, Optimizer
from edgestudio.core.formats import ModelFormat
from edgestudio.core.progress import CancelToken, ProgressCallback


@OPTIMIZERS.register
class OrtInt8Dynamic(Optimizer):
    method = "int8-dynamic"
    runtime = "onnxruntime"
    sources = (ModelFormat.ONNX,)
    requires = ("onnxruntime",)
    distributions = ("onnxruntime",)
    description = "dynamic INT8 (MatMul/Gemm/Conv weights); helps transformers, slows CNNs down on x86"

    def optimize(self, src: Path, fmt: ModelFormat, dst: Path, opts: OptimizeOptions, *,
                 progress: ProgressCallback, cancel: CancelToken) -> dict[str, Any]:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        progress(0.2, "quantizing weights")
        quantize_dynamic(str(src), str(dst), per_channel=opts.per_channel,
                         weight_type=QuantType.QUInt8 if opts.weight_type == "uint8" else QuantType.QInt8)
        ops = {n.op_type for n in onnx.load(str(src), format="protobuf", load_external_data=False).graph.node}
        warnings = []
        if "Conv" in ops:
            # Measured on this CPU: ResNet50 170-190 ms vs 27 ms FP32 (FACTS.md).
            warnings.append("dynamic INT8 makes convolutional networks several times slower with ONNX Runtime "
                            "on x86; prefer int8-static")
        from edgestudio.backends.optimizers.ort_int8_static import count_quantized_nodes

        quantized = count_quantized_nodes(dst)
        if quantized == 0:
            warnings.append("nothing was quantized: no MatMul/Gemm/Conv outside If/Loop branches; it is the FP32 "
                            "model again")
        return {"warnings": warnings, "quantized_nodes": quantized}
