"""Numerical parity between a model and what was made from it, on the same inputs (Polygraphy's practice).

Per output: max absolute and relative error (``|a - b| <= atol + rtol * |a|``), cosine similarity, SNR in
dB, and top-1 agreement where the output looks like class scores. The verdict is one of

- ``passed``: every output is informative and within the hop's limits;
- ``failed``: some output is outside them, or the inputs/outputs changed in a way nobody asked for;
- ``inconclusive``: the reference itself cannot tell (constant, all ~0, NaN/Inf, or not changing with the
  inputs): never "passed"; give real inputs (``--input``).

Two modes: ``exact`` for FP32 hops (element-wise tolerance and cosine >= 0.999) and ``lossy`` for FP16/INT8
results (judged by cosine, default 0.99, with SNR reported). The cosine judged is the worst sample's (a mean over
samples hides the one that broke). An output whose one tensor carries several quantities (``[N, K, A]`` or
``[N, A, K]``: a detector's boxes and class scores) is also judged per channel slice: a slice that collapsed to a
constant where the reference varies fails the check, naming it, whatever the whole tensor's cosine. In exact mode,
differences of float rounding (at most 1e-5, within the element-wise tolerance) on an output near zero make the
cosine meaningless: that is inconclusive, never a failure of an exact conversion. Inputs come from the user's input specification
(``--input``/``--shape``/``--value`` or a dataset) and are random only where nothing was given; the report
says which. Inputs are matched by name (as converters mangle names) else by order; a layout change
(NCHW <-> NHWC) feeds the same data transposed and is reported, and fails the hop unless it was asked for.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgestudio.core.formats import ModelFormat, detect_format
from edgestudio.core.inputspec import (
    CHECK_DYNAMIC_DIM,
    Feeds,
    InputSpec,
    format_dims,
    layout_perm,
    looks_channels_last,
    make_feeds,
    normalize_name,
)
from edgestudio.bench.tasks import TaskMetric, score_channels, task_metrics, undeclared_doubt
from edgestudio.core.modelinfo import Dim, TensorSpec

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


@dataclass
class ParityReport:
    verdict: str
    outputs: list[OutputCheck]
    tolerance: float  # atol (scaled to the output's magnitude in exact mode) or the min cosine in lossy mode
    samples: int
    parent_runtime: str | None
    child_runtime: str | None
    mode: str = "exact"
    inputs: dict[str, Any] = field(default_factory=dict)  # where the inputs came from (Feeds.to_dict)
    io_changes: list[str] = field(default_factory=list)
    note: str | None = None
    #: the samples as the child took them (its names, layout, dtypes): the next hop of a chain checks on them
    child_samples: list[dict[str, np.ndarray]] = field(default_factory=list, repr=False, compare=False)

    @property
    def passed(self) -> bool | None:
        """True: passed; False: failed; None: inconclusive or not checked."""
        return True if self.verdict == PASSED else False if self.verdict == FAILED else None

    def _worst(self) -> OutputCheck | None:
        return min(self.outputs, key=lambda o: o.cosine) if self.outputs else None

    @property
    def max_abs_diff(self) -> float | None:
        return max((o.max_abs_diff for o in self.outputs), default=None)

    @property
    def cosine(self) -> float | None:
        return min((o.cosine for o in self.outputs), default=None)

    @property
    def snr_db(self) -> float | None:
        vals = [o.snr_db for o in self.outputs if o.snr_db is not None]
        return min(vals) if vals else None

    @property
    def top1_agreement(self) -> float | None:
        vals = [o.top1_agreement for o in self.outputs if o.top1_agreement is not None]
        return min(vals) if vals else None

    def summary(self) -> str:
        """One line: the verdict, the worst figures, what it ran on."""
        if self.verdict == NOT_CHECKED:
            return f"not checked: {self.note}" if self.note else "not checked"
        w = self._worst()
        figs = []
        if w is not None:
            figs.append(f"cosine {w.cosine:.6f}")
            figs.append(f"SNR {'inf' if w.snr_db is None else f'{w.snr_db:.1f}'} dB")
            figs.append(f"max abs diff {w.max_abs_diff:.3g}")
            if self.top1_agreement is not None and not any(o.task for o in self.outputs):
                figs.append(f"top-1 agreement {self.top1_agreement:.0%}")
            tasks = [o for o in self.outputs if o.task]
            for o in tasks[:2]:
                figs.append((f"{o.name} " if len(self.outputs) > 1 else "") + o.task_text())
        src = ("random inputs" if self.inputs.get("random") else "inputs, partly random" if any(
            v == "random" for v in (self.inputs.get("sources") or {}).values()) else "real inputs") if self.inputs else ""
        text = f"{self.verdict}: " + ", ".join(figs) + (f" on {self.samples} {src}".rstrip() if self.samples else "")
        bad = [o for o in self.outputs if o.verdict != PASSED and o.reason]
        if bad:
            text += f" ({bad[0].name}: {bad[0].reason})"
        if self.io_changes:
            text += "; " + "; ".join(self.io_changes)
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "passed": self.passed, "mode": self.mode,
                "max_abs_diff": _r(self.max_abs_diff), "cosine": _r(self.cosine), "snr_db": _r(self.snr_db),
                "top1_agreement": _r(self.top1_agreement), "tolerance": _r(self.tolerance), "samples": self.samples,
                "parent_runtime": self.parent_runtime, "child_runtime": self.child_runtime,
                "outputs": [o.to_dict() for o in self.outputs], "inputs": self.inputs,
                "io_changes": list(self.io_changes), "note": self.note, "summary": self.summary()}


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


# ------------------------------------------------------------------------------------------- layout


def perm_name(perm: tuple[int, ...]) -> str:
    n = len(perm)
    if perm == (0, n - 1, *range(1, n - 1)):
        return "channels-last -> channels-first (NHWC -> NCHW)"
    if perm == (0, *range(2, n), 1):
        return "channels-first -> channels-last (NCHW -> NHWC)"
    return f"axes permuted {perm}"


def _align_output(child: np.ndarray, parent: np.ndarray) -> tuple[np.ndarray, str | None]:
    if child.shape == parent.shape:
        return child, None
    n = child.ndim
    if n >= 3 and n == parent.ndim:
        for perm in ((0, *range(2, n), 1), (0, n - 1, *range(1, n - 1))):
            if child.transpose(perm).shape == parent.shape:
                return child.transpose(perm), "layout"
    if child.size == parent.size:
        return child.reshape(parent.shape), "reshape"
    raise ValueError(f"output shapes differ: {list(child.shape)} vs {list(parent.shape)}")


def default_runtime(fmt: ModelFormat) -> str | None:
    from edgestudio.backends.runtimes import runtime_for_format
    from edgestudio.core.errors import RuntimeUnavailableError

    try:
        return runtime_for_format(fmt)
    except RuntimeUnavailableError:
        return None


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


# -------------------------------------------------------------------------------------- the check
def _output_kinds(spec: InputSpec, names: list[str], model: str | Path) -> dict[str, str]:
    """The user's ``--output-kind`` entries keyed by the model's own output names (an unknown name is an error
    listing the real ones)."""
    from edgestudio.core.errors import UsageError
    from edgestudio.core.inputspec import match_name

    out = {}
    for given, kind in spec.outputs.items():
        name = match_name(given, names)
        if name is None:
            raise UsageError(model, f"--output-kind names {given!r}, which is not an output of this model "
                                    f"(its outputs: {', '.join(names) or 'none'})")
        out[name] = kind
    return out


def carried_data(report: ParityReport) -> tuple[dict[str, list[np.ndarray]], str] | None:
    """The samples a hop was checked on, as its result takes them, for the next hop's check (one set of inputs
    along a whole chain, in each model's own names and layout), and where they came from."""
    if not report.child_samples:
        return None
    sources = set((report.inputs.get("sources") or {}).values())
    source = "random" if "random" in sources or not sources else " and ".join(sorted(sources))
    names = list(report.child_samples[0])
    return {k: [s[k] for s in report.child_samples] for k in names}, source


