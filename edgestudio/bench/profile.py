"""Per-layer time: where a model's inference time goes, from the runtime's own profiler.

Each runtime that has a profiler implements ``Runtime.profile_ops`` (ONNX Runtime: its profiling JSON; OpenVINO:
the performance counters of an infer request; ExecuTorch: ETDump, a delegated block's own ops included); one that
has none says why (LiteRT's Python interpreter) rather than guess. Times are the median over the profiled runs, after
warm-up; ``wall_ms`` is the median wall time of those same runs (profiling itself costs time: compare the layers'
total with it, and it with a plain benchmark).
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from edgestudio.core.errors import EdgeStudioError
from edgestudio.core.formats import ModelFormat, detect_format


def _table(per_node: dict[str, list[float]], types: dict[str, str], kernels: dict[str, str | None], runs: int,
           runtime: str) -> dict[str, Any]:
    layers = [{"node": n, "op": types.get(n, "?"), "kernel": kernels.get(n), "ms": statistics.median(v)}
              for n, v in per_node.items() if v]
    total = sum(r["ms"] for r in layers) or 1.0
    for r in layers:
        r["share"] = r["ms"] / total
    by_op: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for r in layers:
        by_op[r["op"]] += r["ms"]
        counts[r["op"]] += 1
    ops = sorted(({"op": k, "ms": v, "count": counts[k], "share": v / total} for k, v in by_op.items()),
                 key=lambda r: -r["ms"])
    return {"runtime": runtime, "runs": runs, "layers": sorted(layers, key=lambda r: -r["ms"]), "by_op": ops,
            "total_layer_ms": total}


def profile_model(path: str | Path, *, runtime: str | None = None, runs: int = 50, threads: int | None = None,
                  inputs: Any = None) -> dict[str, Any]:
    """Time per layer and per op type on ``runtime`` (default: the format's own), from its own profiler."""
    from edgestudio.backends.runtimes import RUNTIMES, get_runtime, runtime_for_format
    from edgestudio.core.inputspec import InputSpec, make_feeds

    path = Path(path)
    fmt = detect_format(path)
    runtime = runtime or runtime_for_format(fmt)
    rt = get_runtime(runtime)
    if not rt.can_profile():
        able = [n for n, cls in RUNTIMES.all().items() if cls.can_profile()]
        raise EdgeStudioError(path, rt.no_profiler or f"per-layer profiling runs on {', '.join(able)}, not {runtime}")
    if fmt not in rt.formats:
        raise EdgeStudioError(path, f"{runtime} does not run {fmt.label} models")
    spec = InputSpec.from_dict(inputs) if isinstance(inputs, dict) else (inputs or InputSpec())
    session = rt.load(path)
    feeds = make_feeds(session.inputs, spec, count=1, model=path).samples[0]
    times = rt.profile_ops(path, feeds, runs=runs, threads=threads)
    result = {**_table(times.per_node, times.types, times.kernels, runs, runtime),
              "wall_ms": statistics.median(times.walls_ms)}
    result.update(model=str(path), threads=threads)
    result["graph"] = graph_heat(result)
    return result


_POSITIONAL = re.compile(r"#\d+ [^/]+(/|$)")
_RUNTIME_SUFFIXES = re.compile(r"(_nchwc|/MatMulAddFusion|_token_\\d+|/WithoutBiases|/fq_weights_\\d+|_output_0)$")


def _graph(path: Path) -> tuple[dict[str, str], dict[str, str], dict[str, list[str]]]:
    """The model's nodes as Netron names them: {name: op type}, {tensor: producing node}, {node: input tensors}."""
    fmt = detect_format(path)
    if fmt is ModelFormat.ONNX:
        import onnx

        g = onnx.load(str(path), format="protobuf", load_external_data=False).graph
        return ({n.name: n.op_type for n in g.node if n.name}, {o: n.name for n in g.node for o in n.output},
                {n.name: list(n.input) for n in g.node})
    if fmt is ModelFormat.OPENVINO:
        import xml.etree.ElementTree as ET

        root = ET.parse(str(path)).getroot()
        return ({ly.get("name", ""): ly.get("type", "") for ly in root.iter("layer")}, {}, {})
    return {}, {}, {}


def resolve_nodes(path: str | Path, layers: list[dict[str, Any]]) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Map a profiler's layers to the graph's nodes. Runtimes rename what they fuse or re-lay out (ORT: ``fused X``,
    ``X:0_nchwc``, ``X/MatMulAddFusion``; OpenVINO: ``X/WithoutBiases``); what they insert themselves (reorders)
    has no node. A graph without node names is counted: ``#N op`` is its N-th node, ``#N op/inner`` an op inside
    it (a delegated block's). Returns {graph node: [profiled layers]} and the names that stay unmatched."""
    types, producer, inputs = _graph(Path(path))
    mapped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    lone: list[str] = []
    for r in layers:
        name = r["node"].removeprefix("fused ")
        for _ in range(3):
            name = _RUNTIME_SUFFIXES.sub("", name)
        node = name if name in types else producer.get(name) or producer.get(f"{name}:0")
        if node is None:  # the longest node name it extends (X/Sub/Op)
            node = max((n for n in types if name.startswith(n + "/")), key=len, default=None)
        if node is None and _POSITIONAL.match(name):  # a graph that names no node: "#N op" is its N-th
            node = name.split("/")[0]
        if node is None:
            lone.append(r["node"])
            continue
        # a kernel named after its output (ORT's NCHWc Conv+Relu is named X/Relu:0): the node of its op type
        if r.get("op") and types.get(node) != r["op"]:
            up = [producer.get(t) for t in inputs.get(node, [])]
            node = next((u for u in up if u and types.get(u) == r["op"]), node)
        mapped[node].append(r)
    return dict(mapped), lone


def graph_heat(result: dict[str, Any]) -> dict[str, Any]:
    """A heat overlay for the profiled model's graph: each node's time (the kernels mapped to it) against the
    slowest node's."""
    mapped, lone = resolve_nodes(result["model"], result["layers"])
    ms = {n: sum(r["ms"] for r in rs) for n, rs in mapped.items()}
    top = max(ms.values(), default=0.0) or 1.0
    total = result["total_layer_ms"] or 1.0
    nodes = {n: {"heat": v / top, "label": f"{v:.3f} ms ({v / total:.1%}) — "
                                           + ", ".join(f"{r['op']} on {r['kernel']}" for r in mapped[n])}
             for n, v in ms.items()}
    return {"model": result["model"], "title": f"time per layer ({result['runtime']})", "low": "0 ms",
            "high": f"{top:.3f} ms", "nodes": nodes, "not_on_graph": lone,
            "not_on_graph_ms": sum(r["ms"] for r in result["layers"] if r["node"] in set(lone))}
