"""TFLite models, read from the flatbuffer and LiteRT's interpreter."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from edgestudio.core.errors import ModelFormatError
from edgestudio.core.formats import ModelFormat
from edgestudio.core.modelinfo import Dim, ModelInfo, TensorSpec
from edgestudio.core.readers.common import prod, shape_spec


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
        fixed = resolve_shapes(inputs, shape_spec(shapes), model=p)
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
            macs += prod(out) * prod(w[1:])
        elif name == "DEPTHWISE_CONV_2D":
            macs += prod(out) * prod(w[1:3])
        elif name == "FULLY_CONNECTED":
            macs += prod(out) * int(w[-1])
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
                total += prod(tensor.ShapeAsNumpy()) if tensor.ShapeLength() else 1
    return total, int(model.Version())


