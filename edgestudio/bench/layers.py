"""Per-layer truth: run a parent and its child (a conversion or a quantization) on the same inputs with every
intermediate tensor exposed, match the tensors of the two graphs, and say where they part.

Exposing intermediates: ONNX (every node output added as a graph output, run by ONNX Runtime with graph
optimizations off, so nothing is fused away), OpenVINO IR (an output added on every op's port, f32), TFLite
(LiteRT's ``experimental_preserve_all_tensors``, without the XNNPACK delegate, which would hide them).

Matching: by tensor name where the converter kept it (normalized: ``:0`` suffixes, case), else by order and
element count along the graph (the shapes may differ by a layout change: NCHW vs NHWC is undone before
comparing). Quantized tensors are dequantized with their scale and zero point; the Quantize/DequantizeLinear copies
of a QDQ graph are not layers and are not compared (matched by size they would stand in for a layer the quantizer
fused away: a real PP-OCR model was blamed at a fused Add that way). Each pair says how it was matched; tensors that could not
be matched are counted and named.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgestudio.core.errors import EdgeStudioError
from edgestudio.core.formats import ModelFormat, detect_format

MIN_COSINE = 0.99  # below this (or SNR under MIN_SNR_DB), a layer is said to diverge
MIN_SNR_DB = 20.0
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear")


@dataclass
class Tensor:
    name: str
    op: str  # the producing op's type
    node: str  # the producing node's name
    order: int  # position along the graph (topological)
    values: list[np.ndarray] = field(default_factory=list, repr=False)  # one per input sample

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.values[0].shape) if self.values else ()


@dataclass
class LayerPair:
    parent: str
    child: str
    op: str
    node: str
    order: int
    matched_by: str  # name, order+size
    cosine: float | None
    snr_db: float | None
    max_abs_diff: float
    rel_diff: float
    layout: str | None = None
    diverges: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("cosine", "snr_db", "max_abs_diff", "rel_diff"):
            if isinstance(d[k], float):
                d[k] = round(d[k], 6) if abs(d[k]) < 1e6 else d[k]
        return d


def _norm(name: str) -> str:
    name = name.lower().removesuffix(":0")
    return re.sub(r"[^a-z0-9]+", "/", name).strip("/")


# ------------------------------------------------------------------------------------------- exposing
def _onnx_tensors(path: Path, feeds: list[dict[str, np.ndarray]]) -> list[Tensor]:
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path), format="protobuf")
    existing = {o.name for o in model.graph.output}
    inits = {i.name for i in model.graph.initializer}
    order: list[Tensor] = []
    for i, node in enumerate(model.graph.node):
        if node.op_type in QDQ_OPS:  # a quantized copy of a tensor (and its float twin), not a layer's output
            continue
        for out in node.output:
            if out and out not in inits:
                order.append(Tensor(out, node.op_type, node.name or out, i))
                if out not in existing:
                    model.graph.output.append(onnx.ValueInfoProto(name=out))
    with tempfile.TemporaryDirectory(prefix="edgestudio-layers-") as tmp:
        exposed = Path(tmp) / "exposed.onnx"
        onnx.save(model, str(exposed), format="protobuf")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.log_severity_level = 3
        sess = ort.InferenceSession(str(exposed), opts, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        for sample in feeds:
            outs = sess.run(names, sample)
            got = dict(zip(names, outs))
            for t in order:
                t.values.append(np.asarray(got[t.name]))
    return [t for t in order if t.values and np.issubdtype(t.values[0].dtype, np.floating)]


def _openvino_tensors(path: Path, feeds: list[dict[str, np.ndarray]]) -> list[Tensor]:
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    order: list[Tensor] = []
    ports = []
    for i, op in enumerate(model.get_ordered_ops()):
        kind = op.get_type_name()
        if kind in ("Parameter", "Result", "Constant", "Convert") or op.get_output_size() == 0:
            continue
        for p in range(op.get_output_size()):
            out = op.output(p)
            names = sorted(out.get_names())
            if not names:  # give it a name: results are read back by name
                names = [f"{op.get_friendly_name()}:{p}"]
                out.get_tensor().set_names(set(names))
            order.append(Tensor(names[0], kind, op.get_friendly_name(), i))
            ports.append(out)
    model.add_outputs(ports)
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    by_name = {t.name: t for t in order}
    for sample in feeds:
        res = compiled(sample)
        for port in compiled.outputs:
            for name in port.get_names():
                if name in by_name:
                    by_name[name].values.append(np.asarray(res[port]))
                    break
    return [t for t in order if t.values and np.issubdtype(t.values[0].dtype, np.floating)]


def _tflite_tensors(path: Path, feeds: list[dict[str, np.ndarray]]) -> list[Tensor]:
    import warnings

    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interp = Interpreter(str(path), experimental_preserve_all_tensors=True,
                             experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    details = {d["index"]: d for d in interp.get_tensor_details()}
    ins = interp.get_input_details()
    order = []
    for op in interp._get_ops_details():  # noqa: SLF001 - LiteRT's only way to walk the ops
        for idx in op["outputs"]:
            if int(idx) >= 0:
                d = details[int(idx)]
                order.append((Tensor(d["name"], op["op_name"], f"{op['op_name']}_{op['index']}", int(op["index"])), d))
    for sample in feeds:
        for i, d in enumerate(ins):
            x = list(sample.values())[i] if d["name"] not in sample else sample[d["name"]]
            scale, zero = d["quantization"]
            if np.issubdtype(d["dtype"], np.integer) and scale:
                x = np.clip(np.round(np.asarray(x) / scale + zero), np.iinfo(d["dtype"]).min, np.iinfo(d["dtype"]).max)
            interp.set_tensor(d["index"], np.asarray(x).astype(d["dtype"]))
        interp.invoke()
        for t, d in order:
            v = interp.get_tensor(d["index"])
            scale, zero = d["quantization"]
            if np.issubdtype(v.dtype, np.integer) and scale:
                v = (v.astype(np.float32) - zero) * scale  # dequantized: compared in the parent's units
            t.values.append(np.asarray(v))
    return [t for t, _ in order if t.values and np.issubdtype(t.values[0].dtype, np.floating)]


EXPOSERS = {ModelFormat.ONNX: _onnx_tensors, ModelFormat.OPENVINO: _openvino_tensors, ModelFormat.TFLITE: _tflite_tensors}


def intermediate_tensors(path: str | Path, feeds: list[dict[str, np.ndarray]]) -> list[Tensor]:
    path = Path(path)
    fmt = detect_format(path)
    if fmt not in EXPOSERS:
        raise EdgeStudioError(path, f"per-layer comparison reads ONNX, OpenVINO IR and TFLite models, not {fmt.label}"
                                    "; convert it first")
    return EXPOSERS[fmt](path, feeds)


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


def _named_pairs(parent: list[Tensor], child: list[Tensor], pairs: list[LayerPair]) -> list[tuple[Tensor, Tensor]]:
    p_by = {t.name: t for t in parent}
    c_by = {c.name: c for c in child}
    return [(p_by[x.parent], c_by[x.child]) for x in pairs]


def _constant(t: Tensor) -> bool:
    return len(t.values) > 1 and all(np.array_equal(t.values[0], v) for v in t.values[1:])


def match_tensors(parent: list[Tensor], child: list[Tensor]) -> tuple[list[LayerPair], list[str], list[str]]:
    """Pairs along the parent's order; the parent's and the child's tensors left unmatched."""
    parent = [t for t in parent if not _constant(t)]  # folded constants (a reshaped bias): not layers
    child = [t for t in child if not _constant(t)]
    # by name. A tensor may carry several names: TFLite names a fused op's output after every op it fused
    # (Conv;BiasAdd;Relu), on either side of the hop. Such a tensor is the output of the *last* op of the group
    # on the other side: parents are taken from the last, each with the last unused child it shares a name with.
    def aliases(t: Tensor) -> set[str]:
        return {_norm(a) for a in t.name.split(";") if a}

    pos = {id(c): i for i, c in enumerate(child)}
    c_by_alias: dict[str, list[Tensor]] = {}
    for c in child:
        for a in aliases(c):
            c_by_alias.setdefault(a, []).append(c)
    pairs: list[LayerPair] = []
    used: set[int] = set()
    taken: set[int] = set()
    for t in sorted(parent, key=lambda t: -t.order):
        cands = {id(c): c for a in aliases(t) for c in c_by_alias.get(a, [])}
        for c in sorted(cands.values(), key=lambda c: -pos[id(c)]):
            if id(c) in used:
                continue
            al = _aligned(c.values, t.values)
            if al is not None:
                used.add(id(c))
                taken.add(id(t))
                pairs.append(_pair(t, c, al, "name"))
                break
    pending = [t for t in parent if id(t) not in taken]
    # the rest: by element count, only between the child tensors of their name-matched neighbours (a tensor a
    # converter fused away has no partner there, and gets none)
    anchors = sorted((t.order, pos[id(c)]) for t, c in _named_pairs(parent, child, pairs))
    still: list[str] = []
    for t in pending:
        lo = max((ci for po, ci in anchors if po < t.order), default=-1)
        hi = min((ci for po, ci in anchors if po > t.order), default=len(child))
        size = int(np.prod(t.shape))
        match = None
        for c in child[lo + 1:hi]:
            if id(c) not in used and int(np.prod(c.shape)) == size:
                al = _aligned(c.values, t.values)
                if al is not None:
                    match = (c, al)
                    break
        if match is None:
            still.append(t.name)
            continue
        used.add(id(match[0]))
        pairs.append(_pair(t, match[0], match[1], "order+size"))
        anchors = sorted([*anchors, (t.order, pos[id(match[0])])])
    pairs.sort(key=lambda p: p.order)
    return pairs, still, [c.name for c in child if id(c) not in used]


