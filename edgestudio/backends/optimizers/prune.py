"""Magnitude pruning: the smallest weights of each weight tensor set to zero, to a target sparsity.

TensorFlow Model Optimization does not support Keras 3 (the pinned TensorFlow's Keras), so pruning works
on the weights directly with numpy, for ONNX and Keras models. The file stays dense: the gain shows after
compression (zip), reported alongside, and with sparse-aware runtimes.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from edgestudio.backends.optimizers.base import OPTIMIZERS, OptimizationError, OptimizeOptions, Optimizer
from edgestudio.core.formats import ModelFormat
from edgestudio.core.progress import CancelToken, ProgressCallback


def prune_array(w: np.ndarray, sparsity: float) -> np.ndarray:
    """Zero the ``sparsity`` fraction of smallest-magnitude entries (ties broken by position)."""
    k = int(round(sparsity * w.size))
    if k <= 0:
        return w
    flat = np.abs(w).ravel()
    idx = np.argpartition(flat, k - 1)[:k]
    out = w.copy().ravel()
    out[idx] = 0
    return out.reshape(w.shape)


def zipped_size(path: Path) -> int:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if f.is_file():
                zf.write(f, f.name)
    return buf.tell()


@OPTIMIZERS.register
class MagnitudePrune(Optimizer):
    method = "prune"
    runtime = "any"
    sources = (ModelFormat.ONNX, ModelFormat.KERAS, ModelFormat.KERAS_H5)
    requires = ("numpy",)
    distributions = ("numpy",)
    description = "magnitude pruning of weight tensors to a target sparsity (dense file; smaller compressed)"

    @classmethod
    def output_format(cls, source: ModelFormat) -> ModelFormat:
        return source

    def optimize(self, src: Path, fmt: ModelFormat, dst: Path, opts: OptimizeOptions, *,
                 progress: ProgressCallback, cancel: CancelToken) -> dict[str, Any]:
        if not 0.0 < opts.sparsity < 1.0:
            raise OptimizationError(src, f"--sparsity must be between 0 and 1, not {opts.sparsity}")
        progress(0.2, f"pruning to {opts.sparsity:.0%} sparsity")
        zeros = total = 0
        if fmt is ModelFormat.ONNX:
            import onnx
            from onnx import numpy_helper

            model = onnx.load(str(src), format="protobuf")
            for init in model.graph.initializer:
                w = numpy_helper.to_array(init)
                if w.dtype.kind != "f" or w.ndim < 2:
                    continue  # biases, shapes, norms stay
                pruned = prune_array(w, opts.sparsity)
                init.CopyFrom(numpy_helper.from_array(pruned, init.name))
                zeros, total = zeros + int((pruned == 0).sum()), total + pruned.size
            onnx.save(model, str(dst), format="protobuf")
        else:
            from edgestudio.core.loaders import load_keras_model

            model = load_keras_model(src, fmt)
            for layer in model.layers:
                weights = layer.get_weights()
                if not weights:
                    continue
                new = []
                for w in weights:
                    if w.dtype.kind == "f" and w.ndim >= 2:
                        w = prune_array(w, opts.sparsity)
                        zeros, total = zeros + int((w == 0).sum()), total + w.size
                    new.append(w)
                layer.set_weights(new)
            model.save(dst)
        cancel.check()
        if total == 0:
            raise OptimizationError(src, "no weight tensors to prune")
        return {"sparsity": zeros / total, "pruned_parameters": total,
                "compressed_bytes": {"before": zipped_size(src), "after": zipped_size(dst)}}
