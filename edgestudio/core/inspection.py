"""Inspect any supported model into one :class:`ModelInfo` (Qt-free; runtimes imported lazily)."""

from __future__ import annotations

import io

import json
import math
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from edgestudio.core.errors import EdgeStudioError, ModelFormatError, display
from edgestudio.core.formats import ModelFormat, detect_format
from edgestudio.core.modelinfo import Dim, ModelInfo, TensorSpec, model_size_bytes


def inspect_model(path: str | Path, fmt: ModelFormat | None = None, *,
                  shapes: dict[str, list[int]] | None = None) -> ModelInfo:
    """Detect the format (from content) and describe the model. Raises :class:`EdgeStudioError`.

    MACs are counted at the input shapes: static ones, or those ``shapes`` fixes (``--shape``); a model with
    other dynamic dims gets no MACs figure and a note saying what to give.
    """
    p = Path(path)
    fmt = fmt or detect_format(p)
    fn = _INSPECTORS[fmt]
    try:
        info = fn(p, shapes) if fmt in _SHAPED else fn(p)
    except EdgeStudioError:
        raise
    except MemoryError:
        raise ModelFormatError(p, "out of memory while reading the model") from None
    except Exception as exc:  # a library's own parse error: one line, naming the file
        msg = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise ModelFormatError(p, f"cannot read {fmt.label} model: {msg}") from None
    info.size_bytes = model_size_bytes(p, fmt)
    _macs_context(info, shapes, p)
    return info


def _macs_context(info: ModelInfo, shapes: dict[str, list[int]] | None, path: Path) -> None:
    """Say at which shapes MACs were counted, or why they were not: never a figure for made-up dims."""
    from edgestudio.core.inputspec import format_dims, resolve_shapes

    try:
        resolved = resolve_shapes(info.inputs, _spec(shapes), model=path)
    except EdgeStudioError as exc:
        if shapes:
            raise
        if info.format in _SHAPED or info.macs is None:
            info.macs = None
            dyn = [t.name for t in info.inputs if any(not (isinstance(d, int) and d >= 0) for d in t.shape[1:])]
            info.macs_note = (f"needs --shape for {', '.join(dyn)} (dynamic dims)" if dyn else exc.cause)
        return
    if info.macs is not None and (shapes or not all(t.is_static for t in info.inputs)):
        info.macs_at = ", ".join(f"{k} {format_dims(v)}" for k, v in resolved.items())


def _spec(shapes: dict[str, list[int]] | None) -> Any:
    from edgestudio.core.inputspec import InputSpec

    return InputSpec(shapes=dict(shapes or {}))


def count_ops(path: str | Path, fmt: ModelFormat | None = None) -> int:
    """How many compute ops a model has, cheaply (no weights read, no shapes computed).

    Used to reject "successful" conversions that wrote an empty graph, without paying for a full inspection.
    """
    p = Path(path)
    fmt = fmt or detect_format(p)
    if fmt is ModelFormat.ONNX:
        from edgestudio.core.formats import count_onnx_nodes

        return count_onnx_nodes(p)
    if fmt is ModelFormat.OPENVINO:
        import xml.etree.ElementTree as ET

        try:
            layers = ET.parse(p).getroot().iter("layer")
        except ET.ParseError as exc:
            raise ModelFormatError(p, f"corrupt OpenVINO IR XML ({exc})") from None
        return sum(1 for layer in layers if layer.get("type") not in ("Parameter", "Result", "Const"))
    if fmt is ModelFormat.TFLITE:
        try:
            from ai_edge_litert import schema_py_generated as schema

            model = schema.Model.GetRootAs(p.read_bytes(), 0)
            return sum(model.Subgraphs(i).OperatorsLength() for i in range(model.SubgraphsLength()))
        except ImportError:  # pragma: no cover
            pass
        except Exception as exc:
            raise ModelFormatError(p, f"corrupt TFLite model ({' '.join(str(exc).split())[:200]})") from None
    info = inspect_model(p, fmt)
    return sum(info.ops.values()) if info.ops else len(info.outputs)


def _prod(dims: Iterable[Any]) -> int:
    return math.prod(int(d) for d in dims)


def _static(dims: list[Dim]) -> list[int] | None:
    """Dims for a MACs estimate: dynamic batch-like dims count as 1; other unknowns give up."""
    out: list[int] = []
    for i, d in enumerate(dims):
        if isinstance(d, int) and d >= 0:
            out.append(d)
        elif i == 0:
            out.append(1)
        else:
            return None
    return out


# ----------------------------------------------------------------------------------------------- ONNX
def _onnx_dims(type_proto: Any) -> list[Dim]:
    tt = type_proto.tensor_type
    if not tt.HasField("shape"):
        return []
    from edgestudio.core.inputspec import short_dim

    dims: list[Dim] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value) if d.dim_value >= 0 else "?")
        else:
            dims.append(short_dim(d.dim_param or "?"))
    return dims


def _onnx_dtype(elem_type: int) -> str:
    from onnx import helper

    try:
        return str(helper.tensor_dtype_to_np_dtype(elem_type).name)
    except Exception:
        return "unknown"


def _check_onnx(p: Path, model: Any) -> None:
    """ONNX's own checker (empty op types, dangling inputs, cycles: nodes must be topologically sorted)."""
    import onnx

    for n in model.graph.node:
        if not n.op_type:
            raise ModelFormatError(p, f"invalid ONNX graph: node {n.name or '#?'} has an empty op type")
    try:
        external = any(i.data_location == onnx.TensorProto.EXTERNAL for i in model.graph.initializer)
        # with external data, the checker must know the model's folder (it checks the data files there)
        onnx.checker.check_model(str(p) if external else model)
    except onnx.checker.ValidationError as exc:
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "invalid")
        raise ModelFormatError(p, f"invalid ONNX graph: {first[:240]}") from None
    _check_onnx_sizes(p, model)