def follow_model(inputs: dict[str, Any], parent: str | Path, child: str | Path) -> dict[str, Any]:
    """An input specification written for ``parent``, for ``child`` made from it: the output kinds keyed by the
    child's output names, paired as the checks pair them (a converter may rename outputs, ``output_0``, and reorder
    them), and shapes dropped where the child's inputs are all static (the conversion fixed them, maybe in another
    layout)."""
    spec = InputSpec.from_dict(inputs)
    if not spec.outputs and not spec.shapes:
        return inputs
    from edgestudio.core.errors import EdgeStudioError
    from edgestudio.core.inputspec import match_name
    from edgestudio.core.inspection import inspect_model

    try:
        p_info, c_info = inspect_model(parent), inspect_model(child)
    except EdgeStudioError:
        return inputs
    shapes = spec.shapes
    if all(s.shape != ["?"] and all(isinstance(d, int) and d >= 0 for d in s.shape) for s in c_info.inputs):
        shapes = {}
    kinds = spec.outputs
    if kinds:
        try:
            pairs = {p.name: c.name for p, c in _pair(p_info.outputs, c_info.outputs, "output")}
        except ValueError:
            pairs = {}
        kinds = {pairs[n]: k for g, k in kinds.items() if (n := match_name(g, list(pairs))) is not None}
    return InputSpec(spec.data, shapes, spec.values, kinds).to_dict()


