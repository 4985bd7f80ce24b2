"""LiteRT FP16: float16 weights in the TFLite model (dequantized at load on CPU, native on GPU delegates)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgestudio.backends.optimizers.base import OPTIMIZERS, OptimizeOptions, Optimizer
from edgestudio.core.formats import ModelFormat
from edgestudio.core.progress import CancelToken, ProgressCallback


@OPTIMIZERS.register
class TfliteFp16(Optimizer):
    method = "fp16"
    runtime = "litert"
    sources = (ModelFormat.SAVED_MODEL, ModelFormat.KERAS, ModelFormat.KERAS_H5)
    requires = ("tensorflow",)
    distributions = ("tensorflow-cpu",)
    description = "FP16 weights: half the size; fast on GPU delegates"

    def optimize(self, src: Path, fmt: ModelFormat, dst: Path, opts: OptimizeOptions, *,
                 progress: ProgressCallback, cancel: CancelToken) -> dict[str, Any]:
        import tensorflow as tf

        from edgestudio.backends.optimizers._tflite import convert

        def configure(conv: Any) -> None:
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.target_spec.supported_types = [tf.float16]

        progress(0.2, "converting with FP16 weights")
        convert(src, fmt, dst, configure)
        return {}
