"""OpenVINO FP16: IR weights stored in half precision (compute precision stays the device's choice)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgestudio.backends.optimizers.base import OPTIMIZERS, OptimizeOptions, Optimizer
from edgestudio.core.formats import ModelFormat
from edgestudio.core.progress import CancelToken, ProgressCallback


@OPTIMIZERS.register
class OvFp16(Optimizer):
    method = "fp16"
    runtime = "openvino"
    sources = (ModelFormat.OPENVINO,)
    requires = ("openvino",)
    distributions = ("openvino",)
    description = "FP16 weights in the IR: half the size; the CPU decompresses them at load"

    def optimize(self, src: Path, fmt: ModelFormat, dst: Path, opts: OptimizeOptions, *,
                 progress: ProgressCallback, cancel: CancelToken) -> dict[str, Any]:
        import openvino as ov

        from edgestudio.backends.optimizers._nncf import read_ir

        progress(0.3, "compressing weights to FP16")
        ov.save_model(read_ir(src), str(dst), compress_to_fp16=True)
        return {}