def _layout_asked(perm: tuple[int, ...], parent_shape: list[Dim], expected: str | None) -> bool:
    """A layout change is fine when the hop was asked to make it, and only from the other layout."""
    n = len(perm)
    if expected == "nhwc":
        return perm == (0, *range(2, n), 1) and looks_channels_last(parent_shape) is not True
    if expected == "nchw":
        return perm == (0, n - 1, *range(1, n - 1)) and looks_channels_last(parent_shape) is not False
    return False


def _pair(parent: list[TensorSpec], child: list[TensorSpec], what: str) -> list[tuple[TensorSpec, TensorSpec]]:
    """Child tensors for the parent's: by name (as converters mangle them) when all match, else by order."""
    if len(parent) != len(child):
        raise ValueError(f"the parent has {len(parent)} {what}s, the child {len(child)}")
    by_name = {normalize_name(c.name): c for c in child}
    if len(by_name) == len(child) and all(normalize_name(p.name) in by_name for p in parent):
        return [(p, by_name[normalize_name(p.name)]) for p in parent]
    # names lost in a hop: a tensor's shape (as a multiset of dims, a layout change aside) tells outputs apart
    # when every one is different, where the order may have changed (a TFLite round trip reorders outputs)
    def key(t: TensorSpec) -> tuple[str, ...] | None:
        if t.shape == ["?"] or any(not isinstance(d, int) or d < 0 for d in t.shape):
            return None
        return tuple(sorted(str(d) for d in t.shape))

    pk, ck = [key(p) for p in parent], [key(c) for c in child]
    if all(k is not None for k in pk + ck) and len(set(pk)) == len(pk) and sorted(pk) == sorted(ck):  # type: ignore[type-var]
        return [(p, child[ck.index(k)]) for p, k in zip(parent, pk)]
    return list(zip(parent, child))


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """The same answer, up to float noise a multi-threaded reduction may add (not a model that keeps state)."""
    if a.shape != b.shape:
        return False
    if not np.issubdtype(a.dtype, np.floating):
        return bool(np.array_equal(a, b))
    peak = float(np.abs(a).max(initial=0.0))
    return bool(np.allclose(a, b, rtol=1e-5, atol=1e-6 * max(peak, 1e-12), equal_nan=True))


def _ambiguous(pairs: list[tuple[TensorSpec, TensorSpec]]) -> bool:
    """Outputs paired by position because names were lost, with shapes that repeat: the order may be wrong."""
    if all(normalize_name(p.name) == normalize_name(c.name) for p, c in pairs):
        return False
    keys = [tuple(str(d) for d in c.shape) for _, c in pairs]
    return len(set(keys)) < len(keys)


def _pair_by_values(pairs: list[tuple[TensorSpec, TensorSpec]], pr: dict[str, Any],
                    cr: dict[str, Any]) -> list[tuple[TensorSpec, TensorSpec]]:
    """Among outputs of one shape, each parent output with the child output closest to it on a first sample (a
    TFLite round trip renames outputs to ``Identity_N`` and may reorder them; a hand-landmark model has two
    [1, 63] and two [1, 1] outputs). Greedy on the relative difference, closest first."""
    parents = [p for p, _ in pairs]
    children = [c for _, c in pairs]
    cost: list[tuple[float, int, int]] = []
    for i, p in enumerate(parents):
        a = np.asarray(pr[p.name], dtype=np.float64)
        for j, c in enumerate(children):
            try:
                b, _ = _align_output(np.asarray(cr[c.name]), a)
            except ValueError:
                continue
            b = b.astype(np.float64)
            cost.append((float(np.linalg.norm(a - b) / max(float(np.linalg.norm(a)), 1e-12)), i, j))
    out: dict[int, int] = {}
    used: set[int] = set()
    for _, i, j in sorted(cost):
        if i not in out and j not in used:
            out[i] = j
            used.add(j)
    if len(out) != len(parents):
        return pairs
    return [(parents[i], children[out[i]]) for i in range(len(parents))]


