"""LiteRT (TFLite): the ``ai-edge-litert`` interpreter where it installs, else ``tf.lite.Interpreter``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgestudio.backends.runtimes.base import RUNTIMES, DeviceInfo, Runtime, Session, blamed_op
from edgestudio.backends.intermediates import INTERNAL_OPS, WEIGHTED_OPS, Tensor, float_tensors
from edgestudio.core.errors import EdgeStudioError
from edgestudio.core.formats import ModelFormat
from edgestudio.core.modelinfo import TensorSpec


def _scale(d: dict[str, Any]) -> tuple[float, int] | None:
    """(scale, zero point) of a quantized integer input/output tensor, else None."""
    if np.dtype(d["dtype"]).kind not in "iu":
        return None
    scale, zero = d.get("quantization", (0.0, 0))
    return (float(scale), int(zero)) if scale else None


def quantize(x: np.ndarray, d: dict[str, Any]) -> np.ndarray:
    """A float feed for a quantized integer input, quantized with the tensor's parameters (others unchanged)."""
    q = _scale(d)
    if q is None or np.asarray(x).dtype.kind != "f":
        return x
    info = np.iinfo(np.dtype(d["dtype"]))
    return np.clip(np.round(np.asarray(x) / q[0] + q[1]), info.min, info.max).astype(d["dtype"])


def dequantize(y: np.ndarray, d: dict[str, Any]) -> np.ndarray:
    q = _scale(d)
    return y if q is None else ((y.astype(np.float32) - q[1]) * q[0]).astype(np.float32)


class LiteRtSession(Session):
    def __init__(self, interp: Any, device: str) -> None:
        from edgestudio.core.inspection import tflite_dims

        self._interp = interp
        self._allocated_for: dict[str, tuple[int, ...]] | None = None
        self.runtime = "litert"
        self.device = device
        self._in = interp.get_input_details()
        self._out = interp.get_output_details()
        # a full-integer model's int8/uint8 inputs and outputs are offered as float32: feeds are quantized with the
        # tensor's scale and zero point, outputs dequantized, so every check compares real values
        self.inputs = [TensorSpec(d["name"], tflite_dims(d), "float32" if _scale(d) else np.dtype(d["dtype"]).name)
                       for d in self._in]
        self.outputs = [TensorSpec(d["name"], tflite_dims(d), "float32" if _scale(d) else np.dtype(d["dtype"]).name)
                        for d in self._out]
        self.precision = None

    def _set(self, feeds: dict[str, np.ndarray]) -> None:
        shapes = {d["name"]: tuple(feeds[d["name"]].shape) for d in self._in}
        if shapes != self._allocated_for:
            for d in self._in:
                if tuple(d["shape"]) != shapes[d["name"]]:
                    self._interp.resize_tensor_input(d["index"], list(shapes[d["name"]]))
            self._interp.allocate_tensors()
            self._allocated_for = shapes
        for d in self._in:
            self._interp.set_tensor(d["index"], quantize(feeds[d["name"]], d))

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._set(feeds)
        self._interp.invoke()
        return {spec.name: dequantize(self._interp.get_tensor(d["index"]), d) for spec, d in zip(self.outputs, self._out)}

    def bind(self, feeds: dict[str, np.ndarray]) -> Callable[[], Any]:
        self._set(feeds)
        return self._interp.invoke


def _tflite_fused_activations(path: Path) -> dict[int, str]:
    """{operator index: the activation fused into it} for the main subgraph, read from the flatbuffer."""
    from ai_edge_litert import schema_py_generated as s

    model = s.Model.GetRootAs(path.read_bytes(), 0)
    if model.SubgraphsLength() == 0:
        return {}
    graph = model.Subgraphs(0)
    options = {v: k for k, v in vars(s.BuiltinOptions).items() if not k.startswith("_")}
    activations = {v: k for k, v in vars(s.ActivationFunctionType).items() if not k.startswith("_")}
    out: dict[int, str] = {}
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        cls = getattr(s, options.get(op.BuiltinOptionsType(), ""), None)
        table = op.BuiltinOptions()
        if cls is None or table is None or not hasattr(cls, "FusedActivationFunction"):
            continue
        opt = cls()
        opt.Init(table.Bytes, table.Pos)
        fused = opt.FusedActivationFunction()
        if fused:
            out[i] = activations.get(fused, str(fused))
    return out


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
    ops = interp._get_ops_details()  # noqa: SLF001 - LiteRT's only way to walk the ops
    fused = _tflite_fused_activations(path)
    producer = {int(o): op for op in ops for o in op["outputs"]}
    graph_inputs = {int(d["index"]): d["name"] for d in ins}
    const = {i for i in details if i not in producer and i not in graph_inputs}

    def source(idx: int) -> int:
        for _ in range(64):
            op = producer.get(idx)
            if op is None or op["op_name"] not in INTERNAL_OPS:
                break
            idx = int(op["inputs"][0])
        return idx

    def name(idx: int) -> str:
        return f"input:{graph_inputs[idx]}" if idx in graph_inputs else details[idx]["name"]

    order: list[tuple[Tensor, dict[str, Any]]] = []
    inputs = [Tensor(f"input:{d['name']}", "Input", d["name"], -1) for d in ins]
    for op in ops:
        srcs = [source(int(i)) for i in op["inputs"] if int(i) >= 0]
        if not srcs or all(s in const for s in srcs):
            const.update(int(o) for o in op["outputs"])
            continue
        if op["op_name"] in INTERNAL_OPS:
            continue
        names = tuple(dict.fromkeys(name(s) for s in srcs if s not in const))
        weighted = op["op_name"] in WEIGHTED_OPS and any(s in const for s in srcs[1:])
        for idx in op["outputs"]:
            if int(idx) >= 0:
                d = details[int(idx)]
                order.append((Tensor(d["name"], op["op_name"], f"{op['op_name']}_{op['index']}", int(op["index"]),
                                     names, weighted, fused.get(int(op["index"]))), d))
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
    return inputs + float_tensors([t for t, _ in order])


