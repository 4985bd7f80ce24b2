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

from dataclasses import dataclass, field
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
from edgestudio.bench.outputs import (  # noqa: F401 - the verdicts and the per-output check, re-exported
    DEFAULT_RTOL,
    EXACT_MIN_COSINE,
    FAILED,
    INCONCLUSIVE,
    LOSSY_MIN_COSINE,
    NOT_CHECKED,
    PASSED,
    OutputCheck,
    _looks_like_classes,
    _r,
    check_output,
    exact_tolerance,
    output_text,
    overall,
)
from edgestudio.core.modelinfo import Dim, TensorSpec


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
