"""ONNX Runtime FP16: weights and compute in half precision (ONNX Runtime's float16 converter), float32
inputs/outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgestudio.backends.optimizers.base import OPTIMIZERS, OptimizeOptions, Optimizer
from edgestudio.core.formats import ModelFormat
from edgestudio.core.progress import CancelToken, ProgressCallback


@OPTIMIZERS.register
class OrtFp16(Optimizer):
    method = "fp16"
    runtime = "onnxruntime"
    sources = (ModelFormat.ONNX,)
    requires = ("onnxruntime", "onnx")
    distributions = ("onnxruntime", "onnx")
    description = "half-precision weights and compute; halves the size (no speed-up on CPUs without FP16 units)"

    def optimize(self, src: Path, fmt: ModelFormat, dst: Path, opts: OptimizeOptions, *,
                 progress: ProgressCallback, cancel: CancelToken) -> dict[str, Any]:
        import onnx
        # ONNX Runtime's own converter (onnxconverter-common's left Casts to float32 behind float16-typed outputs
        # and mixed types in Mul: ORT refused 4 of 4 real models it made)
        from onnxruntime.transformers.float16 import convert_float_to_float16

        progress(0.2, "converting weights to FP16")
        model = convert_float_to_float16(onnx.load(str(src), format="protobuf"), keep_io_types=True)
        _sort_nodes(model.graph)  # it appends its input/output Casts at the end: ONNX wants producers first
        onnx.save(model, str(dst), format="protobuf")
        return {"warnings": ["FP16 brings no speed-up on x86 CPUs; it halves the size"]}


def _sort_nodes(graph: Any) -> None:
    """Order ``graph``'s nodes so every node comes after the producers of what it reads (Kahn's algorithm, stable;
    names a subgraph reads from the outer graph count as available)."""
    nodes = list(graph.node)
    produced_by = {o: i for i, n in enumerate(nodes) for o in n.output if o}

    def needs(n: Any) -> set[int]:
        names = set(n.input)
        for attr in n.attribute:  # a subgraph's reads of outer names
            for g in ([attr.g] if attr.g.node else []) + list(attr.graphs):
                inner = {o for m in g.node for o in m.output} | {i.name for i in g.initializer} | {
                    i.name for i in g.input}
                names |= {x for m in g.node for x in m.input if x not in inner}
        return {produced_by[x] for x in names if x in produced_by}

    deps = [needs(n) for n in nodes]
    done: set[int] = set()
    order: list[int] = []
    while len(order) < len(nodes):
        ready = [i for i in range(len(nodes)) if i not in done and deps[i] <= done]
        if not ready:  # a cycle: leave the graph as it is, the checker will name it
            return
        for i in ready:
            done.add(i)
            order.append(i)
    sorted_nodes = [nodes[i] for i in order]
    del graph.node[:]
    graph.node.extend(sorted_nodes)
