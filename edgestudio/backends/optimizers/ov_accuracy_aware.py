"""OpenVINO INT8 with NNCF accuracy control: layers are reverted to float until top-1 is within max_drop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgestudio.backends.optimizers.base import OPTIMIZERS, OptimizationError, OptimizeOptions, Optimizer
from edgestudio.core.formats import ModelFormat
from edgestudio.core.progress import CancelToken, ProgressCallback


@OPTIMIZERS.register
class OvInt8AccuracyAware(Optimizer):
    method = "int8-accuracy-aware"
    runtime = "openvino"
    sources = (ModelFormat.OPENVINO,)
    requires = ("openvino", "nncf")
    distributions = ("openvino", "nncf")
    needs_calibration = True
    needs_labels = True
    keeps_in_float = True
    description = "INT8 that keeps top-1 within --max-drop of FP32 on your labeled data"

    def optimize(self, src: Path, fmt: ModelFormat, dst: Path, opts: OptimizeOptions, *,
                 progress: ProgressCallback, cancel: CancelToken) -> dict[str, Any]:
        import nncf

        from edgestudio.backends.optimizers._nncf import ignored_scope, quiet_nncf, read_ir, save_ir
        from edgestudio.core.datasets import load_dataset
        from edgestudio.core.inspection import inspect_model

        quiet_nncf()
        if not opts.dataset:
            raise OptimizationError(src, "int8-accuracy-aware needs labeled data: --dataset DATA")
        spec = inspect_model(src, fmt).inputs[0]
        val = load_dataset(opts.dataset, spec=spec, require_labels=True)
        xs = list(val.samples(spec))
        ys = val.labels()
        items = list(zip(xs, ys))
        calib_ds = load_dataset(opts.calibration, spec=spec) if opts.calibration else val
        calib = list(calib_ds.samples(spec, limit=opts.subset_size))

        def validate(compiled: Any, data: Any) -> float:
            cancel.check()
            out = compiled.outputs[0]
            hits = [int(np.argmax(compiled(x)[out]) == int(y)) for x, y in data]
            return float(np.mean(hits))

        progress(0.1, f"quantizing with accuracy control (max drop {opts.max_drop})")
        model = nncf.quantize_with_accuracy_control(
            read_ir(src), nncf.Dataset(calib), nncf.Dataset(items, lambda item: item[0]), validate,
            max_drop=opts.max_drop, preset=nncf.QuantizationPreset(opts.preset),
            subset_size=min(opts.subset_size, len(calib)), ignored_scope=ignored_scope(opts))
        cancel.check()
        save_ir(model, dst)
        return {"warnings": list(calib_ds.warnings), "validation_samples": len(items)}
