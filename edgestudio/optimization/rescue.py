"""Mixed-precision rescue: keep the fewest layers in float so an INT8 model passes the accuracy guard.

The search is driven by the per-layer comparison (:mod:`edgestudio.bench.layers`): quantize, take the weighted
layers ``debug`` blames (the largest own error first, then the first diverging one), keep the first untried one in
float (ONNX Runtime ``nodes_to_exclude``, NNCF ``ignored_scope``, the TFLite quantization debugger's
``denylisted_nodes``: all three are the ``ignored_scope`` option) on top of the best attempt so far, quantize again;
an attempt that does not improve on the best is dropped and the next blamed layer tried. It stops when the guard
passes (top-1 drop <= ``max_drop`` on a labeled dataset, else the model output's cosine to the parent >=
``min_cosine``), after ``max_steps`` attempts, when the next attempt would end past ``budget_s`` seconds, when no
blamed layer is left to try, or when the quantizer fails; the reason is always in the result (``stopped``). Every
attempt is measured (size, p50, the guard's figure), so the price of each rescued layer is visible; the best attempt
is the artifact, written whenever it improved on plain INT8, even if it does not pass the guard (then it says so).

What is compared layer by layer is the float model *in the quantizer's own format*: the ONNX parent for ONNX Runtime,
the float IR for NNCF (an ONNX parent is read into one first), the float TFLite conversion of the Keras/SavedModel
parent for LiteRT. The layer kept in float is named as that quantizer names it: the ONNX node, the OpenVINO op (the
Convolution behind a diverging Add/Relu), the TFLite op's output tensor.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from edgestudio.backends.optimizers.base import OptimizeOptions
from edgestudio.core.errors import Cancelled, EdgeStudioError, clean_message
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


def _candidates(layers: dict[str, Any], runtime: str, reference: Path, child: Path) -> list[str]:
    """The layers to keep in float next, as the quantizer names them: ``debug``'s blame (the largest own error
    first), then the first diverging layer's weighted op, then the weighted ops behind the least faithful pairs."""
    from edgestudio.bench.layers import blamed_layers

    out: list[str] = []
    blamed = list(layers.get("blame") or blamed_layers(layers["pairs"]))
    first = layers.get("first_diverging")
    rest = sorted((x for x in layers["pairs"] if x["cosine"] is not None and x["cosine"] < 1 - 1e-7),
                  key=lambda x: x["cosine"])
    by_node = {p["node"]: p for p in layers["pairs"]}
    for item in [*blamed, *([first] if first else []), *rest]:
        node = item.get("node") if "via" in item else item.get("blame_node")
        tensor = item.get("tensor") if "via" in item else item.get("blame_tensor")
        if runtime == "onnxruntime":
            name = node or _weighted_producer(reference, item["node"])
        elif runtime == "openvino":
            name = node or _weighted_producer_ov(reference, item["node"])
        else:
            name = tensor or _weighted_producer_tflite(child, item.get("child", ""))
        # then the weighted op feeding it: the tensor between them is quantized while either is
        up = item.get("upstream") if "via" in item else item.get("blame_upstream")
        if up and runtime == "litert":
            up = (by_node.get(up) or {}).get("blame_tensor") or next(
                (p["blame_tensor"] for p in layers["pairs"] if p.get("blame_node") == up), None)
        for n in (name, up):
            if n and n not in out:
                out.append(n)
    return out


def _figure(row: dict[str, Any]) -> tuple[float, float]:
    """What makes one attempt better than another: top-1 on the labeled dataset, else top-1 agreement with the
    float model, then the output's (worst sample's) cosine."""
    cos = row.get("output_cosine")
    top = row["top1"] if row.get("top1") is not None else row.get("top1_agreement")
    return (top if top is not None else 0.0, cos if cos is not None else -1.0)


