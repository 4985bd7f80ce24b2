"""Mixed-precision rescue: keep the fewest layers in float so an INT8 model passes the accuracy guard.

The search is driven by the per-layer comparison (:mod:`edgestudio.bench.layers`): quantize, find the first
layer whose output parts from the float parent, keep that node in float (ONNX Runtime ``nodes_to_exclude``,
NNCF ``ignored_scope``, the TFLite quantization debugger's ``denylisted_nodes``: all three are the ``ignored_scope``
option), quantize again, and repeat until the guard passes
(top-1 drop <= ``max_drop`` on a labeled dataset, else the model output's cosine to the parent >= ``min_cosine``)
or ``max_steps`` layers are kept. Every step is measured (size, p50, the guard's figure), so the price of each
rescued layer is visible; the last step's model is the artifact.

What is compared layer by layer is the float model *in the quantizer's own format*: the ONNX parent for ONNX Runtime,
the float IR for NNCF (an ONNX parent is read into one first), the float TFLite conversion of the Keras/SavedModel
parent for LiteRT. The layer kept in float is named as that quantizer names it: the ONNX node, the OpenVINO op (the
Convolution behind a diverging Add/Relu), the TFLite op's output tensor.
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
OV_WEIGHTED = ("Convolution", "GroupConvolution", "ConvolutionBackpropData", "MatMul")
TFLITE_WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL", "CONV_3D")
SUFFIX = {"onnxruntime": ".onnx", "openvino": ".xml", "litert": ".tflite"}


def _weighted_producer(model_path: Path, node_name: str) -> str | None:
    """The node a quantizer actually quantizes behind ``node_name``: itself if it has weights, else the nearest
    Conv/MatMul/Gemm upstream (a diverging Relu or Reshape only carries its producer's error)."""
    import onnx

    graph = onnx.load(str(model_path), format="protobuf", load_external_data=False).graph
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


def _weighted_producer_ov(model_path: Path, op_name: str) -> str | None:
    """The OpenVINO op NNCF quantizes behind ``op_name`` (a diverging Add or Relu carries its Convolution's error)."""
    import openvino as ov

    model = ov.Core().read_model(str(model_path))
    by_name = {op.get_friendly_name(): op for op in model.get_ops()}
    seen: set[str] = set()
    queue = [by_name.get(op_name)]
    while queue:
        op = queue.pop(0)
        if op is None or op.get_friendly_name() in seen:
            continue
        seen.add(op.get_friendly_name())
        if op.get_type_name() in OV_WEIGHTED:
            return op.get_friendly_name()
        queue.extend(i.get_source_output().get_node() for i in op.inputs()
                     if i.get_source_output().get_node().get_type_name() not in ("Constant", "Parameter"))
    return None


def _weighted_producer_tflite(model_path: Path, tensor: str) -> str | None:
    """The TFLite op output (a tensor name: what the quantization debugger's denylist takes) of the weighted op
    behind ``tensor``, walking through (de)quantize, pooling and reshapes."""
    import warnings

    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interp = Interpreter(str(model_path))
    names = {d["index"]: d["name"] for d in interp.get_tensor_details()}
    ops = interp._get_ops_details()  # noqa: SLF001 - LiteRT's only way to walk the ops
    producer = {int(o): op for op in ops for o in op["outputs"]}
    start = next((i for i, n in names.items() if n == tensor), None)
    seen: set[int] = set()
    queue = [producer.get(start)] if start is not None else []
    while queue:
        op = queue.pop(0)
        if op is None or op["index"] in seen:
            continue
        seen.add(op["index"])
        if op["op_name"] in TFLITE_WEIGHTED:
            return names[int(op["outputs"][0])]
        queue.extend(producer.get(int(i)) for i in op["inputs"] if int(i) >= 0)
    return None


def _float_reference(parent: Path, runtime: str, work: Path) -> tuple[Path, Path]:
    """(the model the quantizer starts from, the float model compared layer by layer with each step's child)."""
    fmt = detect_format(parent)
    if runtime == "onnxruntime":
        if fmt is not ModelFormat.ONNX:
            raise EdgeStudioError(parent, "the ONNX Runtime rescue starts from the float ONNX model")
        return parent, parent
    if runtime == "openvino":
        if fmt is ModelFormat.OPENVINO:
            return parent, parent
        if fmt is not ModelFormat.ONNX:
            raise EdgeStudioError(parent, "the NNCF rescue starts from a float OpenVINO IR or ONNX model")
        import openvino as ov

        ir = work / "float.xml"
        ov.save_model(ov.convert_model(str(parent)), str(ir), compress_to_fp16=False)
        return ir, ir
    if runtime == "litert":
        if fmt not in (ModelFormat.KERAS, ModelFormat.KERAS_H5, ModelFormat.SAVED_MODEL):
            raise EdgeStudioError(parent, "the LiteRT rescue starts from the float Keras model or SavedModel")
        from edgestudio.backends.converters.tf_to_tflite import tflite_converter

        ref = work / "float.tflite"
        ref.write_bytes(tflite_converter(parent, fmt).convert())
        return parent, ref
    raise EdgeStudioError(parent, f"no rescue for {runtime}: onnxruntime, openvino or litert")


def rescue(parent: str | Path, output: str | Path, *, runtime: str = "onnxruntime", method: str = "int8-static",
           options: OptimizeOptions | dict[str, Any] | None = None, inputs: Any = None, max_drop: float = 0.01,
           min_cosine: float = 0.999, max_steps: int = 8, iterations: int = 100,
           progress: ProgressCallback = noop_progress, cancel: CancelToken | None = None) -> dict[str, Any]:
    from edgestudio.bench.accuracy import evaluate
    from edgestudio.bench.latency import BenchConfig, run_benchmark
    from edgestudio.bench.layers import compare_layers, output_agreement
    from edgestudio.optimization.engine import optimize_model

    parent, output = Path(parent), Path(output)
    cancel = cancel or CancelToken()
    opts = OptimizeOptions.from_dict(options) if isinstance(options, dict) else (options or OptimizeOptions())
    work = Path(tempfile.mkdtemp(prefix="edgestudio-rescue-"))
    try:
        source, reference_model = _float_reference(parent, runtime, work)
        suffix = SUFFIX[runtime]
        reference = evaluate(reference_model, opts.dataset).top1 if opts.dataset else None
        kept: list[str] = list(opts.ignored_scope)
        steps: list[dict[str, Any]] = []
        for step in range(max_steps + 1):
            cancel.check()
            progress(step / (max_steps + 1), f"step {step}: quantizing with {len(kept)} layer(s) kept in float")
            child = work / f"step{step}{suffix}"
            optimize_model(source, method, runtime=runtime, output=child,
                           # the guard is this search's: the optimizer's own would stop at the first failing step
                           options=OptimizeOptions.from_dict({**opts.to_dict(), "ignored_scope": list(kept),
                                                              "keep_lossy": True, "dataset": None}),
                           cancel=cancel)
            layers = compare_layers(reference_model, child, inputs=inputs or opts.calibration, samples=8)
            outputs = output_agreement(reference_model, child, inputs or opts.calibration, 8)
            bench = run_benchmark(child, BenchConfig(runtime=runtime, iterations=iterations, warmup=10))
            row: dict[str, Any] = {
                "step": step, "kept_in_float": list(kept), "size_bytes": model_size_bytes(child, detect_format(child)),
                "p50_ms": bench.latency_ms.p50, "output_cosine": outputs["output_cosine"],
                "first_diverging": layers["first_diverging"]}
            if reference is not None:
                row["top1"] = evaluate(child, opts.dataset, runtime=runtime).top1
                row["passed"] = reference - row["top1"] <= max_drop + 1e-12
            else:
                row["passed"] = outputs["output_cosine"] is not None and outputs["output_cosine"] >= min_cosine
            steps.append(row)
            # the layer to keep next: the first that diverges; when none crosses the threshold but the guard still
            # fails, the least faithful layer whose weighted op is not kept yet
            suspects = ([layers["first_diverging"]] if layers["first_diverging"] else []) + sorted(
                (x for x in layers["pairs"] if x["cosine"] is not None and x["cosine"] < 1 - 1e-7),
                key=lambda x: x["cosine"])
            culprit = None
            for pair in suspects:
                if runtime == "onnxruntime":
                    name = _weighted_producer(reference_model, pair["node"])
                elif runtime == "openvino":
                    name = _weighted_producer_ov(reference_model, pair["node"])
                else:
                    name = _weighted_producer_tflite(child, pair["child"])
                if name and name not in kept:
                    culprit = name
                    break
            row["culprit"] = culprit
            if row["passed"] or culprit is None:
                break
            kept.append(culprit)
        last = steps[-1]
        if last["passed"]:
            output.parent.mkdir(parents=True, exist_ok=True)
            src = work / f"step{last['step']}{suffix}"
            shutil.copy2(src, output)
            if src.suffix == ".xml":
                shutil.copy2(src.with_suffix(".bin"), output.with_suffix(".bin"))
        progress(1.0, "done")
        return {"parent": str(parent), "runtime": runtime, "method": method, "reference_top1": reference,
                "guard": {"max_drop": max_drop} if reference is not None else {"min_output_cosine": min_cosine},
                "steps": steps, "passed": last["passed"], "kept_in_float": last["kept_in_float"],
                "output": str(output) if last["passed"] else None,
                # for a workspace: the rescued model joins the lineage as a variant of the float parent
                "artifacts": [{"path": str(output), "options": {
                    "method": method, "runtime": runtime, "rescued": True, "kept_in_float": last["kept_in_float"],
                    "top1": last.get("top1"), "output_cosine": last["output_cosine"]}}] if last["passed"] else []}
    finally:
        shutil.rmtree(work, ignore_errors=True)
