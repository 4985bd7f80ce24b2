"""Inputs generated from a model's input spec, with dynamic dims fixed by ``--shape`` overrides."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from edgestudio.core.errors import UsageError
from edgestudio.core.modelinfo import TensorSpec

ShapeOverrides = dict[str, list[int]]


def parse_shape_overrides(items: Iterable[str] | None) -> ShapeOverrides:
    """Parse ``["name=1,3,224,224", "1,28,28,1"]``; an unnamed shape applies to the only/first input ("")."""
    out: ShapeOverrides = {}
    for item in items or []:
        name, _, dims = item.rpartition("=")
        try:
            shape = [int(x) for x in dims.replace("x", ",").split(",") if x.strip()]
        except ValueError:
            raise UsageError(None, f"bad --shape {item!r}: expected name=1,3,224,224") from None
        if not shape or any(d <= 0 for d in shape):
            raise UsageError(None, f"bad --shape {item!r}: dimensions must be positive integers")
        out[name.strip()] = shape
    return out


def resolve_shape(spec: TensorSpec, overrides: ShapeOverrides | None = None, index: int = 0) -> list[int]:
    overrides = overrides or {}
    if spec.name in overrides:
        shape = overrides[spec.name]
    elif "" in overrides and index == 0:
        shape = overrides[""]
    else:
        return [d if isinstance(d, int) and d >= 0 else 1 for d in spec.shape]
    if len(shape) != len(spec.shape) and spec.shape != ["?"]:
        raise UsageError(None, f"--shape for {spec.name!r} has rank {len(shape)}, the model's input has rank "
                               f"{len(spec.shape)} ({spec.shape})")
    for want, got in zip(spec.shape, shape):
        if isinstance(want, int) and want >= 0 and want != got:
            raise UsageError(None, f"--shape {shape} for {spec.name!r} conflicts with its static shape {spec.shape}")
    return list(shape)


def make_inputs(specs: list[TensorSpec], overrides: ShapeOverrides | None = None, seed: int = 0,
                batch: int | None = None) -> dict[str, np.ndarray]:
    """Deterministic random inputs of the right dtype and shape for every input."""
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for i, spec in enumerate(specs):
        shape = resolve_shape(spec, overrides, i)
        if batch and spec.shape and not (isinstance(spec.shape[0], int) and spec.shape[0] >= 0):
            shape[0] = batch
        dtype = np.dtype(spec.dtype) if spec.dtype not in ("unknown", "str") else np.dtype("float32")
        if dtype.kind == "f":
            arr = rng.random(shape, dtype=np.float32).astype(dtype)
        elif dtype.kind == "b":
            arr = rng.integers(0, 2, shape).astype(bool)
        elif dtype.kind in "iu":
            lo, hi = (0, 2) if dtype.kind == "u" or dtype.itemsize > 1 else (-2, 2)
            arr = rng.integers(lo, hi, shape).astype(dtype)
        else:
            raise UsageError(None, f"cannot generate data for input {spec.name!r} of dtype {spec.dtype}")
        feeds[spec.name] = arr
    return feeds