def rescue(parent: str | Path, output: str | Path, *, runtime: str = "onnxruntime", method: str = "int8-static",
           options: OptimizeOptions | dict[str, Any] | None = None, inputs: Any = None, max_drop: float = 0.01,
           min_cosine: float = 0.999, max_steps: int = 8, budget_s: float = 600.0, iterations: int = 100,
           progress: ProgressCallback = noop_progress, cancel: CancelToken | None = None) -> dict[str, Any]:
    """Search for the fewest layers kept in float that pass the guard (see the module). The result always says why
    the search stopped (``stopped``) and which attempt is the best (``best_step``); ``output`` is set when the best
    attempt was written (it passed, or it improved on plain INT8)."""
    from edgestudio.bench.accuracy import evaluate
    from edgestudio.bench.latency import BenchConfig, run_benchmark
    from edgestudio.bench.layers import compare_layers, output_agreement
    from edgestudio.optimization.engine import optimize_model

    from edgestudio.core.inputspec import InputSpec

    parent, output = Path(parent), Path(output)
    cancel = cancel or CancelToken()
    opts = OptimizeOptions.from_dict(options) if isinstance(options, dict) else (options or OptimizeOptions())
    # one input spec for the comparison, the output check and the benchmark (a dynamic-shape model needs it)
    spec = inputs if isinstance(inputs, InputSpec) else InputSpec.from_dict(inputs) if isinstance(inputs, dict) \
        else InputSpec()
    if not spec.data and (isinstance(inputs, (str, Path)) or opts.calibration):
        spec = spec.merged(InputSpec(data=str(inputs if isinstance(inputs, (str, Path)) else opts.calibration)))
    work = Path(tempfile.mkdtemp(prefix="edgestudio-rescue-"))
    t0 = time.monotonic()
    try:
        source, reference_model = _float_reference(parent, runtime, work)
        suffix = SUFFIX[runtime]
        reference = evaluate(reference_model, opts.dataset).top1 if opts.dataset else None
        base: list[str] = list(opts.ignored_scope)  # the best attempt's layers kept in float
        tried: set[str] = set(base)
        steps: list[dict[str, Any]] = []
        best: dict[str, Any] | None = None
        candidates: list[str] = []
        stopped = ""
        kept = list(base)
        for step in range(max_steps + 1):
            cancel.check()
            if step:
                spent = time.monotonic() - t0
                per_step = spent / step
                if spent + per_step > budget_s:
                    stopped = (f"time budget spent: {spent:.0f} s of {budget_s:g} s, and an attempt takes about "
                               f"{per_step:.0f} s")
                    break
                nxt = next((c for c in candidates if c not in tried), None)
                if nxt is None:
                    stopped = "nothing left to try: every layer the comparison blames was tried"
                    break
                tried.add(nxt)
                kept = [*base, nxt]
            progress(step / (max_steps + 1), f"attempt {step}: quantizing with {len(kept)} layer(s) kept in float")
            child = work / f"step{step}{suffix}"
            started = time.monotonic()
            try:
                optimize_model(source, method, runtime=runtime, output=child,
                               # the guard is this search's: the optimizer's own would stop at the first failing step
                               options=OptimizeOptions.from_dict({**opts.to_dict(), "ignored_scope": list(kept),
                                                                  "keep_lossy": True, "dataset": None}),
                               cancel=cancel)
            except Cancelled:
                raise
            except Exception as exc:  # the quantizer's own words, and the search keeps what it has
                why = clean_message(exc, 300)
                steps.append({"step": step, "kept_in_float": list(kept), "error": why, "passed": False})
                stopped = f"the quantizer failed with {', '.join(kept) or 'nothing'} kept in float: {why}"
                break
            try:
                layers = compare_layers(reference_model, child, inputs=spec, samples=8)
                outputs = output_agreement(reference_model, child, spec, 8)
                bench = run_benchmark(child, BenchConfig(runtime=runtime, iterations=iterations, warmup=10,
                                                         inputs=spec))
            except Cancelled:
                raise
            except Exception as exc:
                why = clean_message(exc, 300)
                steps.append({"step": step, "kept_in_float": list(kept), "error": why, "passed": False})
                stopped = f"measuring attempt {step} failed: {why}"
                break
            row: dict[str, Any] = {
                "step": step, "kept_in_float": list(kept), "size_bytes": model_size_bytes(child, detect_format(child)),
                "p50_ms": bench.latency_ms.p50, "output_cosine": outputs["output_cosine"],
                "top1_agreement": outputs["top1_agreement"],
                "first_diverging": layers["first_diverging"], "biggest_contributor": layers["biggest_contributor"]}
            if reference is not None:
                row["top1"] = evaluate(child, opts.dataset, runtime=runtime).top1
                row["passed"] = reference - row["top1"] <= max_drop + 1e-12
            else:
                row["passed"] = outputs["output_cosine"] is not None and outputs["output_cosine"] >= min_cosine
            row["seconds"] = round(time.monotonic() - started, 2)
            steps.append(row)
            if best is None or row["passed"] or _figure(row) >= _figure(best):
                # kept (a tie too: two layers may only help together, as the two sides of one quantized tensor);
                # the next layers to try are what this attempt's comparison blames (keeping one moves the others)
                row["improved"] = best is not None and _figure(row) > _figure(best)
                if best is None or row["passed"] or row["improved"]:
                    best = row
                base = list(kept)
                candidates = _candidates(layers, runtime, reference_model, child) + candidates
            else:
                row["improved"] = False  # worse: dropped, the next attempt starts again from the one before
            if row["passed"]:
                stopped = (f"guard met at attempt {step} with {len(kept)} layer(s) kept in float" if step else
                           "plain INT8 already meets the guard: nothing to rescue, nothing added")
                break
        else:
            stopped = f"attempt budget spent: {max_steps} attempt(s) after plain INT8 (--max-steps)"
        passed = bool(best and best["passed"])
        # plain INT8 (attempt 0) is the variant the user has already: a copy of it is never a rescue
        written = best is not None and best["step"] > 0
        if written:
            assert best is not None
            output.parent.mkdir(parents=True, exist_ok=True)
            src = work / f"step{best['step']}{suffix}"
            shutil.copy2(src, output)
            if src.suffix == ".xml":
                shutil.copy2(src.with_suffix(".bin"), output.with_suffix(".bin"))
        progress(1.0, stopped)
        kept_best = best["kept_in_float"] if best else list(opts.ignored_scope)
        return {"parent": str(parent), "runtime": runtime, "method": method, "reference_top1": reference,
                "guard": {"max_drop": max_drop} if reference is not None else {"min_output_cosine": min_cosine},
                "steps": steps, "passed": passed, "kept_in_float": kept_best,
                "best_step": best["step"] if best else None, "stopped": stopped,
                "seconds": round(time.monotonic() - t0, 1), "budget_s": budget_s,
                "output": str(output) if written else None,
                # for a workspace: the rescued model joins the lineage as a variant of the float parent
                "artifacts": [{"path": str(output), "options": {
                    "method": method, "runtime": runtime, "rescued": True, "kept_in_float": kept_best,
                    "guard_passed": passed, "top1": best.get("top1"), "output_cosine": best["output_cosine"]}}]
                if written and best else []}
    finally:
        shutil.rmtree(work, ignore_errors=True)