def weighted_op_output(model_path: Path, tensor: str) -> str | None:
    """The output tensor (what the quantization debugger's denylist takes) of the weighted op behind ``tensor``,
    walking through (de)quantize, pooling and reshapes."""
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
        if op["op_name"] in WEIGHTED_OPS:
            return names[int(op["outputs"][0])]
        queue.extend(producer.get(int(i)) for i in op["inputs"] if int(i) >= 0)
    return None


@RUNTIMES.register
class LiteRtRuntime(Runtime):
    name = "litert"
    label = "LiteRT / TFLite"
    formats = frozenset({ModelFormat.TFLITE})
    exposes = frozenset({ModelFormat.TFLITE})  # its intermediate tensors
    package_loader = '''
def load(model, precision=None):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # TensorFlow's bundled interpreter will do too
        from tensorflow.lite import Interpreter

    interp = Interpreter(model_path=model)
    interp.allocate_tensors()
    ins, out = interp.get_input_details(), interp.get_output_details()[0]
    names = [d["name"] for d in ins]

    def run(feeds):
        for d in ins:
            x = feeds[d["name"]]
            if tuple(d["shape"]) != x.shape:
                interp.resize_tensor_input(d["index"], list(x.shape))
                interp.allocate_tensors()
            scale, zero = d["quantization"]
            if scale and x.dtype.kind == "f" and np.dtype(d["dtype"]).kind in "iu":  # an INT8-I/O model
                info = np.iinfo(d["dtype"])
                x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(d["dtype"])
            interp.set_tensor(d["index"], x)
        interp.invoke()
        y = interp.get_tensor(out["index"])
        scale, zero = out["quantization"]
        if scale and np.dtype(out["dtype"]).kind in "iu":
            y = ((y.astype(np.float32) - zero) * scale).astype(np.float32)
        return y
    return names, run
'''
    requires = ("ai_edge_litert",)
    output_atol = 1e-3  # XNNPACK's float kernels differ from TensorFlow's by this much on an exact conversion
    no_profiler = ("LiteRT's Python interpreter exposes no per-op profiler; profile the TFLite model with --runtime "
                   "openvino (which reads TFLite), or LiteRT's native benchmark_model tool on the device")

    def intermediate_tensors(self, path: Path, feeds: list[dict[str, np.ndarray]]) -> list[Tensor]:
        """``experimental_preserve_all_tensors``, without the XNNPACK delegate (which would hide them)."""
        return _tflite_tensors(path, feeds)

    def rescue_reference(self, parent: Path, work: Path) -> tuple[Path, Path]:
        """The TFLite converter quantizes the Keras model or SavedModel; each attempt is compared with its float
        TFLite conversion."""
        from edgestudio.core.formats import detect_format

        fmt = detect_format(parent)
        if fmt not in (ModelFormat.KERAS, ModelFormat.KERAS_H5, ModelFormat.SAVED_MODEL):
            raise EdgeStudioError(parent, "the LiteRT rescue starts from the float Keras model or SavedModel")
        from edgestudio.backends.converters.tf_to_tflite import tflite_converter

        ref = work / "float.tflite"
        ref.write_bytes(tflite_converter(parent, fmt).convert())
        return parent, ref

    def rescue_scope(self, reference: Path, child: Path, item: dict[str, Any],
                     pairs: list[dict[str, Any]]) -> list[str]:
        """Op output tensors (the quantization debugger's ``denylisted_nodes``): the blamed op's, else the weighted
        op's behind the pair's tensor in the attempt; the upstream op by the tensor the comparison blames on it."""
        _, tensor, upstream = blamed_op(item)
        name = tensor or weighted_op_output(child, item.get("child", ""))
        if upstream:
            by_node = {p["node"]: p for p in pairs}
            upstream = (by_node.get(upstream) or {}).get("blame_tensor") or next(
                (p["blame_tensor"] for p in pairs if p.get("blame_node") == upstream), None)
        return [n for n in dict.fromkeys((name, upstream)) if n]

    @classmethod
    def missing_packages(cls) -> list[str]:
        from edgestudio.backends.registry import packages_available

        # Either LiteRT or TensorFlow's bundled interpreter will do.
        if not packages_available(("ai_edge_litert",)) or not packages_available(("tensorflow",)):
            return []
        return ["ai-edge-litert"]

    def devices(self) -> list[DeviceInfo]:
        try:
            import ai_edge_litert

            impl = f"ai-edge-litert {getattr(ai_edge_litert, '__version__', '')}".strip()
        except ImportError:  # pragma: no cover
            impl = "tf.lite.Interpreter"
        return [DeviceInfo(self.name, "CPU", f"CPU with XNNPACK ({impl})")]

    def load(self, path: str | Path, *, device: str = "CPU", threads: int | None = None,
             precision: str | None = None) -> Session:
        from edgestudio.core.inspection import tflite_interpreter

        device = self.check_device(device)
        return LiteRtSession(tflite_interpreter(path, threads), device)