def _pair(p: Tensor, c: Tensor, aligned: tuple[list[np.ndarray], str | None], how: str) -> LayerPair:
    values, layout = aligned
    cos, snr, mx, rel = _metrics(p.values, values)
    bad = (cos is not None and cos < MIN_COSINE) or (snr is not None and snr < MIN_SNR_DB)
    return LayerPair(p.name, c.name, p.op, p.node, p.order, how, cos, snr, mx, rel, layout, bad)


def compare_layers(parent: str | Path, child: str | Path, *, inputs: Any = None, samples: int = 4,
                   seed: int = 0) -> dict[str, Any]:
    """Every matched intermediate of ``child`` against ``parent`` on the same inputs (``inputs``: an InputSpec or
    its dict; real data makes the verdicts meaningful), and the first layer where they part."""
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
    pairs, lone_parent, lone_child = match_tensors(p_t, c_t)
    first = next((p for p in pairs if p.diverges), None)
    worst = min((p for p in pairs if p.cosine is not None), key=lambda p: p.cosine or 0.0, default=None)
    note = None
    if feeds.partly_random:
        note = "on random inputs only: give real ones with --input for a verdict that means something"
    result = {"parent": str(parent), "child": str(child), "samples": len(feeds.samples), "inputs": feeds.to_dict(),
            "pairs": [p.to_dict() for p in pairs], "matched": len(pairs),
            "matched_by_name": sum(p.matched_by == "name" for p in pairs),
            "unmatched_parent": lone_parent, "unmatched_child": lone_child,
            "first_diverging": first.to_dict() if first else None, "worst": worst.to_dict() if worst else None,
            "thresholds": {"min_cosine": MIN_COSINE, "min_snr_db": MIN_SNR_DB}, "note": note,
            "verdict": ("inconclusive" if note else "diverges" if first else "agrees")}
    result["graph"] = graph_heat(result)
    return result


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
    return {"model": result["parent"], "title": "child vs parent, per layer", "low": "cosine 1",
            "high": f"cosine {1 - span:.3g}", "nodes": nodes}


LAYERED = (ModelFormat.ONNX, ModelFormat.OPENVINO, ModelFormat.TFLITE)


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
        if fmt in LAYERED:
            layered.append(p)
        else:
            skipped.append({"model": str(p), "reason": f"{fmt.label}: no intermediate tensors exposed (its converted "
                                                       "children are compared to each other)"})
    if len(layered) < 2:
        raise EdgeStudioError(paths[-1], "fewer than two models of the chain are ONNX, OpenVINO IR or TFLite")
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
                "first_diverging": r["first_diverging"]}

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