def _child_feed(feed: dict[str, np.ndarray], in_pairs: list[tuple[TensorSpec, TensorSpec]],
                perms: dict[str, tuple[int, ...] | None]) -> dict[str, np.ndarray]:
    """The parent's sample as the child takes it: its input names, layout and dtypes."""
    child_feed = {}
    for p, c in in_pairs:
        arr = feed[p.name]
        perm = perms[p.name]
        arr = arr.transpose(perm) if perm else arr
        if c.shape == [] and arr.ndim == 1 and arr.size == 1:
            arr = arr.reshape(())
        # np.require keeps a 0-d array 0-d (np.ascontiguousarray makes it 1-d)
        child_feed[c.name] = np.require(arr.astype(np.dtype(c.dtype), copy=False), requirements="C") \
            if c.dtype not in ("unknown", "str") else arr
    return child_feed


def feeds_for_child(parent_inputs: list[TensorSpec], child_inputs: list[TensorSpec],
                    samples: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """The parent's samples renamed, re-laid-out and cast for the child (a converter may rename inputs and change
    NCHW to NHWC)."""
    pairs = _pair(parent_inputs, child_inputs, "input")
    first = samples[0]
    perms = {p.name: layout_perm(list(first[p.name].shape), c.shape) if first[p.name].ndim == len(c.shape) else None
             for p, c in pairs}
    return [_child_feed(f, pairs, perms) for f in samples]


def load_for_check(path: str | Path, runtime: str | None = None, device: str | None = None) -> Any:
    """A session for numerical checks: OpenVINO in f32 (its CPU default may be bf16)."""
    from edgestudio.backends.runtimes import get_runtime

    rt = runtime or default_runtime(detect_format(path))
    if rt is None:
        return None
    from edgestudio.backends.runtimes.base import check_precision

    if device:
        return get_runtime(rt).load(path, device=device, precision=check_precision(rt))
    return get_runtime(rt).load(path, precision=check_precision(rt))


def compare_models(parent: str | Path, child: str | Path, *, tolerance: float = 1e-4, rtol: float = DEFAULT_RTOL,
                   inputs: InputSpec | None = None, shapes: dict[str, list[int]] | None = None,
                   samples: int = 4, seed: int = 0, mode: str = "exact", min_cosine: float | None = None,
                   expected_layout: str | None = None, data: dict[str, list[np.ndarray]] | None = None,
                   data_source: str = "dataset", parent_runtime: str | None = None,
                   child_runtime: str | None = None, child_device: str | None = None) -> ParityReport:
    """Run parent and child on the same inputs and judge every output (see the module docstring)."""
    spec = (inputs or InputSpec()).merged(InputSpec(shapes=dict(shapes))) if shapes else (inputs or InputSpec())
    min_cos = min_cosine if min_cosine is not None else (EXACT_MIN_COSINE if mode == "exact" else LOSSY_MIN_COSINE)
    pf, cf = detect_format(parent), detect_format(child)
    prt = parent_runtime or default_runtime(pf)
    crt = child_runtime or default_runtime(cf)
    if prt is None or crt is None:
        missing = pf if prt is None else cf
        return ParityReport(NOT_CHECKED, [], tolerance, 0, prt, crt, mode,
                            note=f"no installed runtime runs {missing.label} models")
    ps, cs = load_for_check(parent, prt), load_for_check(child, crt, child_device)
    try:
        feeds: Feeds = make_feeds(ps.inputs, spec, count=samples, seed=seed, dynamic_default=CHECK_DYNAMIC_DIM,
                                  data=data, data_source=data_source, model=parent)
        in_pairs = _pair(ps.inputs, cs.inputs, "input")
        out_pairs = _pair(ps.outputs, cs.outputs, "output")
        changes: list[str] = []
        unasked: list[str] = []
        perms: dict[str, tuple[int, ...] | None] = {}
        first = feeds.samples[0]
        for p, c in in_pairs:
            if c.name != p.name and normalize_name(c.name) != normalize_name(p.name):
                changes.append(f"input {p.name!r} is named {c.name!r} in the child")
            if c.shape != ["?"] and p.shape != ["?"] and len(c.shape) != len(p.shape):
                changes.append(f"input {p.name!r} changed rank: {format_dims(p.shape)} -> {format_dims(c.shape)}")
            if c.dtype != p.dtype and "unknown" not in (c.dtype, p.dtype):
                changes.append(f"input {p.name!r} changed dtype: {p.dtype} -> {c.dtype}")
            perm = layout_perm(list(first[p.name].shape), c.shape) if first[p.name].ndim == len(c.shape) else None
            perms[p.name] = perm
            if perm:
                text = f"input {p.name!r} changed layout, {perm_name(perm)}: {format_dims(p.shape)} -> {format_dims(c.shape)}"
                changes.append(text)
                if not _layout_asked(perm, p.shape, expected_layout):
                    unasked.append(text)
        p_out: list[list[np.ndarray]] = [[] for _ in out_pairs]
        c_out: list[list[np.ndarray]] = [[] for _ in out_pairs]
        out_changes: set[str] = set()
        child_samples = []
        stateful = None
        for n_feed, feed in enumerate(feeds.samples):
            child_samples.append(_child_feed(feed, in_pairs, perms))
            pr, cr = ps.run(feed), cs.run(child_samples[-1])
            if n_feed == 0:  # the same input again: a model that keeps state between calls answers differently
                again = ps.run(feed)
                stateful = next((k for k in pr if not _same(np.asarray(pr[k]), np.asarray(again[k]))), None)
            if n_feed == 0 and _ambiguous(out_pairs):  # names lost and shapes repeat: pair by what they hold
                out_pairs = _pair_by_values(out_pairs, pr, cr)
            for k, (po, co) in enumerate(out_pairs):
                a = np.asarray(pr[po.name])
                b, how = _align_output(np.asarray(cr[co.name]), a)
                if how:
                    out_changes.add(f"output {po.name!r} {'changed layout' if how == 'layout' else 'was reshaped'}: "
                                    f"{list(np.asarray(cr[co.name]).shape)} vs {list(a.shape)}")
                p_out[k].append(a)
                c_out[k].append(b)
        changes += sorted(out_changes)
        kinds = _output_kinds(spec, [po.name for po, _ in out_pairs], parent)
        checks = [check_output(po.name, co.name, p_out[k], c_out[k], mode=mode, atol=tolerance, rtol=rtol,
                               min_cosine=min_cos, kind=kinds.get(po.name), feeds=feeds.samples)
                  for k, (po, co) in enumerate(out_pairs)]
        verdict = overall([c.verdict for c in checks])
        bad_changes = [ch for ch in changes if "changed rank" in ch or ("changed dtype" in ch and mode == "exact")]
        bad_changes += unasked
        note = None
        if bad_changes:
            verdict = FAILED
            note = "the child's interface changed without being asked: " + "; ".join(bad_changes)
        elif verdict == INCONCLUSIVE:
            note = ("the reference output cannot tell a correct model from a broken one: "
                    + next(c.reason for c in checks if c.verdict == INCONCLUSIVE)
                    + ("; give real inputs with --input" if feeds.partly_random else ""))
        elif feeds.notes:
            note = "; ".join(feeds.notes)
        if stateful is not None and verdict != PASSED:
            note = (f"the reference keeps state between calls (the same input twice gave another {stateful!r}): a "
                    "result made from one call cannot follow it" + (f"; {note}" if note else ""))
        return ParityReport(verdict, checks, tolerance if mode == "exact" else min_cos, len(feeds.samples), prt, crt,
                            mode, feeds.to_dict(), changes, note, child_samples)
    finally:
        for session in (ps, cs):  # a browser or a remote device behind a session: released now
            close = getattr(session, "close", None)
            if callable(close):
                close()


def smoke_run(path: str | Path, inputs: InputSpec | None = None, runtime: str | None = None) -> dict[str, Any]:
    """Load ``path`` and run it once (used where no comparison is made: a result is never unrun)."""
    sess = load_for_check(path, runtime)
    if sess is None:
        return {}
    feeds = make_feeds(sess.inputs, inputs, count=1, dynamic_default=CHECK_DYNAMIC_DIM, model=path)
    out = sess.run(feeds.samples[0])
    return {k: list(np.asarray(v).shape) for k, v in out.items()}
