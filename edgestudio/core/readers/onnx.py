"""ONNX and ORT-format models: the graph read with onnx (checked before anything runs on it), MACs and
parameters."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from edgestudio.core.errors import EdgeStudioError, ModelFormatError
from edgestudio.core.formats import ModelFormat
from edgestudio.core.modelinfo import Dim, ModelInfo, TensorSpec
from edgestudio.core.readers.common import prod, static_dims, shape_spec


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
        total += sum(prod(i.dims) for i in g.initializer if i.data_type in _WEIGHT_TYPES)
        for n in g.node:
            if n.op_type != "Constant" or n.domain not in ("", "ai.onnx"):
                continue
            for a in n.attribute:
                if a.name == "value" and a.t.data_type in _WEIGHT_TYPES:
                    total += prod(a.t.dims)
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
            params += prod(numpy_helper.to_array(shape_init).tolist()) - prod(shape_init.dims)
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
        fixed = resolve_shapes(inputs, shape_spec(shapes))
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
        return static_dims(dims) if dims else None

    total = 0
    for n in g.node:
        out = get(n.output[0]) if n.output else None
        if out is None:
            continue
        if n.op_type in ("Conv", "ConvInteger", "QLinearConv"):
            w = get(n.input[3] if n.op_type == "QLinearConv" else n.input[1])
            if w:
                total += prod(out) * prod(w[1:])
        elif n.op_type in ("MatMul", "MatMulInteger", "Gemm", "QLinearMatMul"):
            a = get(n.input[0])
            if a:
                trans_a = any(at.name == "transA" and at.i for at in n.attribute)
                k = a[0] if (n.op_type == "Gemm" and trans_a) else a[-1]
                total += prod(out) * k
    return total or None




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