_ONNX_ITEMSIZE = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 14: 8, 15: 16, 16: 2}


def _check_onnx_sizes(p: Path, model: Any) -> None:
    """Tensors a graph declares it will make from nothing (ConstantOfShape, Expand of a constant shape) must fit
    the memory budget: a 300-byte model must not ask for 3 GB."""
    from onnx import numpy_helper

    from edgestudio.core.safety import check_budget

    for graph in onnx_graphs(model.graph):
        consts = {i.name: i for i in graph.initializer}
        for n in graph.node:
            if n.op_type == "Constant":
                for a in n.attribute:
                    if a.name == "value" and a.t.dims:
                        consts[n.output[0]] = a.t
        for n in graph.node:
            if n.op_type not in ("ConstantOfShape", "Expand") or len(n.input) < (1 if n.op_type == "ConstantOfShape" else 2):
                continue
            shape_t = consts.get(n.input[0] if n.op_type == "ConstantOfShape" else n.input[1])
            if shape_t is None:
                continue
            try:
                dims = [int(d) for d in numpy_helper.to_array(shape_t).reshape(-1)]
            except Exception:  # noqa: BLE001 - an unreadable constant: the runtime's checker says why
                continue
            itemsize = 4
            for a in n.attribute:
                if a.name == "value":
                    itemsize = _ONNX_ITEMSIZE.get(a.t.data_type, 4)
            total = itemsize
            for d in dims:
                total *= max(d, 1)
            check_budget(p, total, f"node {n.name or n.op_type} ({n.op_type} {dims})")


_CHECKED: dict[tuple[str, int, int], None] = {}


def check_onnx_file(path: str | Path) -> None:
    """ONNX's checker (cycles, dangling inputs, empty op types) and the size budget, before a converter or a
    runtime gets the model (once per file version in a process)."""
    import os

    try:
        import onnx
    except ImportError:  # a device's minimal environment (onnxruntime alone): the runtime's own checks stand
        return
    p = Path(path)
    st = os.stat(p)
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key in _CHECKED:
        return
    try:
        model = onnx.load(str(p), format="protobuf", load_external_data=False)
    except Exception as exc:
        raise ModelFormatError(p, f"corrupt ONNX file ({' '.join(str(exc).split())[:200]})") from None
    _check_onnx_order(p, model.graph, set())
    _check_onnx_sizes(p, model)
    _CHECKED[key] = None


def _check_onnx_order(p: Path, graph: Any, outer: set[str]) -> None:
    """Every node's inputs are made before it (graph inputs, initializers, earlier nodes, an enclosing graph's
    names): a cycle, or a node reading what nothing makes, is refused before any converter walks the graph
    (ONNX's full checker also refuses real models over details runtimes accept, so it is not used here)."""
    known = set(outer) | {v.name for v in graph.input} | {i.name for i in graph.initializer} | {""}
    known |= {i.values.name for i in getattr(graph, "sparse_initializer", [])}
    for n in graph.node:
        if not n.op_type:
            raise ModelFormatError(p, f"invalid ONNX graph: node {n.name or '#?'} has an empty op type")
        for name in n.input:
            if name not in known:
                raise ModelFormatError(p, f"invalid ONNX graph: node {n.name or n.op_type} reads {name!r}, which no "
                                          "earlier node, input or initializer makes (a cycle, or a dangling input)")
        for a in n.attribute:
            for g in ([a.g] if a.type == a.GRAPH else list(a.graphs) if a.type == a.GRAPHS else []):
                _check_onnx_order(p, g, known)
        known.update(n.output)


def onnx_graphs(graph: Any) -> Iterable[Any]:
    """The graph and every subgraph (If/Loop/Scan bodies), depth first."""
    yield graph
    for n in graph.node:
        for a in n.attribute:
            if a.type == a.GRAPH:
                yield from onnx_graphs(a.g)
            elif a.type == a.GRAPHS:
                for g in a.graphs:
                    yield from onnx_graphs(g)


_WEIGHT_TYPES = {1, 2, 3, 10, 11, 16}  # float, uint8, int8, float16, double, bfloat16 (not shapes/indices)


def _onnx_parameters(graph: Any) -> int:
    """Weights: initializers and Constant-node tensors of weight types, in the graph and its subgraphs."""
    total = 0
    for g in onnx_graphs(graph):
        total += sum(_prod(i.dims) for i in g.initializer if i.data_type in _WEIGHT_TYPES)
        for n in g.node:
            if n.op_type != "Constant" or n.domain not in ("", "ai.onnx"):
                continue
            for a in n.attribute:
                if a.name == "value" and a.t.data_type in _WEIGHT_TYPES:
                    total += _prod(a.t.dims)
                elif a.name == "value_floats":
                    total += len(a.floats)
    return total


