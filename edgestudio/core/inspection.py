"""Inspect any supported model into one :class:`ModelInfo` (Qt-free; runtimes imported lazily)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgestudio.core.errors import EdgeStudioError, ModelFormatError
from edgestudio.core.formats import ModelFormat, detect_format
from edgestudio.core.modelinfo import ModelInfo, model_size_bytes
from edgestudio.core.readers.common import shape_spec
from edgestudio.core.readers.executorch import _inspect_pte
from edgestudio.core.readers.onnx import _inspect_onnx, _inspect_ort, check_onnx_file, onnx_graphs, ort_spec
from edgestudio.core.readers.openvino import _inspect_openvino, ov_port_spec
from edgestudio.core.readers.tensorflow import (
    _inspect_keras,
    _inspect_keras_h5,
    _inspect_saved_model,
    _inspect_tfjs,
    keras_dims,
)
from edgestudio.core.readers.tflite import (
    TFLITE_STATE_OPS,
    _inspect_tflite,
    tflite_custom_ops,
    tflite_dims,
    tflite_integer_only,
    tflite_interpreter,
    tflite_state_ops,
)
from edgestudio.core.readers.torch import (
    TorchProgram,
    _inspect_torch,
    load_exported_program,
    load_torch,
    load_torch_program,
)
from edgestudio.core.readers.tvm import _inspect_tvm

__all__ = ["TFLITE_STATE_OPS", "TorchProgram", "check_onnx_file", "count_ops", "inspect_model", "keras_dims",
           "load_exported_program", "load_torch", "load_torch_program", "onnx_graphs", "ort_spec", "ov_port_spec",
           "tflite_custom_ops", "tflite_dims", "tflite_integer_only", "tflite_interpreter", "tflite_state_ops"]


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
        resolved = resolve_shapes(info.inputs, shape_spec(shapes), model=path)
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
    ModelFormat.PTE: _inspect_pte,
}
