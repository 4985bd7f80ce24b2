"""One output of a model against its parent's, on the same samples: the verdict of ``exact`` and ``lossy`` checks.

Per output: max absolute and relative error (``|a - b| <= atol + rtol * |a|``), cosine similarity, SNR in dB, top-1
agreement where the output looks like class scores, the worst channel slice, and the task metrics of a declared
output kind (``bench.tasks``). ``bench.parity`` pairs the models' inputs and outputs and runs them; this module
judges what came out (see parity's docstring for the verdicts).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgestudio.bench.tasks import TaskMetric, score_channels, task_metrics, undeclared_doubt

PASSED, FAILED, INCONCLUSIVE, NOT_CHECKED = "passed", "failed", "inconclusive", "not checked"

EXACT_MIN_COSINE = 0.999
LOSSY_MIN_COSINE = 0.99
DEFAULT_RTOL = 1e-3
#: exact mode: within the element-wise tolerance, differences this small are float rounding, whatever the cosine
EXACT_NEAR_ZERO = 1e-5


def exact_tolerance(tolerance: float, *runtimes: str | None) -> float:
    """The element-wise tolerance of an exact hop between these runtimes: the converter's, raised to what their
    float kernels need (each runtime's ``output_atol``: LiteRT's XNNPACK reorders and fuses float sums, and a
    correct SavedModel -> TFLite of magika differed by 3.6e-3 at cosine 0.99996)."""
    from edgestudio.backends.runtimes import RUNTIMES

    def atol(name: str | None) -> float:
        try:
            return float(RUNTIMES.get(name).output_atol or 0.0) if name else 0.0
        except Exception:  # noqa: BLE001 - a runtime not in the catalog adds nothing
            return 0.0

    return max([tolerance, *(atol(r) for r in runtimes)])


@dataclass
class OutputCheck:
    name: str
    child_name: str
    max_abs_diff: float
    max_rel_diff: float
    cosine: float
    snr_db: float | None  # None: identical (infinite SNR)
    top1_agreement: float | None
    verdict: str
    reason: str | None = None
    mean_cosine: float | None = None  # over the samples together; ``cosine`` is the worst sample's
    worst_slice: str | None = None  # the slice (channel group) whose cosine is lowest, where the output has some
    worst_slice_cosine: float | None = None
    kind: str | None = None  # what the user said the output is (--output-kind), None: not said
    task: list[TaskMetric] = field(default_factory=list)  # the task metrics (bench.tasks), worst sample

    def task_text(self) -> str:
        return ", ".join(m.text() for m in self.task)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["task"] = [m.to_dict() for m in self.task]
        for k in ("max_abs_diff", "max_rel_diff", "cosine", "snr_db", "top1_agreement", "mean_cosine",
                  "worst_slice_cosine"):
            if d[k] is not None:
                d[k] = _round(d[k])
        return d


def _round(x: float) -> float:
    return float(f"{x:.6g}") if math.isfinite(x) else float("nan") if math.isnan(x) else x


def output_text(o: dict[str, Any]) -> str:
    """One output of a report (its dict): the worst sample's cosine, SNR, the worst channel slice, the task metrics,
    and why it failed. The one wording of the CLI and the studio."""
    text = f"{o['name']} cosine {o['cosine']:.4f} (worst sample)"
    text += f", SNR {o['snr_db']:.1f} dB" if o.get("snr_db") is not None else ""
    if o.get("worst_slice") and o.get("worst_slice_cosine") is not None:
        text += f", worst slice {o['worst_slice']} cosine {o['worst_slice_cosine']:.4f}"
    for m in o.get("task") or []:
        text += f", {TaskMetric(**m).text()}"
    if o.get("verdict") == "failed" and o.get("reason"):
        text += f": {o['reason']}"
    return text


def _r(x: float | None) -> float | None:
    return None if x is None else _round(x)




# ------------------------------------------------------------------------------------------ metrics
def _looks_like_classes(a: np.ndarray) -> bool:
    """Scores per class: [N, C] or a sequence of them [N, T, C] (a 4-D map is an image, not classes; a detector's
    packed [N, 4+C, A] is told apart by its values: see ``tasks.score_channels``)."""
    return a.ndim in (2, 3) and 2 <= a.shape[-1] <= 100_000


def _degenerate(ref: list[np.ndarray]) -> str | None:
    """Why this reference output cannot tell a good model from a broken one (None: it can)."""
    allv = np.concatenate([r.ravel() for r in ref]) if ref else np.zeros(0)
    if allv.size == 0:
        return "the reference output is empty"
    if not np.all(np.isfinite(allv)):
        return "the reference output holds NaN/Inf"
    peak = float(np.abs(allv).max())
    if peak < 1e-6:
        return f"the reference output is all ~0 (max |x| {peak:.2g})"
    if float(np.ptp(allv)) <= 1e-6 * peak:
        return f"the reference output is constant ({float(allv.ravel()[0]):.4g})"
    if len(ref) >= 2 and all(r.shape == ref[0].shape for r in ref):
        spread = max(float(np.abs(r - ref[0]).max()) for r in ref[1:])
        if spread <= 1e-6 * peak:
            return "the reference output does not change with the inputs (they may not exercise the model)"
    return None


def _moves(ref: list[np.ndarray]) -> float:
    """How far the reference output moves from the first sample's over the others (0 with one sample)."""
    return max((float(np.abs(r.astype(np.float64) - ref[0]).max(initial=0.0)) for r in ref[1:]
                if r.shape == ref[0].shape), default=0.0)