def _inspect_onnx_with_ort(p: Path) -> ModelInfo:
    """Where the ``onnx`` package is not installed (a device agent with ONNX Runtime only): inputs and outputs
    from ONNX Runtime's session; ops, parameters and MACs are not counted (the note says why)."""
    import onnxruntime as ort

    from edgestudio.core.modelinfo import TensorSpec

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])

    def spec(a: Any) -> TensorSpec:
        dtype = str(a.type).removeprefix("tensor(").removesuffix(")")
        dtype = {"float": "float32", "double": "float64", "string": "object"}.get(dtype, dtype)
        return TensorSpec(a.name, [d if isinstance(d, int) else (d or "?") for d in a.shape], dtype)

    meta = sess.get_modelmeta()
    info = ModelInfo(ModelFormat.ONNX, str(p), 0, [spec(a) for a in sess.get_inputs()],
                     [spec(a) for a in sess.get_outputs()], producer=meta.producer_name or None)
    info.macs_note = "ops, parameters and MACs not counted: the onnx package is not installed here"
    return info


def _inspect_onnx(p: Path, shapes: dict[str, list[int]] | None = None) -> ModelInfo:
    try:
        import onnx
    except ImportError:
        return _inspect_onnx_with_ort(p)
    from onnx import numpy_helper

    try:
        model = onnx.load(str(p), format="protobuf", load_external_data=False)
    except Exception as exc:
        raise ModelFormatError(p, f"corrupt ONNX file ({' '.join(str(exc).split())[:200]})") from None
    graph = model.graph
    if not graph.node:
        raise ModelFormatError(p, "ONNX graph has no nodes")
    _check_onnx(p, model)
    inits = {i.name: i for i in graph.initializer}
    inputs = [TensorSpec(v.name, _onnx_dims(v.type), _onnx_dtype(v.type.tensor_type.elem_type))
              for v in graph.input if v.name not in inits]
    outputs = [TensorSpec(v.name, _onnx_dims(v.type), _onnx_dtype(v.type.tensor_type.elem_type))
               for v in graph.output]
    ops: Counter[str] = Counter()
    for n in graph.node:
        ops[n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"] += 1
    params = _onnx_parameters(graph)
    for n in graph.node:  # "light" zoo models make their weights with ConstantOfShape(initializer)
        if n.op_type == "ConstantOfShape" and n.input and n.input[0] in inits:
            shape_init = inits[n.input[0]]
            params += _prod(numpy_helper.to_array(shape_init).tolist()) - _prod(shape_init.dims)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    # tf2onnx writes "<version> <git hash>", and the hash is "None" in its pip wheels
    version = model.producer_version.removesuffix(" None")
    producer = " ".join(x for x in (model.producer_name, version) if x) or None
    return ModelInfo(ModelFormat.ONNX, str(p), 0, inputs, outputs, dict(ops), params,
                     _onnx_macs(model, inputs, shapes), opset, producer)


def _onnx_macs(model: Any, inputs: list[TensorSpec], shapes: dict[str, list[int]] | None) -> int | None:
    import onnx

    from edgestudio.core.inputspec import resolve_shapes

    try:
        fixed = resolve_shapes(inputs, _spec(shapes))
    except EdgeStudioError:
        return None  # dynamic dims nobody fixed: no figure (see _macs_context)
    if fixed and any(not t.is_static for t in inputs):
        model = onnx.ModelProto.FromString(model.SerializeToString())
        for v in model.graph.input:
            if v.name in fixed and v.type.tensor_type.HasField("shape"):
                for d, size in zip(v.type.tensor_type.shape.dim, fixed[v.name]):
                    d.Clear()
                    d.dim_value = size
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:
        return None
    g = inferred.graph
    shapes: dict[str, list[Dim]] = {}
    for v in list(g.value_info) + list(g.input) + list(g.output):
        shapes[v.name] = _onnx_dims(v.type)
    for i in g.initializer:
        shapes[i.name] = [int(d) for d in i.dims]

    def get(name: str) -> list[int] | None:
        dims = shapes.get(name)
        return _static(dims) if dims else None

    total = 0
    for n in g.node:
        out = get(n.output[0]) if n.output else None
        if out is None:
            continue
        if n.op_type in ("Conv", "ConvInteger", "QLinearConv"):
            w = get(n.input[3] if n.op_type == "QLinearConv" else n.input[1])
            if w:
                total += _prod(out) * _prod(w[1:])
        elif n.op_type in ("MatMul", "MatMulInteger", "Gemm", "QLinearMatMul"):
            a = get(n.input[0])
            if a:
                trans_a = any(at.name == "transA" and at.i for at in n.attribute)
                k = a[0] if (n.op_type == "Gemm" and trans_a) else a[-1]
                total += _prod(out) * k
    return total or None


# --------------------------------------------------------------------------------------------- TFLite
def tflite_interpreter(path: str | Path, threads: int | None = None) -> Any:
    """LiteRT's interpreter where it installs (ai-edge-litert), else TensorFlow's."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - depends on the install
        from edgestudio.core.loaders import quiet_tensorflow

        quiet_tensorflow()
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    try:
        from edgestudio.core.formats import native_path

        return Interpreter(model_path=native_path(path), num_threads=threads)
    except Exception as exc:  # ValueError for corrupt flatbuffers
        raise ModelFormatError(path, f"corrupt TFLite model ({' '.join(str(exc).split())[:200]})") from None


def tflite_dims(d: dict[str, Any]) -> list[Dim]:
    sig = d.get("shape_signature")
    dims = list(sig if sig is not None and len(sig) else d["shape"])
    return [int(x) if int(x) >= 0 else "?" for x in dims]


def _inspect_tflite(p: Path, shapes: dict[str, list[int]] | None = None) -> ModelInfo:
    import numpy as np

    from edgestudio.core.inputspec import resolve_shapes

    interp = tflite_interpreter(p)
    inputs = [TensorSpec(d["name"], tflite_dims(d), np.dtype(d["dtype"]).name) for d in interp.get_input_details()]
    if shapes and any(not t.is_static for t in inputs):
        fixed = resolve_shapes(inputs, _spec(shapes), model=p)
        for d in interp.get_input_details():
            interp.resize_tensor_input(d["index"], fixed[d["name"]], strict=False)
        interp.allocate_tensors()
    outputs = [TensorSpec(d["name"], tflite_dims(d), np.dtype(d["dtype"]).name) for d in interp.get_output_details()]
    ops_details = interp._get_ops_details()
    ops = Counter(o["op_name"] for o in ops_details)
    tensor_shapes = {t["index"]: list(t["shape"]) for t in interp.get_tensor_details()}
    macs = 0
    for o in ops_details:
        name, ins, outs = o["op_name"], list(o["inputs"]), list(o["outputs"])
        if not outs or outs[0] < 0 or len(ins) < 2 or ins[1] < 0:
            continue
        out, w = tensor_shapes.get(outs[0]), tensor_shapes.get(ins[1])
        if out is None or w is None or not len(w):
            continue
        out = [max(int(x), 1) for x in out]
        if name == "CONV_2D":
            macs += _prod(out) * _prod(w[1:])
        elif name == "DEPTHWISE_CONV_2D":
            macs += _prod(out) * _prod(w[1:3])
        elif name == "FULLY_CONNECTED":
            macs += _prod(out) * int(w[-1])
    params, schema_version = _tflite_constants(p)
    return ModelInfo(ModelFormat.TFLITE, str(p), 0, inputs, outputs, dict(ops), params, macs or None,
                     schema_version, None)


#: TFLite ops that keep state between calls (a streaming model's resource variables)
TFLITE_STATE_OPS = ("VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE")


def tflite_state_ops(path: str | Path) -> list[str]:
    """The resource-variable ops a TFLite model uses (it keeps state between calls), read from the flatbuffer."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:  # pragma: no cover
        return []
    model = schema.Model.GetRootAs(Path(path).read_bytes(), 0)
    codes = {int(getattr(schema.BuiltinOperator, n)): n for n in TFLITE_STATE_OPS if hasattr(schema.BuiltinOperator, n)}
    found = {codes[c] for i in range(model.OperatorCodesLength())
             if (c := max(int(model.OperatorCodes(i).BuiltinCode()), int(model.OperatorCodes(i).DeprecatedBuiltinCode())))
             in codes}
    return [n for n in TFLITE_STATE_OPS if n in found]


def tflite_integer_only(path: str | Path) -> bool:
    """Is the TFLite model already integer throughout (no float32/float16 tensor, some int8/int16 one)? Read from
    the flatbuffer: a full-INT8 model that quantizers would quantize again (and crash on, or leave unchanged)."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:  # pragma: no cover
        return False
    model = schema.Model.GetRootAs(Path(path).read_bytes(), 0)
    floats = {int(schema.TensorType.FLOAT32), int(schema.TensorType.FLOAT16)}
    ints = {int(schema.TensorType.INT8), int(schema.TensorType.INT16), int(schema.TensorType.UINT8)}
    types = {int(model.Subgraphs(g).Tensors(t).Type()) for g in range(model.SubgraphsLength())
             for t in range(model.Subgraphs(g).TensorsLength())}
    return not (types & floats) and bool(types & ints)


def tflite_custom_ops(path: str | Path) -> list[str]:
    """The custom operators a TFLite model uses (not TFLite builtins: MediaPipe's Convolution2DTransposeBias, say),
    read from the flatbuffer's operator codes; [] when there are none or the schema reader is missing."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:  # pragma: no cover
        return []
    model = schema.Model.GetRootAs(Path(path).read_bytes(), 0)
    custom = int(schema.BuiltinOperator.CUSTOM)
    out = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
        name = oc.CustomCode()
        if code == custom and name:
            text = name.decode("utf-8", "backslashreplace")
            if text not in out:
                out.append(text)
    return out


def _tflite_constants(p: Path) -> tuple[int | None, int | None]:
    """Count elements of constant tensors (those backed by a data buffer) from the flatbuffer."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:  # pragma: no cover
        return None, None
    buf = p.read_bytes()
    model = schema.Model.GetRootAs(buf, 0)
    total = 0
    for s in range(model.SubgraphsLength()):
        sg = model.Subgraphs(s)
        for t in range(sg.TensorsLength()):
            tensor = sg.Tensors(t)
            b = tensor.Buffer()
            if b <= 0 or b >= model.BuffersLength():
                continue
            buffer = model.Buffers(b)
            if buffer.DataLength() > 0 or buffer.Size() > 0:
                total += _prod(tensor.ShapeAsNumpy()) if tensor.ShapeLength() else 1
    return total, int(model.Version())


# ------------------------------------------------------------------------------------- Keras (v3, H5)
def keras_dims(shape: Any) -> list[Dim]:
    return [int(d) if d is not None else ("batch" if i == 0 else "?") for i, d in enumerate(shape)]


def _keras_layers(model: Any) -> Iterable[Any]:
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            yield from _keras_layers(layer)
        else:
            yield layer


def _inspect_keras_any(p: Path, fmt: ModelFormat) -> ModelInfo:
    from edgestudio.core.loaders import load_keras_model

    model = load_keras_model(p, fmt)
    inputs = [TensorSpec(t.name, keras_dims(t.shape), str(t.dtype)) for t in model.inputs]
    outputs = [TensorSpec(t.name, keras_dims(t.shape), str(t.dtype)) for t in model.outputs]
    layers = list(_keras_layers(model))
    ops = Counter(type(layer).__name__ for layer in layers)
    macs = 0
    for layer in layers:
        kind = type(layer).__name__
        try:
            out = _static(keras_dims(layer.output.shape))
            kernel = getattr(layer, "kernel", None)
            kshape = [int(d) for d in kernel.shape] if kernel is not None else None
        except Exception:
            continue
        if out is None or kshape is None:
            continue
        if kind in ("Conv1D", "Conv2D", "Conv3D"):
            macs += _prod(out) * _prod(kshape[:-1])
        elif kind in ("DepthwiseConv1D", "DepthwiseConv2D"):
            macs += _prod(out) * _prod(kshape[:-2])
        elif kind == "Dense":
            macs += _prod(out) * kshape[0]
    return ModelInfo(fmt, str(p), 0, inputs, outputs, dict(ops), int(model.count_params()), macs or None,
                     None, f"keras {getattr(__import__('keras'), '__version__', '')}".strip())


def _inspect_keras(p: Path) -> ModelInfo:
    return _inspect_keras_any(p, ModelFormat.KERAS)


def _inspect_keras_h5(p: Path) -> ModelInfo:
    return _inspect_keras_any(p, ModelFormat.KERAS_H5)


# ---------------------------------------------------------------------------------------- SavedModel
_TF_PLUMBING = {"NoOp", "Identity", "Const", "Placeholder", "StatefulPartitionedCall", "PartitionedCall",
                "ReadVariableOp", "VarHandleOp", "_Arg", "_Retval", "IdentityN", "AssignVariableOp",
                "RestoreV2", "SaveV2", "StringJoin", "ShardedFilename", "MergeV2Checkpoints", "StaticRegexFullMatch",
                "Select", "Pack"}


def _inspect_saved_model(p: Path) -> ModelInfo:
    from edgestudio.core.loaders import load_saved_model, serving_signature

    loaded = load_saved_model(p)
    sig = serving_signature(loaded, p)
    in_specs = sig.structured_input_signature[1]
    inputs = [TensorSpec(name, keras_dims(spec.shape), spec.dtype.name) for name, spec in sorted(in_specs.items())]
    outputs = [TensorSpec(name, keras_dims(spec.shape), spec.dtype.name)
               for name, spec in sorted(sig.structured_outputs.items())]
    ops: Counter[str] = Counter()
    gdef = sig.graph.as_graph_def()
    for fn in gdef.library.function:
        if "__inference_signature_wrapper" in fn.signature.name:
            continue
        for node in fn.node_def:
            if node.op not in _TF_PLUMBING:
                ops[node.op] += 1
    variables = getattr(loaded, "variables", None) or []
    params = sum(int(v.shape.num_elements() or 0) for v in variables) or None
    return ModelInfo(ModelFormat.SAVED_MODEL, str(p), 0, inputs, outputs, dict(ops), params, None, None,
                     "tensorflow")


# ------------------------------------------------------------------------------------------ OpenVINO
def _check_ir(p: Path) -> None:
    """An IR has at least one op, and its .bin holds every constant the .xml points into."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(p).getroot()
    except ET.ParseError as exc:
        raise ModelFormatError(p, f"corrupt OpenVINO IR XML ({exc})") from None
    layers = list(root.iter("layer"))
    if not any(layer.get("type") not in ("Parameter", "Result", "Const") for layer in layers):
        raise ModelFormatError(p, f"OpenVINO IR has no operations ({len(layers)} layers, all inputs/outputs/constants)")
    need = 0
    for layer in layers:
        if layer.get("type") == "Const":
            data = layer.find("data")
            if data is not None and data.get("offset") is not None and data.get("size") is not None:
                try:
                    need = max(need, int(data.get("offset", 0)) + int(data.get("size", 0)))
                except ValueError:
                    raise ModelFormatError(p, f"OpenVINO IR constant {layer.get('name')} has a bad offset/size") from None
    if need:
        bin_path = p.with_suffix(".bin")
        have = bin_path.stat().st_size if bin_path.is_file() else None
        if have is None:
            raise ModelFormatError(p, f"the weights file {bin_path.name} is missing")
        if have < need:
            raise ModelFormatError(p, f"{bin_path.name} holds {have:,} bytes but the IR points at {need:,}: truncated "
                                      "or from another model")


def _ov_dims(pshape: Any) -> list[Dim]:
    if pshape.rank.is_dynamic:
        return ["?"]
    return [int(d.get_length()) if d.is_static else "?" for d in pshape]


def ov_port_spec(port: Any, index: int) -> TensorSpec:
    try:
        name = port.get_any_name()
    except RuntimeError:
        name = f"port{index}"
    try:
        dtype = port.get_element_type().to_dtype().name
    except Exception:
        dtype = str(port.get_element_type())
    return TensorSpec(name, _ov_dims(port.get_partial_shape()), dtype)


def _inspect_openvino(p: Path, shapes: dict[str, list[int]] | None = None) -> ModelInfo:
    import openvino as ov

    from edgestudio.core.inputspec import resolve_shapes

    _check_ir(p)
    try:
        from edgestudio.core.formats import native_path

        model = ov.Core().read_model(native_path(p))
    except Exception as exc:
        raise ModelFormatError(p, f"corrupt OpenVINO IR ({' '.join(str(exc).split())[:200]})") from None
    inputs = [ov_port_spec(port, i) for i, port in enumerate(model.inputs)]
    if shapes and any(not t.is_static for t in inputs):
        fixed = resolve_shapes(inputs, _spec(shapes), model=p)
        model.reshape({port: ov.PartialShape(fixed[t.name]) for port, t in zip(model.inputs, inputs)})
    outputs = [ov_port_spec(port, i) for i, port in enumerate(model.outputs)]
    ops: Counter[str] = Counter()
    params = macs = 0
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind in ("Parameter", "Result"):
            continue
        if kind == "Constant":
            et = op.get_output_element_type(0)
            if et.is_real() or et.get_type_name() in ("i8", "u8", "i4", "u4"):
                ps = op.get_output_partial_shape(0)
                params += _prod(d.get_length() for d in ps) if ps.is_static else 0
            continue
        ops[kind] += 1
        if kind in ("Convolution", "GroupConvolution", "MatMul"):
            out = _static(_ov_dims(op.get_output_partial_shape(0)))
            w = _static(_ov_dims(op.input(1).get_partial_shape()))
            a = _static(_ov_dims(op.input(0).get_partial_shape()))
            if out is None or w is None:
                continue
            if kind == "Convolution":
                macs += _prod(out) * _prod(w[1:])
            elif kind == "GroupConvolution":
                macs += _prod(out) * _prod(w[2:])
            elif a:
                trans_a = bool(op.get_attributes().get("transpose_a", False))
                macs += _prod(out) * (a[-2] if trans_a and len(a) > 1 else a[-1])
    import xml.etree.ElementTree as ET

    try:
        version = int(ET.parse(p).getroot().get("version", "0")) or None
    except (ET.ParseError, ValueError):
        version = None
    return ModelInfo(ModelFormat.OPENVINO, str(p), 0, inputs, outputs, dict(ops), params, macs or None, version,
                     f"openvino {ov.__version__.split('-')[0]}")


# ------------------------------------------------------------------------------------------------ TF.js
def _inspect_tfjs(p: Path) -> ModelInfo:
    mj = p / "model.json" if p.is_dir() else p
    doc = json.loads(mj.read_text("utf-8"))
    topo = doc.get("modelTopology") or {}
    ops: Counter[str] = Counter()
    inputs: list[TensorSpec] = []
    outputs: list[TensorSpec] = []
    if "node" in topo:  # graph model
        for node in topo["node"]:
            op = node.get("op", "?")
            if op == "Placeholder":
                dims = node.get("attr", {}).get("shape", {}).get("shape", {}).get("dim", [])
                inputs.append(TensorSpec(node["name"], [int(d.get("size", -1)) if int(d.get("size", -1)) >= 0 else "?"
                                                         for d in dims], "float32"))
            elif op not in ("Const", "Identity", "NoOp"):
                ops[op] += 1
        for name, spec in (doc.get("signature", {}).get("outputs") or {}).items():
            dims = spec.get("tensorShape", {}).get("dim", [])
            outputs.append(TensorSpec(name, [int(d.get("size", -1)) if int(d.get("size", -1)) >= 0 else "?"
                                             for d in dims], "float32"))
    else:  # layers model
        config = topo.get("model_config", topo).get("config", {})
        for layer in config.get("layers", []):
            cls = layer.get("class_name", "?")
            if cls == "InputLayer":
                lc = layer.get("config", {})
                shape = lc.get("batch_input_shape") or lc.get("batch_shape") or []
                inputs.append(TensorSpec(lc.get("name", "input"), keras_dims(shape), lc.get("dtype", "float32")))
            else:
                ops[cls] += 1
    params = _check_tfjs_weights(p, mj, doc)
    return ModelInfo(ModelFormat.TFJS, str(p), 0, inputs, outputs, dict(ops), params or None, None, None,
                     doc.get("convertedBy") or doc.get("generatedBy"))


# ------------------------------------------------------------------------------------------------ TVM
def _inspect_tvm(p: Path) -> ModelInfo:
    """What the compiler recorded beside the library (reading it needs no TVM)."""
    try:
        doc = json.loads((p / "tvm.json").read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFormatError(p, f"unreadable tvm.json ({exc})") from None
    specs = [[TensorSpec(t["name"], list(t["shape"]), t["dtype"]) for t in doc.get(k, [])] for k in ("inputs", "outputs")]
    return ModelInfo(ModelFormat.TVM, str(p), 0, specs[0], specs[1], dict(doc.get("ops") or {}), doc.get("parameters"),
                     None, None, f"apache-tvm {doc.get('tvm_version', '?')} ({doc.get('target', {}).get('mcpu', '?')}"
                     f", {'tuned ' + str(doc.get('tuning', {}).get('trials')) + ' trials' if doc.get('tuning') else 'untuned'})")


def _check_tfjs_weights(p: Path, mj: Path, doc: dict[str, Any]) -> int:
    from edgestudio.core.safety import check_tfjs_weights

    return check_tfjs_weights(mj, doc, model=p)


ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
               "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(uint8)": "uint8",
               "tensor(bool)": "bool", "tensor(int16)": "int16", "tensor(uint16)": "uint16", "tensor(string)": "str"}


def ort_spec(arg: Any) -> TensorSpec:
    """A TensorSpec from an ONNX Runtime session's input/output description."""
    from edgestudio.core.inputspec import short_dim

    dims: list[Dim] = [(d if d >= 0 else "?") if isinstance(d, int) else (short_dim(str(d)) if d else "?")
                       for d in (arg.shape or [])]
    return TensorSpec(arg.name, dims, ORT_DTYPES.get(arg.type, arg.type))


def _inspect_ort(p: Path) -> ModelInfo:
    import onnxruntime as ort

    try:
        from edgestudio.core.formats import native_path, onnxruntime_session_options_for

        so = onnxruntime_session_options_for(p, ort.SessionOptions())
        sess = ort.InferenceSession(native_path(p), sess_options=so, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelFormatError(p, f"corrupt ORT model ({' '.join(str(exc).split())[:200]})") from None
    meta = sess.get_modelmeta()
    return ModelInfo(ModelFormat.ORT, str(p), 0, [ort_spec(i) for i in sess.get_inputs()],
                     [ort_spec(o) for o in sess.get_outputs()], {}, None, None, None, meta.producer_name or None)


def _torch_dims(shape: Any) -> list[Any]:
    return [int(d) if isinstance(d, int) or str(d).isdigit() else "?" for d in shape]


#: a TorchScript argument's declared type -> (shape, dtype, how it is passed): a Python ``int`` is a 0-d int64
#: (what the TorchScript exporter makes of it in ONNX), a ``float`` a 0-d float64, a ``bool`` a 0-d bool
_SCRIPT_SCALARS = {"IntType": ("int64", "int"), "FloatType": ("float64", "float"), "BoolType": ("bool", "bool"),
                   "NumberType": ("float64", "float")}

#: TorchScript ops whose argument at this position can only be an integer (indices) or bool (mask) tensor: a
#: forward argument declared ``Tensor`` used there directly is an int64 / bool input (token ids, masks)
_INDEX_USES = {("aten::embedding", 1): "int64", ("aten::embedding_bag", 1): "int64", ("aten::one_hot", 0): "int64",
               ("aten::index_select", 2): "int64", ("aten::gather", 2): "int64", ("aten::take", 1): "int64",
               ("aten::masked_fill", 1): "bool", ("aten::masked_fill_", 1): "bool", ("aten::where", 0): "bool"}


def _script_tensor_dtypes(module: Any) -> dict[str, str]:
    """Forward arguments declared ``Tensor`` whose uses in the graph fix their dtype (read, not run)."""
    out: dict[str, str] = {}
    try:
        graph = module.inlined_graph
        names = [a.name for a in module.forward.schema.arguments[1:]]
        for name, value in zip(names, list(graph.inputs())[1:]):
            kinds = {_INDEX_USES.get((u.user.kind(), u.offset)) for u in value.uses()} - {None}
            if len(kinds) == 1:
                out[name] = kinds.pop()
    except Exception:  # graph introspection is a refinement: the declared types stand without it
        return {}
    return out


class TorchProgram:
    """A loaded PyTorch model and how to call it: ``inputs`` are what a run is fed (numpy arrays by name);
    :meth:`args` turns a feed into the call's arguments (a Python ``int``/``float``/``bool`` where the TorchScript
    schema declares one, a tensor elsewhere, the value torch.export fixed for an argument it specialised)."""

    def __init__(self, fmt: ModelFormat, module: Any, inputs: list[TensorSpec], outputs: list[TensorSpec],
                 kinds: list[tuple[str, Any]], fixed: dict[str, Any] | None = None, ep: Any = None) -> None:
        self.fmt = fmt
        self.ep = ep  # the ExportedProgram of a .pt2
        self.module = module
        self.inputs = inputs
        self.outputs = outputs
        self.kinds = kinds  # per call argument: ("tensor"|"int"|"float"|"bool", input name) or ("const", value)
        self.fixed = fixed or {}  # arguments torch.export specialised: name -> the only value the program takes

    def args(self, feeds: dict[str, Any]) -> tuple[Any, ...]:
        import numpy as np
        import torch

        out: list[Any] = []
        for kind, ref in self.kinds:
            if kind == "const":
                out.append(ref)
                continue
            arr = np.asarray(feeds[ref])
            if kind == "tensor":  # np.require keeps a 0-d array 0-d (np.ascontiguousarray makes it 1-d)
                arr = np.require(arr, requirements="C")
                out.append(torch.from_numpy(arr if arr.flags.writeable else arr.copy()))
            else:
                if arr.size != 1:
                    from edgestudio.core.errors import UsageError

                    raise UsageError(None, f"input {ref!r} is a scalar ({kind}) but was given shape {list(arr.shape)}")
                item = arr.reshape(()).item()
                out.append(int(item) if kind == "int" else float(item) if kind == "float" else bool(item))
        return tuple(out)


def load_torch_program(path: str | Path) -> TorchProgram:
    """A TorchScript or ExportedProgram file, loaded from its checked bytes, with its inputs as declared."""
    import torch

    path = Path(path)
    fmt, data = _checked_torch_bytes(path)
    try:
        if fmt is ModelFormat.PT2:
            ep = torch.export.load(io.BytesIO(data))
            return _ep_program(ep, fmt)
        module = torch.jit.load(io.BytesIO(data), map_location="cpu").eval()
        dtypes = _script_tensor_dtypes(module)
        inputs, kinds = [], []
        for a in module.forward.schema.arguments[1:]:
            scalar = _SCRIPT_SCALARS.get(a.type.kind())
            if scalar is not None:
                inputs.append(TensorSpec(a.name, [], scalar[0]))
                kinds.append((scalar[1], a.name))
            else:
                inputs.append(TensorSpec(a.name, ["?"], dtypes.get(a.name, "float32")))
                kinds.append(("tensor", a.name))
        return TorchProgram(fmt, module, inputs, [TensorSpec("output", ["?"], "float32")], kinds)
    except EdgeStudioError:
        raise
    except Exception as exc:
        raise ModelFormatError(path, f"PyTorch cannot load it: {' '.join(str(exc).split())[:300]}") from None


def _ep_program(ep: Any, fmt: ModelFormat) -> TorchProgram:
    import torch

    sig = ep.graph_signature
    placeholders = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    inputs: list[TensorSpec] = []
    kinds: list[tuple[str, Any]] = []
    fixed: dict[str, Any] = {}
    for spec in sig.input_specs:
        if spec.kind.name != "USER_INPUT":
            continue
        arg = spec.arg
        name = str(getattr(arg, "name", "") or f"input_{len(kinds)}")
        if type(arg).__name__ == "ConstantArgument":  # specialised by torch.export: it takes this value only
            kinds.append(("const", arg.value))
            fixed[name] = arg.value
            continue
        node = placeholders.get(name)
        val = node.meta.get("val") if node is not None else None
        if isinstance(val, torch.Tensor):
            inputs.append(TensorSpec(name, _torch_dims(val.shape), str(val.dtype).removeprefix("torch.")))
            kinds.append(("tensor", name))
        elif isinstance(val, (bool, torch.SymBool)):
            inputs.append(TensorSpec(name, [], "bool"))
            kinds.append(("bool", name))
        elif isinstance(val, (int, torch.SymInt)):
            inputs.append(TensorSpec(name, [], "int64"))
            kinds.append(("int", name))
        elif isinstance(val, (float, torch.SymFloat)):
            inputs.append(TensorSpec(name, [], "float64"))
            kinds.append(("float", name))
        else:
            inputs.append(TensorSpec(name, ["?"], "float32"))
            kinds.append(("tensor", name))
    outputs = []
    for node in ep.graph.nodes:
        if node.op == "output":
            vals = node.args[0] if isinstance(node.args[0], (list, tuple)) else [node.args[0]]
            for name, arg in zip(sig.user_outputs, vals):
                v = getattr(arg, "meta", {}).get("val")
                shaped = isinstance(v, torch.Tensor)
                outputs.append(TensorSpec(str(name), _torch_dims(v.shape) if shaped else ["?"],
                                          str(v.dtype).removeprefix("torch.") if shaped else "float32"))
    return TorchProgram(fmt, ep.module(), inputs, outputs, kinds, fixed, ep)


def _checked_torch_bytes(path: Path) -> tuple[ModelFormat, bytes]:
    """A PyTorch archive's format and bytes, read once and checked (no pickle in them calls anything but tensor
    rebuilding): PyTorch then loads those very bytes, never the file again (which could have changed since)."""
    from edgestudio.core.safety import check_torch_archive, read_regular

    fmt = detect_format(path)
    if fmt not in (ModelFormat.PT2, ModelFormat.TORCHSCRIPT):
        raise ModelFormatError(path, f"not a PyTorch model ({fmt.label})")
    data = read_regular(path, "PyTorch model")
    check_torch_archive(path, data)
    return fmt, data


def load_exported_program(path: str | Path) -> Any:
    """The ExportedProgram of a .pt2, loaded from its checked bytes."""
    import torch

    path = Path(path)
    fmt, data = _checked_torch_bytes(path)
    if fmt is not ModelFormat.PT2:
        raise ModelFormatError(path, f"not an ExportedProgram ({fmt.label})")
    try:
        return torch.export.load(io.BytesIO(data))
    except Exception as exc:
        raise ModelFormatError(path, f"PyTorch cannot load it: {' '.join(str(exc).split())[:300]}") from None


def load_torch(path: str | Path) -> tuple[Any, list[TensorSpec], list[TensorSpec]]:
    """(module, input specs, output specs) of a TorchScript or ExportedProgram file (see :func:`load_torch_program`
    for how to call it)."""
    prog = load_torch_program(path)
    return prog.module, prog.inputs, prog.outputs


def _inspect_torch(p: Path) -> ModelInfo:
    """TorchScript / ExportedProgram (in the ``torch`` environment): I/O, aten ops, parameters."""
    from collections import Counter

    import torch

    prog = load_torch_program(p)
    fmt, module, inputs, outputs = prog.fmt, prog.module, prog.inputs, prog.outputs
    if fmt is ModelFormat.PT2:
        ep = prog.ep
        ops = Counter(str(getattr(n.target, "__name__", n.target)).split(".")[0]
                      for n in ep.graph.nodes if n.op == "call_function")
        params = sum(int(v.numel()) for v in ep.state_dict.values()) + sum(
            int(getattr(v, "numel", lambda: 0)()) for v in ep.constants.values())
    else:
        ops = Counter(n.kind().split("::")[-1] for n in module.inlined_graph.nodes()
                      if not n.kind().startswith("prim::"))
        params = sum(int(t.numel()) for t in module.parameters()) + sum(int(t.numel()) for t in module.buffers())
    return ModelInfo(fmt, str(p), 0, inputs, outputs, dict(ops.most_common()), params, None, None,
                     f"PyTorch {torch.__version__}")


_SHAPED = {ModelFormat.ONNX, ModelFormat.TFLITE, ModelFormat.OPENVINO}  # inspectors that take shapes (MACs)

_INSPECTORS: dict[ModelFormat, Any] = {
    ModelFormat.ONNX: _inspect_onnx,
    ModelFormat.ORT: _inspect_ort,
    ModelFormat.TFLITE: _inspect_tflite,
    ModelFormat.KERAS: _inspect_keras,
    ModelFormat.KERAS_H5: _inspect_keras_h5,
    ModelFormat.SAVED_MODEL: _inspect_saved_model,
    ModelFormat.OPENVINO: _inspect_openvino,
    ModelFormat.TFJS: _inspect_tfjs,
    ModelFormat.TORCHSCRIPT: _inspect_torch,
    ModelFormat.PT2: _inspect_torch,
    ModelFormat.TVM: _inspect_tvm,
}
