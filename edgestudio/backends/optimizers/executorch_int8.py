"""ExecuTorch INT8: PT2E quantization with the XNNPACK quantizer (symmetric INT8, per-channel weights by default),
calibrated on the user's samples, then lowered to a ``.pte`` with the XNNPACK partitioner. Runs in the
``executorch`` environment; the drift guard compares the result with the PyTorch model on the same samples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgestudio.backends.optimizers.base import (
    OPTIMIZERS,
    OptimizationError,
    OptimizeOptions,
    Optimizer,
    calibration_feeds,
)
from edgestudio.core.formats import ModelFormat
from edgestudio.core.progress import CancelToken, ProgressCallback


@OPTIMIZERS.register
class ExecuTorchInt8(Optimizer):
    method = "int8-static"
    runtime = "executorch"
    sources = (ModelFormat.PT2, ModelFormat.TORCHSCRIPT)
    needs_calibration = True
    requires = ("torch", "executorch")
    distributions = ("torch", "executorch", "torchao")
    description = "PT2E static INT8 with the XNNPACK quantizer, lowered to an ExecuTorch program (.pte)"

    @classmethod
    def output_format(cls, source: ModelFormat) -> ModelFormat:
        return ModelFormat.PTE

    def optimize(self, src: Path, fmt: ModelFormat, dst: Path, opts: OptimizeOptions, *,
                 progress: ProgressCallback, cancel: CancelToken) -> dict[str, Any]:
        import torch
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        from edgestudio.core.inspection import load_torch_program

        prog = load_torch_program(src)
        samples, warnings = calibration_feeds(opts, prog.inputs, src)
        if not samples:
            raise OptimizationError(src, "no calibration samples")
        example = prog.static_args(samples[0])
        progress(0.1, "torch.export at the calibration samples' shape")
        from edgestudio.core.readers.torch import exported_at

        module = exported_at(prog, example).module()
        quantizer = XNNPACKQuantizer()
        quantizer.set_global(get_symmetric_quantization_config(is_per_channel=opts.per_channel))
        module = prepare_pt2e(module, quantizer)
        rows = 0
        for i, feed in enumerate(samples):  # one row at a time: the program is static
            cancel.check()
            args = prog.args(feed)
            n = max((int(a.shape[0]) for a in args if getattr(a, "ndim", 0)), default=1)
            for k in range(n):
                module(*[a[k:k + 1] if getattr(a, "ndim", 0) and a.shape[0] == n else a for a in args])
                rows += 1
                if rows >= opts.subset_size:
                    break
            progress(0.1 + 0.5 * (i + 1) / len(samples), f"calibrating ({rows} samples)")
            if rows >= opts.subset_size:
                break
        module = convert_pt2e(module)
        cancel.check()
        progress(0.7, "lowering to ExecuTorch (XNNPACK partitioner)")
        from edgestudio.backends.converters.torch_to_executorch import lower_to_pte

        dst.write_bytes(lower_to_pte(torch.export.export(module, example), opts.delegate))
        return {"warnings": warnings, "calibration_samples": rows, "per_channel": opts.per_channel}
