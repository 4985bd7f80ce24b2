"""LiteRT dynamic-range INT8: int8 weights, float activations quantized on the fly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgestudio.backends.optimizers.base import OPTIMIZERS, OptimizeOptions, Optimizer
from edgestudio.core.formats import ModelFormat
from edgestudio.core.progress import CancelToken, ProgressCallback


@OPTIMIZERS.register
class TfliteDynamic(Optimizer):
    method = "int8-dynamic"
    runtime = "litert"
    sources = (ModelFormat.SAVED_MODEL, ModelFormat.KERAS, ModelFormat.KERAS_H5)
    requires = ("tensorflow",)
    distributions = ("tensorflow-cpu",)
    description = "dynamic-range INT8: a quarter of the size, no calibration data"

    def optimize(self, src: Path, fmt: ModelFormat, dst: Path, opts: OptimizeOptions, *,
                 progress: ProgressCallback, cancel: CancelToken) -> dict[str, Any]:
        import tensorflow as tf

        from edgestudio.backends.optimizers._tflite import convert

        progress(0.2, "converting with dynamic-range INT8")
        convert(src, fmt, dst, lambda conv: setattr(conv, "optimizations", [tf.lite.Optimize.DEFAULT]))
        return {}
