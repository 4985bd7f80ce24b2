"""Inputs for a run, from the one input specification (:mod:`edgestudio.core.inputspec`).

Kept as the bench package's entry point: ``make_inputs`` gives one feed dict, deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from edgestudio.core.inputspec import InputSpec, make_feeds, parse_shapes
from edgestudio.core.modelinfo import TensorSpec

ShapeOverrides = dict[str, list[int]]


def parse_shape_overrides(items: Iterable[str] | None) -> ShapeOverrides:
    """Parse ``["name=1,3,224,224", "1,28,28,1"]``; an unnamed shape applies to the first input ("")."""
    return parse_shapes(items)


def make_inputs(specs: list[TensorSpec], overrides: ShapeOverrides | InputSpec | None = None, seed: int = 0,
                batch: int | None = None, *, dynamic_default: int | None = None,
                model: str | None = None) -> dict[str, np.ndarray]:
    """One feed: the user's data and values where given, else deterministic random data of the right shape.

    A dynamic dim nothing fixes is an error asking for ``--shape`` (the first, batch, dim is 1, or ``batch``),
    unless ``dynamic_default`` is given: a benchmark never runs at a shape the user did not choose.
    """
    spec = overrides if isinstance(overrides, InputSpec) else InputSpec(shapes=dict(overrides or {}))
    if batch:
        first = specs[0] if specs else None
        if first is not None and first.shape and not (isinstance(first.shape[0], int) and first.shape[0] >= 0):
            specs = [TensorSpec(s.name, [batch, *s.shape[1:]], s.dtype)
                     if s.shape and not (isinstance(s.shape[0], int) and s.shape[0] >= 0) else s for s in specs]
    return make_feeds(specs, spec, count=1, seed=seed, dynamic_default=dynamic_default, model=model).samples[0]
