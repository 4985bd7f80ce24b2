"""Per-layer truth: run a parent and its child (a conversion or a quantization) on the same inputs with every
intermediate tensor exposed, pair the tensors of the two graphs that are *the same tensor*, and say where they part
and which layer's own error matters most.

Exposing intermediates is the runtime's (``Runtime.intermediate_tensors``, asked of the runtime that runs the
format): ONNX Runtime (every node output added as a graph output, graph optimizations off, so nothing is fused away),
OpenVINO (an output added on every op's port, f32), LiteRT (``experimental_preserve_all_tensors``, without the XNNPACK
delegate, which would hide them), ExecuTorch (ETDump's debug buffer: every op's output; a delegated block only its
inputs and outputs, said so). Runtime-internal tensors are never exposed: the Quantize/DequantizeLinear copies of a
QDQ graph, NNCF's FakeQuantize, OpenVINO's Converts, TFLite's (DE)QUANTIZE, ExecuTorch's quantize/dequantize ops,
and whatever is computed from constants only (weight decompression). They are transparent when the graph is walked:
a Conv fed through a DequantizeLinear is fed by the tensor that was quantized. A tensor computed inside a block the
runtime does not open (an ExecuTorch delegate) is not seen: where blocks were compared, the verdict never says
"agrees" for the layers inside them.

Pairing, and only pairs get verdicts:
- by name, where the converter kept it (normalized: ``:0`` suffixes, case; a name that is only a position, as
  ExecuTorch's, never pairs). TFLite names a fused op's output after
  every op it fused (``Conv;BiasAdd;Relu``), on either side of a hop: the tensors sharing those names form a group
  and only the one produced by the *last* op of the group is compared (the others were fused away). A name pair
  whose one side is an activation's output (Relu, Clip, a TFLite op with a fused activation) and the other side is
  not is refused: a quantizer that fused a Clip into its Conv gave the Conv's pre-activation output the Clip's name.
  That child tensor is then paired with the activation's input in the parent (both before the activation).
- by structure, where the graph proves it: the same op type (across formats: Conv = Convolution = CONV_2D), the
  producer's inputs already paired with each other, one candidate only, and every paired consumer on the parent's
  side consuming it on the child's side too with the same op type, every consumer paired (a converter that folded a
  BatchNorm or a Mul into a convolution's weights leaves an op of the same type whose output is not the same tensor).
  Walked from the inputs, repeated until nothing more is proven.
Everything else is reported unmatched (and counted); there is no matching by order or size.

Blame: the first diverging pair in graph order, and the layer whose own error is largest: its output pair's cosine
dropped furthest below the worst of its inputs' pairs (the error it adds, not the error it carries). Both are
named by the weighted op behind them (the Conv/Gemm/MatMul a quantizer quantizes; a diverging Relu or Add carries its
producer's error): that is what keeping a layer in float means.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgestudio.backends.intermediates import Tensor, canonical_op
from edgestudio.core.errors import EdgeStudioError
from edgestudio.core.formats import ModelFormat, detect_format

MIN_COSINE = 0.99  # below this (or SNR under MIN_SNR_DB), a layer is said to diverge
MIN_SNR_DB = 20.0


@dataclass
class LayerPair:
    parent: str
    child: str
    op: str
    node: str
    order: int
    matched_by: str  # name, structure
    cosine: float | None
    snr_db: float | None
    max_abs_diff: float
    rel_diff: float
    layout: str | None = None
    diverges: bool = False
    input_cosine: float | None = None  # the worst of the pairs it is computed from (1: the model's inputs)
    contribution: float | None = None  # its own error: input_cosine - cosine
    blame_node: str | None = None  # the weighted op behind it (itself, or the nearest upstream)
    blame_op: str | None = None
    blame_tensor: str | None = None  # that op's output tensor (what the TFLite denylist takes)
    blame_upstream: str | None = None  # the weighted op feeding it (the tensor between them is quantized too)
    child_op: str | None = None  # the child's producing op ("CONV_2D+RELU": an activation fused into it)
    opaque: str | None = None  # a delegated block on either side: its ops inside are not compared one by one

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("cosine", "snr_db", "max_abs_diff", "rel_diff", "input_cosine", "contribution"):
            if isinstance(d[k], float):
                d[k] = round(d[k], 6) if abs(d[k]) < 1e6 else d[k]
        return d


def _norm(name: str) -> str:
    # ONNX Runtime's QDQ quantizer renames the tensor an op writes into a graph output X (which then goes through
    # QuantizeLinear/DequantizeLinear) to X_QuantizeLinear_Input: the same tensor as the parent's X
    name = name.lower().removesuffix(":0").removesuffix("_quantizelinear_input")
    return re.sub(r"[^a-z0-9]+", "/", name).strip("/")


# ------------------------------------------------------------------------------------------- exposing
def intermediate_tensors(path: str | Path, feeds: list[dict[str, np.ndarray]]) -> list[Tensor]:
    """The model's graph inputs (op ``Input``) and every float intermediate it computes, in graph order: asked of
    the runtime that runs its format (``Runtime.intermediate_tensors``)."""
    from edgestudio.backends.runtimes import get_runtime

    path = Path(path)
    runtime = exposing_runtime(detect_format(path))
    if runtime is None:
        raise EdgeStudioError(path, f"per-layer comparison reads {', '.join(layered_formats())} models, not "
                                    f"{detect_format(path).label}; convert it first")
    return get_runtime(runtime).intermediate_tensors(path, feeds)


def exposing_runtime(fmt: ModelFormat) -> str | None:
    """The installed runtime of ``fmt`` (its own first) that exposes intermediate tensors, or None."""
    from edgestudio.backends.runtimes import RUNTIMES, runtimes_for_format

    return next((n for n in runtimes_for_format(fmt) if fmt in RUNTIMES.get(n).exposes), None)


def layered_formats() -> list[str]:
    """The formats whose installed runtimes expose intermediate tensors (for messages)."""
    return [f.label for f in ModelFormat if exposing_runtime(f) is not None]


# ------------------------------------------------------------------------------------------- matching
def _metrics(p: list[np.ndarray], c: list[np.ndarray]) -> tuple[float | None, float | None, float, float]:
    a = np.concatenate([x.astype(np.float64).ravel() for x in p])
    b = np.concatenate([x.astype(np.float64).ravel() for x in c])
    diff = np.abs(a - b)
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    cos = float(a @ b / (na * nb)) if na > 0 and nb > 0 else (1.0 if na == nb == 0 else 0.0)
    noise = float(np.sum((a - b) ** 2))
    snr = None if noise == 0 else (10 * np.log10(float(np.sum(a ** 2)) / noise) if np.any(a) else -np.inf)
    scale = float(np.max(np.abs(a))) or 1.0
    return cos, (float(snr) if snr is not None else None), float(diff.max(initial=0.0)), float(diff.max(initial=0.0)) / scale


def _aligned(child: list[np.ndarray], parent: list[np.ndarray]) -> tuple[list[np.ndarray], str | None] | None:
    """The child's values in the parent's layout (same shape, a transpose of it, or the same size), or None."""
    ps, cs = parent[0].shape, child[0].shape
    if ps == cs:
        return child, None
    if len(ps) == len(cs) == 4:
        for perm, name in (((0, 3, 1, 2), "NHWC->NCHW"), ((0, 2, 3, 1), "NCHW->NHWC")):
            if tuple(cs[i] for i in perm) == ps:
                return [np.transpose(x, perm) for x in child], name
    if int(np.prod(ps)) == int(np.prod(cs)):
        return [x.reshape(ps) for x in child], "reshaped"
    return None


def _constant(t: Tensor) -> bool:
    return len(t.values) > 1 and all(np.array_equal(t.values[0], v) for v in t.values[1:])


@dataclass
class Matching:
    """What :func:`match_tensors` found: the pairs (parent order), the tensors left unmatched on each side, and the
    name pairs refused (one side before an activation, the other after it)."""

    pairs: list[LayerPair]
    unmatched_parent: list[str]
    unmatched_child: list[str]
    refused: list[dict[str, str]]


def _aliases(t: Tensor) -> set[str]:
    return {_norm(a) for a in t.name.split(";") if a} if t.named else set()


def _name_candidates(parent: list[Tensor], child: list[Tensor]) -> list[tuple[Tensor, Tensor]]:
    """(parent, child) tensors that carry the same name. Tensors linked by shared names form a group (a TFLite op
    named after every op it fused, on either side): when one side of a group is a single tensor, it stands for the
    *last* op of the group on the other side, and only that one is paired; the rest were fused away."""
    owners: dict[str, list[tuple[str, int]]] = {}
    sides = {"p": parent, "c": child}
    for side, tensors in sides.items():
        for i, t in enumerate(tensors):
            for a in _aliases(t):
                owners.setdefault(a, []).append((side, i))
    seen: set[tuple[str, int]] = set()
    out: list[tuple[Tensor, Tensor]] = []
    for start in [("p", i) for i in range(len(parent))]:
        if start in seen:
            continue
        group, queue = [], [start]
        seen.add(start)
        while queue:  # the tensors linked to this one through shared names
            cur = queue.pop()
            group.append(cur)
            for a in _aliases(sides[cur[0]][cur[1]]):
                for other in owners[a]:
                    if other not in seen:
                        seen.add(other)
                        queue.append(other)
        ps = sorted((parent[i] for s, i in group if s == "p"), key=lambda t: t.order)
        cs = sorted((child[i] for s, i in group if s == "c"), key=lambda t: t.order)
        if not ps or not cs:
            continue
        if len(ps) == 1 or len(cs) == 1:
            out.append((ps[-1], cs[-1]))
            continue
        used: set[int] = set()  # several on both sides: each parent (last first) with the last child it shares a name with
        for t in reversed(ps):
            for c in reversed(cs):
                if id(c) not in used and _aliases(t) & _aliases(c):
                    used.add(id(c))
                    out.append((t, c))
                    break
    return out


def match_tensors(parent: list[Tensor], child: list[Tensor]) -> Matching:
    """Pair the tensors of two graphs that are the same tensor: by name, else by structure proven by the graph."""
    p_inputs = [t for t in parent if t.op == "Input"]
    c_inputs = [t for t in child if t.op == "Input"]
    parent = [t for t in parent if t.op != "Input" and not _constant(t)]  # folded constants: not layers
    child = [t for t in child if t.op != "Input" and not _constant(t)]
    mapping: dict[str, str] = {}  # parent tensor -> child tensor (graph inputs included)
    if len(p_inputs) == len(c_inputs):  # fed the same samples in the same order (parity.feeds_for_child)
        mapping.update((a.name, b.name) for a, b in zip(p_inputs, c_inputs))
    pairs: list[LayerPair] = []
    used: set[str] = set()
    refused: list[dict[str, str]] = []

    def take(p: Tensor, c: Tensor, how: str) -> bool:
        al = _aligned(c.values, p.values)
        if al is None:
            return False
        pairs.append(_pair(p, c, al, how))
        mapping[p.name] = c.name
        used.add(c.name)
        return True

    p_by_name = {t.name: t for t in parent}
    renamed: list[tuple[Tensor, Tensor, dict[str, str]]] = []
    for p, c in _name_candidates(parent, child):
        if p.post_activation != c.post_activation:  # a fused activation renamed the tensor before it
            refused.append({"parent": p.name, "child": c.name, "reason": (
                f"{'after' if p.post_activation else 'before'} an activation in the parent ({p.op}), "
                f"{'after' if c.post_activation else 'before'} it in the child ({c.op}"
                + (f" with {c.activation} fused" if c.activation else "") + ")")})
            before = p_by_name.get(p.inputs[0]) if len(p.inputs) == 1 else None
            if p.post_activation and before is not None and not before.post_activation:
                renamed.append((before, c, refused[-1]))
            continue
        if not take(p, c, "name"):
            refused.append({"parent": p.name, "child": c.name, "reason": f"shapes {p.shape} and {c.shape} differ"})
    # a quantizer that removed an activation gave its name to the tensor before it: that tensor is the activation's
    # input in the parent (both before the activation), when nothing else claimed it
    for before, c, entry in renamed:
        if before.name not in mapping and c.name not in used and take(before, c, "name"):
            refused.remove(entry)

    # by structure: same op type, inputs paired, one candidate; its paired consumers consume it on both sides
    p_consumers: dict[str, list[Tensor]] = {}
    for t in parent:
        for i in t.inputs:
            p_consumers.setdefault(i, []).append(t)
    c_by_name = {c.name: c for c in child}
    c_by_inputs: dict[frozenset[str], list[Tensor]] = {}
    c_consumers: dict[str, list[Tensor]] = {}
    for c in child:
        c_by_inputs.setdefault(frozenset(c.inputs), []).append(c)
        for i in c.inputs:
            c_consumers.setdefault(i, []).append(c)
    for _ in range(16):  # a pair proven downstream may prove the one before it: repeat until nothing changes
        changed = False
        for p in parent:
            if p.name in mapping or not p.inputs or any(i not in mapping for i in p.inputs):
                continue
            kind = canonical_op(p.op)
            cands = [c for c in c_by_inputs.get(frozenset(mapping[i] for i in p.inputs), [])
                     if c.name not in used and canonical_op(c.op) == kind and c.post_activation == p.post_activation]
            if len(cands) != 1:
                continue
            c = cands[0]
            if p.named or c.named:
                consumers_agree = all(
                    q.name in mapping and mapping[q.name] in c_by_name
                    and c.name in c_by_name[mapping[q.name]].inputs
                    and canonical_op(c_by_name[mapping[q.name]].op) == canonical_op(q.op)
                    for q in p_consumers.get(p.name, []))
            else:  # no names anchor the consumers (ExecuTorch): walked forward, they agree by op type
                kinds = sorted(canonical_op(q.op) for q in p_consumers.get(p.name, []))
                c_kinds = sorted(canonical_op(q.op) for q in c_consumers.get(c.name, []))
                consumers_agree = kinds == c_kinds
                folded = p_consumers.get(p.name, [None])[0] if kinds == ["batchnorm"] != c_kinds else None
                if folded is not None and folded.name not in mapping and c.name not in used:
                    # the child folded the BatchNorm into this op: its output is the BatchNorm's, not the op's
                    changed = take(folded, c, "structure") or changed
                    continue
            if consumers_agree and take(p, c, "structure"):
                changed = True
        if not changed:
            break
    pairs.sort(key=lambda x: x.order)
    _blame(parent, pairs)
    return Matching(pairs, [t.name for t in parent if t.name not in mapping],
                    [c.name for c in child if c.name not in used], refused)


def _blame(parent: list[Tensor], pairs: list[LayerPair]) -> None:
    """Each pair's own error (its cosine below the worst of the pairs it is computed from) and the weighted op
    behind it, walking the parent's graph."""
    by_name = {t.name: t for t in parent}
    cos = {p.parent: (p.cosine if p.cosine is not None else 1.0) for p in pairs}
    for pair in pairs:
        t = by_name[pair.parent]
        found: list[float] = []
        seen: set[str] = set()
        stack = list(t.inputs)
        while stack:  # the nearest paired tensors upstream (through unpaired ones)
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            if n.startswith("input:"):
                found.append(1.0)
            elif n in cos:
                found.append(cos[n])
            elif n in by_name:
                stack.extend(by_name[n].inputs)
        pair.input_cosine = min(found, default=1.0)
        pair.contribution = pair.input_cosine - cos[pair.parent]
        queue, seen = [t], set()
        while queue:  # the weighted op behind it: itself, else the nearest upstream (the worse branch first)
            cur = queue.pop(0)
            if cur.name in seen:
                continue
            seen.add(cur.name)
            if cur.weighted:
                pair.blame_node, pair.blame_op, pair.blame_tensor = cur.node, cur.op, cur.name
                pair.blame_upstream = _weighted_upstream(cur, by_name, cos)
                break
            queue.extend(by_name[n] for n in sorted(cur.inputs, key=lambda n: cos.get(n, 1.0)) if n in by_name)


