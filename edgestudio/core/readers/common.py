"""Helpers every reader shares."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from edgestudio.core.modelinfo import Dim


def prod(dims: Iterable[Any]) -> int:
    return math.prod(int(d) for d in dims)


def static_dims(dims: list[Dim]) -> list[int] | None:
    """Dims for a MACs estimate: dynamic batch-like dims count as 1; other unknowns give up."""
    out: list[int] = []
    for i, d in enumerate(dims):
        if isinstance(d, int) and d >= 0:
            out.append(d)
        elif i == 0:
            out.append(1)
        else:
            return None
    return out


def shape_spec(shapes: dict[str, list[int]] | None) -> Any:
    """An input specification holding only ``shapes`` (--shape)."""
    from edgestudio.core.inputspec import InputSpec

    return InputSpec(shapes=dict(shapes or {}))
