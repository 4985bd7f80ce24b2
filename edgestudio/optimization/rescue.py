"""Mixed-precision rescue: keep the fewest layers in float so an INT8 model passes the accuracy guard.

The search is driven by the per-layer comparison (:mod:`edgestudio.bench.layers`): quantize, find the first
layer whose output parts from the float parent, keep that node in float (ONNX Runtime ``nodes_to_exclude``,
NNCF ``ignored_scope``: both are the ``ignored_scope`` option), quantize again, and repeat until the guard passes
(top-1 drop <= ``max_drop`` on a labeled dataset, else the model output's cosine to the parent >= ``min_cosine``)
or ``max_steps`` layers are kept. Every step is measured (size, p50, the guard's figure), so the price of each
rescued layer is visible; the last step's model is the artifact.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from edgestudio.backends.optimizers.base import OptimizeOptions
from edgestudio.core.errors import EdgeStudioError
from edgestudio.core.formats import ModelFormat, detect_format
from edgestudio.core.modelinfo import model_size_bytes
from edgestudio.core.progress import CancelToken, ProgressCallback, noop_progress

WEIGHTED = ("Conv", "ConvTranspose", "MatMul", "Gemm")


def _weighted_producer(model_path: Path, node_name: str) -> str | None:
    """The node a quantizer actually quantizes behind ``node_name``: itself if it has weights, else the nearest
    Conv/MatMul/Gemm upstream (a diverging Relu or Reshape only carries its producer's error)."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    by_name = {n.name: n for n in graph.node}
    producer = {out: n for n in graph.node for out in n.output}
    seen: set[str] = set()
    queue = [by_name.get(node_name)]
    while queue:
        node = queue.pop(0)
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type in WEIGHTED:
            return node.name
        queue.extend(producer.get(i) for i in node.input)
    return None


def rescue(parent: str | Path, output: str | Path, *, runtime: str = "onnxruntime", method: str = "int8-static",
           options: OptimizeOptions | None = None, inputs: Any = None, max_drop: float = 0.01,
           min_cosine: float = 0.999, max_steps: int = 8, iterations: int = 100,
           progress: ProgressCallback = noop_progress, cancel: CancelToken | None = None) -> dict[str, Any]:
    from edgestudio.bench.accuracy import evaluate
    from edgestudio.bench.latency import BenchConfig, run_benchmark
    from edgestudio.bench.layers import compare_layers
    from edgestudio.optimization.engine import optimize_model

    parent, output = Path(parent), Path(output)
    cancel = cancel or CancelToken()
    opts = options or OptimizeOptions()
    if detect_format(parent) is not ModelFormat.ONNX and runtime == "onnxruntime":
        raise EdgeStudioError(parent, "the ONNX Runtime rescue starts from the float ONNX model")
    reference = evaluate(parent, opts.dataset).top1 if opts.dataset else None
    kept: list[str] = list(opts.ignored_scope)
    steps: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="edgestudio-rescue-"))
    try:
        for step in range(max_steps + 1):
            cancel.check()
            progress(step / (max_steps + 1), f"step {step}: quantizing with {len(kept)} layer(s) kept in float")
            child = work / f"step{step}{'.xml' if runtime == 'openvino' else '.onnx'}"
            optimize_model(parent, method, runtime=runtime, output=child,
                           # the guard is this search's: the optimizer's own would stop at the first failing step
                           options=OptimizeOptions.from_dict({**opts.to_dict(), "ignored_scope": list(kept),
                                                              "dataset": None}),
                           cancel=cancel)
            layers = compare_layers(parent, child, inputs=inputs or opts.calibration, samples=8)
            final = layers["pairs"][-1] if layers["pairs"] else None
            bench = run_benchmark(child, BenchConfig(runtime=runtime, iterations=iterations, warmup=10))
            row: dict[str, Any] = {
                "step": step, "kept_in_float": list(kept), "size_bytes": model_size_bytes(child, detect_format(child)),
                "p50_ms": bench.latency_ms.p50, "output_cosine": final["cosine"] if final else None,
                "first_diverging": layers["first_diverging"]}
            if reference is not None:
                row["top1"] = evaluate(child, opts.dataset, runtime=runtime).top1
                row["passed"] = reference - row["top1"] <= max_drop + 1e-12
            else:
                row["passed"] = final is not None and final["cosine"] is not None and final["cosine"] >= min_cosine
            steps.append(row)
            first = layers["first_diverging"]
            culprit = _weighted_producer(parent, first["node"]) if first else None
            row["culprit"] = culprit
            if row["passed"] or culprit is None or culprit in kept:
                break
            kept.append(culprit)
        last = steps[-1]
        if last["passed"]:
            output.parent.mkdir(parents=True, exist_ok=True)
            src = work / f"step{last['step']}{'.xml' if runtime == 'openvino' else '.onnx'}"
            shutil.copy2(src, output)
            if src.suffix == ".xml":
                shutil.copy2(src.with_suffix(".bin"), output.with_suffix(".bin"))
        progress(1.0, "done")
        return {"parent": str(parent), "runtime": runtime, "method": method, "reference_top1": reference,
                "guard": {"max_drop": max_drop} if reference is not None else {"min_output_cosine": min_cosine},
                "steps": steps, "passed": last["passed"], "kept_in_float": last["kept_in_float"],
                "output": str(output) if last["passed"] else None}
    finally:
        shutil.rmtree(work, ignore_errors=True)
