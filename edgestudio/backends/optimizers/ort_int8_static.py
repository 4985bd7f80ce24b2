"""ONNX Runtime static INT8 (QDQ) with calibration: MinMax / Entropy / Percentile, per-channel weights.

Defaults avoid the known x86 trap: activations uint8 with int8 weights (U8S8). The S8S8 default of
``quantize_static`` gained nothing on x86 here, and OpenVINO cannot compile such a model at its default
precision.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgestudio.backends.optimizers.base import (
    OPTIMIZERS,
    OptimizationError,
    OptimizeOptions,
    Optimizer,
    calibration_feeds,
)
from edgestudio.core.formats import ModelFormat
from edgestudio.core.progress import CancelToken, ProgressCallback


@OPTIMIZERS.register
class OrtInt8Static(Optimizer):
    method = "int8-static"
    runtime = "onnxruntime"
    sources = (ModelFormat.ONNX,)
    requires = ("onnxruntime",)
    distributions = ("onnxruntime",)
    needs_calibration = True
    keeps_in_float = True
    description = "static INT8 (QDQ) calibrated on your samples; U8S8 by default"

    def optimize(self, src: Path, fmt: ModelFormat, dst: Path, opts: OptimizeOptions, *,
                 progress: ProgressCallback, cancel: CancelToken) -> dict[str, Any]:
        import tempfile

        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process

        from edgestudio.core.inspection import inspect_model

        specs = inspect_model(src, fmt).inputs
        samples, warnings = calibration_feeds(opts, specs, model=src)

        class Reader(CalibrationDataReader):  # type: ignore[misc]
            def __init__(self) -> None:
                self._it = iter(samples)

            def get_next(self) -> dict[str, Any] | None:
                cancel.check()
                return next(self._it, None)

        method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[opts.calibration_method]
        wanted = excluded_nodes(src, opts.ignored_scope)  # refused here when one matches nothing

        per_channel = [opts.per_channel]

        def quantize(model: Path) -> None:
            names = nodes_in(model, wanted)  # pre-processing renames what it fuses (MatMul+Add -> .../MatMulAddFusion)
            model = shared_biases_renamed(model, Path(tmp) / f"unshared-{model.stem}.onnx")

            def run() -> None:
                quantize_static(
                    str(model), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel[0],
                    activation_type=QuantType.QUInt8 if opts.activation_type == "uint8" else QuantType.QInt8,
                    weight_type=QuantType.QUInt8 if opts.weight_type == "uint8" else QuantType.QInt8,
                    calibrate_method=method, nodes_to_exclude=names or None,
                    op_types_to_quantize=None, extra_options={"ActivationSymmetric": opts.activation_type == "int8"})

            try:
                run()
            except ValueError as exc:
                # ONNX Runtime's per-channel bias-scale adjustment fails on some weights (magika: "The truth value
                # of an array with more than one element is ambiguous", onnxruntime#24815): per-tensor, and say so
                if not per_channel[0] or "truth value of an array" not in str(exc):
                    raise
                per_channel[0] = False
                warnings.append("ONNX Runtime's per-channel quantization failed on this model (its bias-scale "
                                "adjustment, onnxruntime#24815): quantized per tensor instead")
                run()

        preprocessed = False
        with tempfile.TemporaryDirectory(prefix="edgestudio-ort-q-") as tmp:
            prepared = Path(tmp) / "prepared.onnx"
            progress(0.1, "pre-processing (shape inference, folding)")
            try:
                quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
                preprocessed = True
            except Exception:  # pre-processing is an improvement, not a requirement
                prepared = src
            progress(0.3, f"calibrating on {len(samples)} samples ({opts.calibration_method})")
            quantize(prepared)
            if preprocessed and _load_error(dst):
                # quant_pre_process can fuse nodes into a graph ORT then refuses (INVALID_GRAPH on real models):
                # quantize the original instead, and say so
                cancel.check()
                progress(0.6, "the pre-processed result does not load: quantizing without pre-processing")
                warnings.append(f"pre-processing gave a model ONNX Runtime cannot load ({_load_error(dst)}); "
                                "quantized without pre-processing")
                preprocessed = False
                quantize(src)
        error = _load_error(dst)
        if error:
            raise OptimizationError(src, f"the INT8 model does not load in ONNX Runtime: {error}")
        still = still_quantized(dst, wanted)
        if still:  # never silently: --ignore asked for float there
            raise OptimizationError(None, f"--ignore: ONNX Runtime still quantized {', '.join(still[:3])}"
                                          f"{' and more' if len(still) > 3 else ''}")
        if opts.activation_type == "int8":
            warnings.append("S8S8 (int8 activations) brings no speed-up on x86 with ONNX Runtime; uint8 does")
        quantized = count_quantized_nodes(dst)
        if quantized == 0:
            warnings.append("nothing was quantized: the result has no QuantizeLinear/DequantizeLinear nodes (ONNX "
                            "Runtime does not quantize ops inside If/Loop branches); it is the FP32 model again")
        return {"warnings": warnings, "calibration_samples": len(samples), "preprocessed": preprocessed,
                "quantized_nodes": quantized, "per_channel": per_channel[0]}


def shared_biases_renamed(model: Path, out: Path) -> Path:
    """``model``, or a copy at ``out`` whose shared initializers have fresh names. ONNX Runtime's QDQ quantizer gives
    each user of a shared bias a copy named ``<name>1``, ``<name>2``... checking only the other initializers' names:
    where one of those is an activation's name (basic-pitch: 18 Convs share a bias, and ``<bias>2`` is a Conv's
    output) the activation's Q/DQ is wired to the bias and the model it writes does not load (ORT 1.32)."""
    import onnx

    m = onnx.load(str(model), load_external_data=False)
    g = m.graph
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in g.node for a in n.attribute) \
            or any(t.data_location == onnx.TensorProto.EXTERNAL for t in g.initializer):
        return model  # names used inside If/Loop bodies, or weights in external files: left as they are
    values = {o for n in g.node for o in n.output} | {i.name for i in g.input} | {t.name for t in g.initializer}
    uses: dict[str, int] = {}
    for n in g.node:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1
    renamed = {}
    for t in g.initializer:
        k = uses.get(t.name, 0)
        clash = lambda name: any(f"{name}{j}" in values for j in range(1, k + 2))  # noqa: E731
        if k < 2 or not clash(t.name):
            continue
        new = f"{t.name}_shared"
        while new in values or clash(new):
            new += "_"
        renamed[t.name] = new
        values.add(new)
    if not renamed:
        return model
    for t in g.initializer:
        t.name = renamed.get(t.name, t.name)
    for n in g.node:
        for idx, i in enumerate(n.input):
            if i in renamed:
                n.input[idx] = renamed[i]
    onnx.save(m, str(out))
    return out


