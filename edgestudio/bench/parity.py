"""Numerical parity between a model and what it was converted into, on the same generated inputs.

Inputs are matched by order; when the child's layout differs (NCHW <-> NHWC) the same data is fed
transposed, and the child's outputs are transposed back before comparing.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgestudio.bench.inputs import ShapeOverrides, make_inputs
from edgestudio.core.formats import ModelFormat, detect_format
from edgestudio.core.modelinfo import Dim


@dataclass
class ParityReport:
    max_abs_diff: float | None
    mean_abs_diff: float | None
    cosine: float | None
    top1_agreement: float | None
    passed: bool | None  # None: could not be checked (no runtime for the child's format)
    tolerance: float
    samples: int
    parent_runtime: str | None
    child_runtime: str | None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("max_abs_diff", "mean_abs_diff", "cosine", "top1_agreement"):
            if d[k] is not None:
                d[k] = float(f"{d[k]:.6g}")
        return d


def _matches(shape: list[int], spec: list[Dim]) -> bool:
    return len(shape) == len(spec) and all(not isinstance(s, int) or s < 0 or s == d for d, s in zip(shape, spec))


def layout_perm(shape: list[int], spec: list[Dim]) -> tuple[int, ...] | None:
    """The permutation that makes ``shape`` fit ``spec`` (identity first), or None."""
    if _matches(shape, spec):
        return None
    n = len(shape)
    if n < 3 or n != len(spec):
        raise ValueError(f"input shape {shape} does not fit {spec}")
    channels_last_to_first = (0, n - 1, *range(1, n - 1))
    channels_first_to_last = (0, *range(2, n), 1)
    for perm in (channels_last_to_first, channels_first_to_last, *itertools.permutations(range(n))):
        if _matches([shape[p] for p in perm], spec):
            return tuple(perm)
    raise ValueError(f"input shape {shape} does not fit {spec} in any layout")


def _align_output(child: np.ndarray, parent: np.ndarray) -> np.ndarray:
    if child.shape == parent.shape:
        return child
    n = child.ndim
    if n >= 3 and n == parent.ndim:
        for perm in ((0, *range(2, n), 1), (0, n - 1, *range(1, n - 1))):
            if child.transpose(perm).shape == parent.shape:
                return child.transpose(perm)
    if child.size == parent.size:
        return child.reshape(parent.shape)
    raise ValueError(f"output shapes differ: {child.shape} vs {parent.shape}")


def default_runtime(fmt: ModelFormat) -> str | None:
    from edgestudio.backends.runtimes import runtime_for_format
    from edgestudio.core.errors import RuntimeUnavailableError

    try:
        return runtime_for_format(fmt)
    except RuntimeUnavailableError:
        return None


def compare_models(parent: str | Path, child: str | Path, *, tolerance: float, shapes: ShapeOverrides | None = None,
                   samples: int = 4, seed: int = 0) -> ParityReport:
    """Run parent and child on the same ``samples`` random inputs and compare every output."""
    from edgestudio.backends.runtimes import get_runtime

    pf, cf = detect_format(parent), detect_format(child)
    prt, crt = default_runtime(pf), default_runtime(cf)
    if prt is None or crt is None:
        missing = pf if prt is None else cf
        return ParityReport(None, None, None, None, None, tolerance, 0, prt, crt,
                            note=f"not checked: no installed runtime runs {missing.label} models")

    def load(path: str | Path, rt: str) -> Any:
        return get_runtime(rt).load(path, precision="f32" if rt == "openvino" else None)

    ps, cs = load(parent, prt), load(child, crt)
    if len(ps.inputs) != len(cs.inputs):
        raise ValueError(f"the parent has {len(ps.inputs)} inputs, the child {len(cs.inputs)}")
    p_out, c_out = [], []
    for i in range(samples):
        feeds = make_inputs(ps.inputs, shapes, seed=seed + i)
        child_feeds = {}
        for pspec, cspec in zip(ps.inputs, cs.inputs):
            arr = feeds[pspec.name]
            perm = layout_perm(list(arr.shape), cspec.shape)
            arr = arr.transpose(perm) if perm else arr
            child_feeds[cspec.name] = np.ascontiguousarray(arr.astype(np.dtype(cspec.dtype), copy=False))
        p_out.append(list(ps.run(feeds).values()))
        c_out.append(list(cs.run(child_feeds).values()))
    diffs, cosines, agree = [], [], []
    scale = 1.0  # the tolerance is absolute for outputs up to 1 (probabilities), relative beyond (logits)
    for po, co in zip(p_out, c_out):
        if len(po) != len(co):
            raise ValueError(f"the parent has {len(po)} outputs, the child {len(co)}")
        for a, b in zip(po, co):
            a = np.asarray(a, dtype=np.float64)
            b = _align_output(np.asarray(b, dtype=np.float64), a)
            diffs.append(np.abs(a - b).ravel())
            scale = max(scale, float(np.abs(a).max()) if a.size else 0.0)
            na, nb = np.linalg.norm(a), np.linalg.norm(b)
            cosines.append(1.0 if na == nb == 0 else float(np.dot(a.ravel(), b.ravel()) / max(na * nb, 1e-30)))
            if a.ndim >= 2 and a.shape[-1] > 1:
                agree.extend((a.reshape(-1, a.shape[-1]).argmax(1) == b.reshape(-1, b.shape[-1]).argmax(1)).tolist())
    d = np.concatenate(diffs) if diffs else np.zeros(1)
    max_abs = float(d.max())
    cosine = float(min(cosines)) if cosines else 1.0
    passed = bool(max_abs <= tolerance * scale and np.isfinite(max_abs))
    return ParityReport(max_abs, float(d.mean()), cosine, float(np.mean(agree)) if agree else None, passed,
                        tolerance * scale, samples, prt, crt)
