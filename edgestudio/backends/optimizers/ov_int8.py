"""OpenVINO INT8 post-training quantization with NNCF (presets performance / mixed, ignored scope)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgestudio.backends.optimizers.base import OPTIMIZERS, OptimizeOptions, Optimizer, calibration_feeds
from edgestudio.core.formats import ModelFormat
from edgestudio.core.progress import CancelToken, ProgressCallback


@OPTIMIZERS.register
class OvInt8(Optimizer):
    method = "int8-static"
    runtime = "openvino"
    sources = (ModelFormat.OPENVINO,)
    requires = ("openvino", "nncf")
    distributions = ("openvino", "nncf")
    needs_calibration = True
    keeps_in_float = True
    description = "NNCF post-training INT8; the fastest CPU variant in most measurements here"

    def optimize(self, src: Path, fmt: ModelFormat, dst: Path, opts: OptimizeOptions, *,
                 progress: ProgressCallback, cancel: CancelToken) -> dict[str, Any]:
        import nncf

        from edgestudio.backends.optimizers._nncf import ignored_scope, quiet_nncf, read_ir, save_ir
        from edgestudio.core.inspection import inspect_model

        quiet_nncf()
        specs = inspect_model(src, fmt).inputs
        samples, warnings = calibration_feeds(opts, specs, model=src)
        cancel.check()
        progress(0.2, f"quantizing with NNCF ({opts.preset}, {len(samples)} samples)")
        ir = read_ir(src)
        model = nncf.quantize(ir, nncf.Dataset(samples), preset=nncf.QuantizationPreset(opts.preset),
                              subset_size=min(opts.subset_size, len(samples)), ignored_scope=ignored_scope(opts, ir))
        cancel.check()
        save_ir(model, dst)
        return {"warnings": warnings, "calibration_samples": len(samples)}