def excluded_nodes(model: Path, ignored: list[str]) -> list[str]:
    """ONNX Runtime's ``nodes_to_exclude`` for ``--ignore``: node names as given, ``type:OpType`` as every node of
    that type (ORT has no type filter: it was silently dropped before); one that matches nothing is refused."""
    if not ignored:
        return []
    nodes = _nodes(model)
    out: list[str] = []
    for item in ignored:
        if item.startswith("type:"):
            found = [name for name, op in nodes if op == item[5:] and name]
        else:
            found = [name for name, _ in nodes if name == item]
        if not found:
            raise OptimizationError(None, f"--ignore {item}: no node of the model matches it (node names, or "
                                           "type:OpType such as type:Gemm)")
        out += [f for f in found if f not in out]
    return out


def _nodes(model: Path) -> list[tuple[str, str]]:
    """(name, op type) of every node of an ONNX model and its subgraphs (weights not loaded)."""
    import onnx

    from edgestudio.core.inspection import onnx_graphs

    graph = onnx.load(str(model), format="protobuf", load_external_data=False).graph
    return [(n.name, n.op_type) for g in onnx_graphs(graph) for n in g.node]


def _names_like(nodes: list[tuple[str, str]], name: str) -> list[str]:
    """``name`` itself, or what a fusion made of it (``name/MatMulAddFusion``)."""
    return [n for n, _ in nodes if n == name or n.startswith(name + "/")]


def nodes_in(model: Path, wanted: list[str]) -> list[str]:
    """The nodes of ``model`` (perhaps pre-processed) that stand for the ``wanted`` nodes of the original."""
    return _stand_for(_nodes(model), wanted) if wanted else []


def _stand_for(nodes: list[tuple[str, str]], wanted: list[str]) -> list[str]:
    out: list[str] = []
    for w in wanted:
        out += [n for n in _names_like(nodes, w) if n not in out]
    return out


def still_quantized(model: Path, wanted: list[str]) -> list[str]:
    """The ``wanted`` nodes (or what they were fused into) whose weights are still quantized (an input that is a
    DequantizeLinear of an initializer). Their activations may arrive through a Q/DQ pair of the node before:
    a node kept in float computes in float on them."""
    import onnx

    if not wanted:
        return []
    graph = onnx.load(str(model), format="protobuf", load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    weight_dq = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits}
    kept = set(_stand_for([(n.name, n.op_type) for n in graph.node], wanted))  # the graph read once
    return [n.name for n in graph.node if n.name in kept and any(i in weight_dq for i in n.input[1:])]


def count_quantized_nodes(path: Path) -> int:
    """QuantizeLinear/DequantizeLinear/integer nodes in an ONNX model and its subgraphs."""
    import onnx

    from edgestudio.core.inspection import onnx_graphs

    model = onnx.load(str(path), format="protobuf", load_external_data=False)
    kinds = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "MatMulInteger", "ConvInteger",
             "DynamicQuantizeLinear"}
    return sum(1 for g in onnx_graphs(model.graph) for n in g.node if n.op_type in kinds)


def _load_error(path: Path) -> str | None:
    """Why ONNX Runtime cannot load ``path`` (None: it loads)."""
    import onnxruntime as ort

    from edgestudio.core.errors import clean_message

    try:
        so = ort.SessionOptions()
        so.log_severity_level = 4
        ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    except Exception as exc:
        return clean_message(exc, 200)  # without ORT's "Load model from <staging file> failed:"
    return None