def _weighted_upstream(t: Tensor, by_name: dict[str, Tensor], cos: dict[str, float]) -> str | None:
    """The nearest weighted op feeding ``t`` (the worse branch first), or None."""
    queue = [by_name[n] for n in sorted(t.inputs, key=lambda n: cos.get(n, 1.0)) if n in by_name]
    seen: set[str] = set()
    while queue:
        cur = queue.pop(0)
        if cur.name in seen:
            continue
        seen.add(cur.name)
        if cur.weighted:
            return cur.node
        queue.extend(by_name[n] for n in sorted(cur.inputs, key=lambda n: cos.get(n, 1.0)) if n in by_name)
    return None


def _pair(p: Tensor, c: Tensor, aligned: tuple[list[np.ndarray], str | None], how: str) -> LayerPair:
    values, layout = aligned
    cos, snr, mx, rel = _metrics(p.values, values)
    bad = (cos is not None and cos < MIN_COSINE) or (snr is not None and snr < MIN_SNR_DB)
    return LayerPair(p.name, c.name, p.op, p.node, p.order, how, cos, snr, mx, rel, layout, bad,
                     child_op=c.op + (f"+{c.activation}" if c.activation else ""), opaque=p.opaque or c.opaque)


def _own(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pairs whose contribution is a weighted op's own: its output's pair, or, where that op has no pair (its
    output fused away, or unproven), the nearest pair after it. A pooling or a gate's cosine moves with the bias its
    input already carries (a mean keeps the bias and drops the variance): it is not an error of its own."""
    paired = {p["parent"] for p in pairs}
    return [p for p in pairs if p.get("blame_node") and (p["blame_tensor"] == p["parent"]
                                                         or p["blame_tensor"] not in paired)]


def blamed_layers(pairs: list[dict[str, Any]], limit: int = 12) -> list[dict[str, Any]]:
    """The weighted ops to blame, the largest own error first: per weighted op, the largest contribution of its
    own pairs (:func:`_own`; only those that add error)."""
    best: dict[str, dict[str, Any]] = {}
    for p in _own(pairs):
        if (p.get("contribution") or 0.0) <= 1e-6:
            continue
        cur = best.get(p["blame_node"])
        if cur is None or p["contribution"] > cur["contribution"]:
            best[p["blame_node"]] = {"node": p["blame_node"], "op": p["blame_op"], "tensor": p["blame_tensor"],
                                     "upstream": p.get("blame_upstream"),
                                     "contribution": p["contribution"], "via": p["parent"], "cosine": p["cosine"],
                                     "input_cosine": p["input_cosine"], "diverges": p["diverges"]}
    return sorted(best.values(), key=lambda b: -b["contribution"])[:limit]


def _outputs_identical(outputs: dict[str, Any] | None, min_cosine: float = 0.9999) -> bool:
    """The models' own outputs passed and every one of them is the parent's to a cosine of ``min_cosine``."""
    rows = (outputs or {}).get("outputs") or []
    return (outputs or {}).get("verdict") == "passed" and bool(rows) and all(
        (o.get("cosine") if o.get("cosine") is not None else 0.0) >= min_cosine for o in rows)


def compare_layers(parent: str | Path, child: str | Path, *, inputs: Any = None, samples: int = 4,
                   seed: int = 0) -> dict[str, Any]:
    """Every paired intermediate of ``child`` against ``parent`` on the same inputs (``inputs``: an InputSpec or
    its dict; real data makes the verdicts meaningful): the first layer where they part, and the layer whose own
    error is largest."""
    from edgestudio.bench.parity import feeds_for_child, load_for_check
    from edgestudio.core.inputspec import InputSpec, make_feeds

    spec = InputSpec.from_dict(inputs) if isinstance(inputs, dict) else (inputs or InputSpec())
    session = load_for_check(parent)
    feeds = make_feeds(session.inputs, spec, count=samples, seed=seed, model=parent)
    child_session = load_for_check(child)
    try:
        child_samples = feeds_for_child(session.inputs, child_session.inputs, feeds.samples)
    except ValueError as exc:
        raise EdgeStudioError(child, f"cannot feed it the parent's inputs: {exc}") from None
    p_t = intermediate_tensors(parent, feeds.samples)
    c_t = intermediate_tensors(child, child_samples)
    m = match_tensors(p_t, c_t)
    pairs = m.pairs
    first = next((p for p in pairs if p.diverges), None)
    worst = min((p for p in pairs if p.cosine is not None), key=lambda p: p.cosine or 0.0, default=None)
    note = None
    if feeds.partly_random:
        note = "on random inputs only: give real ones with --input for a verdict that means something"
    dicts = [p.to_dict() for p in pairs]
    own = _own(dicts)
    biggest = max(own, key=lambda p: p["contribution"] or 0.0, default=None)
    if biggest is not None and (biggest["contribution"] or 0.0) <= 1e-6:
        biggest = None  # nothing adds error
    result = {"parent": str(parent), "child": str(child), "samples": len(feeds.samples), "inputs": feeds.to_dict(),
              "pairs": dicts, "matched": len(pairs),
              "matched_by_name": sum(p.matched_by == "name" for p in pairs),
              "matched_by_structure": sum(p.matched_by == "structure" for p in pairs),
              "unmatched_parent": m.unmatched_parent, "unmatched_child": m.unmatched_child, "refused": m.refused,
              "unmatched": {"parent": len(m.unmatched_parent), "child": len(m.unmatched_child),
                            "refused": len(m.refused)},
              "first_diverging": first.to_dict() if first else None, "worst": worst.to_dict() if worst else None,
              "biggest_contributor": biggest, "blame": blamed_layers(dicts),
              "thresholds": {"min_cosine": MIN_COSINE, "min_snr_db": MIN_SNR_DB}, "note": note,
              "verdict": ("inconclusive" if note else "diverges" if first else "agrees")}
    result["graph"] = graph_heat(result)
    result["outputs"] = _outputs(parent, child, spec, samples, seed)
    if spec.data:  # how many samples the data holds: a subset used is said, never silently
        try:
            result["samples_in_data"] = len(make_feeds(session.inputs, spec, count=None, model=parent).samples)
            result["data_file"] = Path(spec.data).name
        except EdgeStudioError:
            pass
    # blocks the runtime does not open (a delegate): the layers inside them were not compared, never "agrees"
    blocks = {(str(model), t.node): t.opaque for model, ts in ((parent, p_t), (child, c_t)) for t in ts if t.opaque}
    result["opaque"] = [{"model": k[0], "node": k[1], "why": why} for k, why in blocks.items()]
    if blocks:
        hidden = "; ".join(f"{Path(k[0]).name}: {why}" for k, why in blocks.items())
        result["note"] = ((result["note"] + "; ") if result["note"] else "") + (
            f"not compared layer by layer inside {len(blocks)} block{'s' if len(blocks) > 1 else ''} ({hidden})")
        if result["verdict"] == "agrees":
            result["verdict"] = "inconclusive"
    if not pairs:  # no verdict from nothing: nothing paired, nothing to say about the layers
        result["verdict"] = "inconclusive"
        result["note"] = ((result["note"] + "; ") if result["note"] else "") + (
            "no tensor of the child could be paired with one of the parent's (names and graph structure differ): the "
            "layers cannot tell where they part; the outputs below can")
    elif first is not None and _outputs_identical(result["outputs"]):
        # a layer inside parts but the outputs are the parent's (cosine 1.0000): the difference does not reach
        # them. A lossy pass is not enough: a broken layer that leaves top-1 alone still diverges
        result["verdict"] = "outputs agree"
    return result


def _outputs(parent: str | Path, child: str | Path, spec: Any, samples: int, seed: int) -> dict[str, Any] | None:
    """The models' own outputs judged as the drift guard judges them (worst sample, channel slices, the task
    metrics of a declared output kind): what the layers above explain."""
    from edgestudio.bench.parity import compare_models

    try:
        report = compare_models(parent, child, inputs=spec, samples=samples, seed=seed, mode="lossy")
    except (EdgeStudioError, ValueError):
        return None
    return {"verdict": report.verdict, "outputs": [o.to_dict() for o in report.outputs], "summary": report.summary()}


def graph_heat(result: dict[str, Any]) -> dict[str, Any]:
    """A heat overlay for the parent's graph from :func:`compare_layers`'s result: per parent node, how far its
    output parts from the child's (0: cosine 1; 0.5: at the divergence threshold; 1: twice past it)."""
    nodes: dict[str, dict[str, Any]] = {}
    span = 2 * (1 - result["thresholds"]["min_cosine"])
    for p in result["pairs"]:
        cos = p["cosine"] if p["cosine"] is not None else 1.0
        heat = min(1.0, max(0.0, (1 - cos) / span))
        if p["diverges"]:
            heat = max(heat, 0.5)
        snr = "inf" if p["snr_db"] is None else f"{p['snr_db']:.1f}"
        prev = nodes.get(p["node"])
        if prev is None or heat > prev["heat"]:
            nodes[p["node"]] = {"heat": heat, "label": f"cosine {cos:.5f}, SNR {snr} dB, max diff "
                                                       f"{p['max_abs_diff']:.3g}" + (" (diverges)" if p["diverges"]
                                                                                      else "")}
    first = result.get("first_diverging")
    if first and first["node"] in nodes:
        nodes[first["node"]]["label"] += " — first diverging layer"
    big = result.get("biggest_contributor")
    if big and big["node"] in nodes:
        nodes[big["node"]]["label"] += f" — largest own error (cosine drop {big['contribution']:.4g})"
    return {"model": result["parent"], "title": "child vs parent, per layer", "low": "cosine 1",
            "high": f"cosine {1 - span:.3g}", "nodes": nodes}