def _moves_within(ref: list[np.ndarray], tolerance: float) -> bool:
    return len(ref) >= 2 and all(r.shape == ref[0].shape for r in ref) and _moves(ref) <= tolerance


def _moved_cosine(ref: list[np.ndarray], got: list[np.ndarray]) -> float | None:
    """The cosine between what the inputs move in the reference and in the result (each sample minus the samples'
    mean): a result that ignored its inputs has nothing there. None when the reference does not move at all."""
    if len(ref) != len(got) or any(r.shape != g.shape for r, g in zip(ref, got)):
        return None
    a = np.stack([r.astype(np.float64) for r in ref])
    b = np.stack([g.astype(np.float64) for g in got])
    a, b = (a - a.mean(0)).ravel(), (b - b.mean(0)).ravel()
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return None if na == 0 else (0.0 if nb == 0 else float(np.dot(a, b) / (na * nb)))


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return 1.0 if na == nb == 0 else float(np.dot(a, b) / max(na * nb, 1e-300))


def _worst_sample_cosine(ref: list[np.ndarray], got: list[np.ndarray], peak: float) -> float | None:
    """The lowest cosine of one sample (a mean over samples hides the one that broke); samples whose reference
    output is ~0 (nothing to compare) are left out."""
    vals = [_cos(r.astype(np.float64).ravel(), g.astype(np.float64).ravel()) for r, g in zip(ref, got)
            if float(np.abs(r).max(initial=0.0)) > 1e-3 * peak]
    return min(vals) if vals else None


#: lossy mode: a channel slice this far from its reference fails the output, whatever the whole tensor's cosine
SLICE_MIN_COSINE = 0.9
#: slice axes are channel-like: at most this many entries, and another axis at least as long
MAX_SLICE_AXIS = 4096


