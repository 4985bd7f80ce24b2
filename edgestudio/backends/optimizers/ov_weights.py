"""OpenVINO weight compression with NNCF: INT8 or INT4 weights, float activations (for large models)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgestudio.backends.optimizers.base import OPTIMIZERS, OptimizeOptions, Optimizer
from edgestudio.core.formats import ModelFormat
from edgestudio.core.progress import CancelToken, ProgressCallback


class _OvWeights(Optimizer):
    runtime = "openvino"
    sources = (ModelFormat.OPENVINO,)
    requires = ("openvino", "nncf")
    distributions = ("openvino", "nncf")
    bits: int = 8

    def optimize(self, src: Path, fmt: ModelFormat, dst: Path, opts: OptimizeOptions, *,
                 progress: ProgressCallback, cancel: CancelToken) -> dict[str, Any]:
        import nncf

        from edgestudio.backends.optimizers._nncf import ignored_scope, quiet_nncf, read_ir, save_ir

        quiet_nncf()
        progress(0.2, f"compressing weights to INT{self.bits}")
        kwargs: dict[str, Any] = {"ignored_scope": ignored_scope(opts)}
        if self.bits == 8:
            kwargs["mode"] = nncf.CompressWeightsMode.INT8_ASYM
        else:
            kwargs.update(mode=nncf.CompressWeightsMode.INT4_SYM, ratio=opts.ratio, group_size=opts.group_size,
                          all_layers=True)
        model = nncf.compress_weights(read_ir(src), **{k: v for k, v in kwargs.items() if v is not None})
        cancel.check()
        save_ir(model, dst)
        return {"warnings": ["weight compression targets large (transformer) models; small CNNs gain little "
                             "speed"] if self.bits == 4 else []}


@OPTIMIZERS.register
class OvWeightsInt8(_OvWeights):
    method = "weights-int8"
    bits = 8
    keeps_in_float = True
    description = "INT8 weights (asymmetric), float compute; no calibration data needed"


@OPTIMIZERS.register
class OvWeightsInt4(_OvWeights):
    method = "weights-int4"
    bits = 4
    description = "INT4 weights (symmetric, grouped); for large language/transformer models"