def output_agreement(parent: Path, child: Path, inputs: Any, samples: int = 8, seed: int = 0) -> dict[str, Any]:
    """The models' own outputs compared (the parity check's figures): the worst output's cosine and top-1."""
    from edgestudio.bench.parity import compare_models
    from edgestudio.core.inputspec import InputSpec

    spec = InputSpec.from_dict(inputs) if isinstance(inputs, dict) else (inputs or InputSpec())
    report = compare_models(parent, child, inputs=spec, samples=samples, seed=seed, mode="lossy")
    worst = min(report.outputs, key=lambda c: c.cosine, default=None)
    return {"output_cosine": None if worst is None else float(worst.cosine),
            "top1_agreement": None if worst is None else worst.top1_agreement}


def compare_chain(models: list[str | Path], *, inputs: Any = None, samples: int = 4, seed: int = 0,
                  cancel: Any = None) -> dict[str, Any]:
    """A whole lineage (original -> converted -> ... -> quantized), layer by layer: every hop against its parent,
    and the last model against the first, so the hop where the accuracy left is named. Models whose format has
    no exposed intermediates (Keras, SavedModel) are skipped, and said so: the next hop starts from the one before."""
    paths = [Path(m) for m in models]
    if len(paths) < 2:
        raise EdgeStudioError(paths[0] if paths else None, "a chain needs at least two models")
    layered, skipped = [], []
    for p in paths:
        fmt = detect_format(p)
        if exposing_runtime(fmt) is not None:
            layered.append(p)
        else:
            skipped.append({"model": str(p), "reason": f"{fmt.label}: no intermediate tensors exposed (its converted "
                                                       "children are compared to each other)"})
    if len(layered) < 2:
        raise EdgeStudioError(paths[-1], f"fewer than two models of the chain are {', '.join(layered_formats())}")
    hops = []
    for parent, child in zip(layered, layered[1:]):
        if cancel is not None:
            cancel.check()
        r = compare_layers(parent, child, inputs=inputs, samples=samples, seed=seed)
        hops.append(r)
    whole = compare_layers(layered[0], layered[-1], inputs=inputs, samples=samples, seed=seed) \
        if len(layered) > 2 else hops[0]

    def row(r: dict[str, Any]) -> dict[str, Any]:
        return {"parent": r["parent"], "child": r["child"], "verdict": r["verdict"], "matched": r["matched"],
                **output_agreement(Path(r["parent"]), Path(r["child"]), inputs, samples, seed),
                "first_diverging": r["first_diverging"], "biggest_contributor": r["biggest_contributor"]}

    rows = [row(r) for r in hops]
    # where the loss enters: the hop whose output moves furthest from its parent's
    # (saturated outputs, a softmax at 0.9999, may hide it: then the first hop whose layers part)
    scored = [(x["output_cosine"] if x["output_cosine"] is not None else 1.0, i) for i, x in enumerate(rows)]
    worst_cos, worst = min(scored)
    if worst_cos >= 1 - 1e-6:
        worst_cos, worst = 0.0, next((i for i, x in enumerate(rows) if x["verdict"] == "diverges"), None)
    verdicts = {r["verdict"] for r in hops}
    return {"models": [str(p) for p in paths], "skipped": skipped, "hops": rows, "whole": row(whole),
            "details": hops, "loss_enters_at": worst,
            "verdict": "inconclusive" if "inconclusive" in verdicts else whole["verdict"],
            "note": next((r["note"] for r in hops if r.get("note")), None)}
