"""OpenVINO IR (.xml + .bin), checked before OpenVINO parses it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from edgestudio.core.errors import ModelFormatError
from edgestudio.core.formats import ModelFormat
from edgestudio.core.modelinfo import Dim, ModelInfo, TensorSpec
from edgestudio.core.readers.common import prod, static_dims, shape_spec


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
        fixed = resolve_shapes(inputs, shape_spec(shapes), model=p)
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
                params += prod(d.get_length() for d in ps) if ps.is_static else 0
            continue
        ops[kind] += 1
        if kind in ("Convolution", "GroupConvolution", "MatMul"):
            out = static_dims(_ov_dims(op.get_output_partial_shape(0)))
            w = static_dims(_ov_dims(op.input(1).get_partial_shape()))
            a = static_dims(_ov_dims(op.input(0).get_partial_shape()))
            if out is None or w is None:
                continue
            if kind == "Convolution":
                macs += prod(out) * prod(w[1:])
            elif kind == "GroupConvolution":
                macs += prod(out) * prod(w[2:])
            elif a:
                trans_a = bool(op.get_attributes().get("transpose_a", False))
                macs += prod(out) * (a[-2] if trans_a and len(a) > 1 else a[-1])
    import xml.etree.ElementTree as ET

    try:
        version = int(ET.parse(p).getroot().get("version", "0")) or None
    except (ET.ParseError, ValueError):
        version = None
    return ModelInfo(ModelFormat.OPENVINO, str(p), 0, inputs, outputs, dict(ops), params, macs or None, version,
                     f"openvino {ov.__version__.split('-')[0]}")