def _slices(ref: list[np.ndarray], got: list[np.ndarray]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Per-channel slices of an output whose one tensor carries several quantities: ``[N, K, A]`` (axis 1) or
    ``[N, A, K]`` (the last axis), K the channels (boxes and class scores of a detector, say), as flat arrays over
    all samples. Each slice is judged on its own: one block of small values can be wiped out by a scale set by
    another block of large ones, and a cosine over the whole tensor never sees it."""
    shape = ref[0].shape
    if len(shape) < 3 or any(r.shape != shape for r in ref) or any(g.shape != shape for g in got):
        return []
    out: list[tuple[str, np.ndarray, np.ndarray]] = []
    rs, gs = np.stack(ref).astype(np.float64), np.stack(got).astype(np.float64)  # [S, N, ...]
    for axis in sorted({1, len(shape) - 1}):
        k = shape[axis]
        others = [d for i, d in enumerate(shape) if i not in (0, axis)]
        if not 2 <= k <= MAX_SLICE_AXIS or not others or max(others) < k:
            continue
        ra, ga = np.moveaxis(rs, axis + 1, 0).reshape(k, -1), np.moveaxis(gs, axis + 1, 0).reshape(k, -1)
        out += [(f"[{'...,' if axis != 1 else ':,'}{i}{',...' if axis == 1 else ''}] (axis {axis})", ra[i], ga[i])
                for i in range(k)]
    return out


def _slice_verdict(ref: list[np.ndarray], got: list[np.ndarray]) -> tuple[str | None, float | None, str | None]:
    """(the worst slice, its cosine, why it collapsed or None). A slice collapses when the reference varies along
    it and the result is constant there (all zero, or one value): a detector whose class scores all became 0."""
    worst, worst_cos, collapsed = None, None, []
    slices = _slices(ref, got)
    whole = max((float(np.ptp(a)) for _, a, _ in slices if a.size), default=0.0)
    for label, a, b in slices:
        spread = float(np.ptp(a)) if a.size else 0.0
        if spread <= 1e-4 * whole or spread <= 1e-6 * max(float(np.abs(a).max(initial=0.0)), 1e-12) \
                or not np.isfinite(b).all():
            continue  # a reference slice that barely varies (a class never present) cannot tell
        c = _cos(a, b)
        if worst_cos is None or c < worst_cos:
            worst, worst_cos = label, c
        if float(np.ptp(b)) <= 1e-3 * spread:
            collapsed.append(label)
    if collapsed:
        where = ", ".join(collapsed[:4]) + (f" and {len(collapsed) - 4} more" if len(collapsed) > 4 else "")
        value = "0" if all(float(np.abs(b).max(initial=0.0)) == 0 for label, a, b in slices
                           if label in collapsed) else "a constant"
        return worst, worst_cos, (f"{len(collapsed)} slice{'s' if len(collapsed) > 1 else ''} collapsed to {value} "
                                  f"where the reference varies: {where}")
    return worst, worst_cos, None


def check_output(name: str, child_name: str, ref: list[np.ndarray], got: list[np.ndarray], *, mode: str,
                 atol: float, rtol: float, min_cosine: float, kind: str | None = None,
                 feeds: list[dict[str, np.ndarray]] | None = None) -> OutputCheck:
    """Judge one output. ``kind`` (what the user said it is) adds its task metrics, which then decide a lossy
    verdict in place of the whole tensor's cosine (the user said what matters); collapses fail whatever the kind."""
    a = np.concatenate([r.astype(np.float64).ravel() for r in ref])
    b = np.concatenate([g.astype(np.float64).ravel() for g in got])
    finite = np.isfinite(b)
    diff = np.abs(a - b)
    max_abs = float(diff.max()) if diff.size else 0.0
    rel = diff / (np.abs(a) + 1e-12)
    max_rel = float(rel.max()) if rel.size else 0.0
    mean_cosine = _cos(a, b)
    peak = float(np.abs(a[np.isfinite(a)]).max()) if np.isfinite(a).any() else 0.0
    worst_sample = _worst_sample_cosine(ref, got, peak) if len(ref) > 1 and finite.all() else None
    cosine = min(mean_cosine, worst_sample) if worst_sample is not None else mean_cosine
    slice_name, slice_cos, collapse = _slice_verdict(ref, got) if finite.all() else (None, None, None)
    noise = float(np.sum((a - b) ** 2))
    snr = None if noise == 0 else 10 * math.log10(max(float(np.sum(a ** 2)), 1e-300) / noise)
    agree = None
    task = task_metrics(kind, ref, got, feeds) if kind != "raw" and finite.all() else []
    if _looks_like_classes(ref[0]) and kind is None and score_channels(ref) is None:
        pa = np.concatenate([r.reshape(-1, r.shape[-1]) for r in ref])
        pb = np.concatenate([g.reshape(-1, g.shape[-1]) for g in got])
        agree = float(np.mean(pa.argmax(1) == pb.argmax(1)))
    degenerate = _degenerate(ref)
    scale = max(1.0, float(np.abs(a[np.isfinite(a)]).max()) if np.isfinite(a).any() else 1.0)
    which = "the worst sample's cosine" if worst_sample is not None and worst_sample < mean_cosine else "cosine"
    if kind in ("logits", "scores"):
        agree = next((m.value for m in task if m.metric == "top-1 agreement"), agree)
    task_bad = [m for m in task if not m.ok]
    chance = [m for m in task if m.kind == "auto" and not m.ok]  # undeclared: judged against a guess only
    declared = kind not in (None, "raw") and bool(task)
    if not finite.all():
        verdict, reason = FAILED, "the result holds NaN/Inf"
    elif collapse and not degenerate:
        verdict, reason = FAILED, collapse
    elif chance and not degenerate:
        verdict, reason = FAILED, (f"the class scores no longer tell anything: {chance[0].metric} "
                                   f"{chance[0].value:.1%}, no better than a guess ({chance[0].detail})")
    elif declared and mode != "exact" and not degenerate:
        verdict, reason = ((FAILED, f"as {kind}: " + ", ".join(m.text() for m in task_bad)) if task_bad
                           else (PASSED, None))
    elif mode == "exact":
        tol_ok = bool(np.all(diff <= atol * scale + rtol * np.abs(a)))
        if not tol_ok:
            worst = int(diff.argmax())
            verdict, reason = FAILED, (f"|diff| {diff[worst]:.3g} > {atol * scale:.3g} + {rtol:g} * |ref| "
                                       f"at element {worst}")
        elif degenerate:
            verdict, reason = INCONCLUSIVE, degenerate
        elif cosine < min_cosine and max_abs <= EXACT_NEAR_ZERO:
            # within the element-wise tolerance, differences of float rounding (<= 1e-5) on an output near zero
            # on these inputs: the cosine of such tiny values says nothing about the conversion
            verdict, reason = INCONCLUSIVE, (f"{which} {cosine:.6f} with differences of at most {max_abs:.2g}: the "
                                             "output is near zero on these inputs, so the cosine cannot judge")
        elif _moves_within(ref, atol * scale) and (_moved_cosine(ref, got) or 0.0) < 0.999:
            # the inputs move the output less than the tolerance, so the tolerance cannot tell a result that
            # ignored them; the part the inputs move (each sample minus the samples' mean) did not agree either
            moved = _moved_cosine(ref, got)
            verdict, reason = INCONCLUSIVE, (
                f"the output moves with the inputs by at most {_moves(ref):.2g}, within the tolerance "
                f"{atol * scale:.2g}, and what the inputs move agrees only at cosine "
                f"{'n/a' if moved is None else f'{moved:.4f}'}: a result that ignored its inputs would pass the "
                "tolerance too (give real inputs)")
        elif cosine < min_cosine:
            verdict, reason = FAILED, f"{which} {cosine:.6f} < {min_cosine}"
        elif declared and task_bad:
            verdict, reason = FAILED, f"as {kind}: " + ", ".join(m.text() for m in task_bad)
        else:
            verdict, reason = PASSED, None
    else:
        if degenerate:
            verdict, reason = (INCONCLUSIVE, degenerate) if np.allclose(a, b, rtol=0.05, atol=1e-3 * scale) \
                else (FAILED, f"{degenerate}, and the result differs from it")
        elif cosine < min_cosine:
            verdict, reason = FAILED, f"{which} {cosine:.4f} < {min_cosine}"
        elif slice_cos is not None and slice_cos < SLICE_MIN_COSINE:
            verdict, reason = FAILED, (f"slice {slice_name} has cosine {slice_cos:.4f} < {SLICE_MIN_COSINE} (the "
                                       f"whole output's {cosine:.4f} hides it)")
        elif kind is None and (doubt := undeclared_doubt(ref, got)) is not None:
            verdict, reason = INCONCLUSIVE, (f"{which} {cosine:.4f} passes, but {doubt}; say what the output is "
                                             f"(--output-kind {name}=KIND, or its kind in the studio's Inputs tab) "
                                             "to judge it by its task")
        else:
            verdict, reason = PASSED, None
    return OutputCheck(name, child_name, max_abs, max_rel, cosine, snr, agree, verdict, reason, mean_cosine,
                       slice_name, slice_cos, kind, task)


def overall(verdicts: list[str]) -> str:
    if not verdicts:
        return NOT_CHECKED
    if FAILED in verdicts:
        return FAILED
    if INCONCLUSIVE in verdicts:
        return INCONCLUSIVE
    return PASSED
