"""Shared NNCF helpers for the OpenVINO optimizers (not an optimizer: the registry skips '_' modules)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgestudio.backends.optimizers.base import OptimizeOptions


def read_ir(src: Path) -> Any:
    from edgestudio.backends.runtimes.openvino import ov_core
    from edgestudio.core.formats import native_path

    return ov_core().read_model(native_path(src))


def save_ir(model: Any, dst: Path) -> None:
    import openvino as ov

    ov.save_model(model, str(dst), compress_to_fp16=False)


#: ``--ignore type:X`` given with another format's op type: the OpenVINO op types that stand for it
OV_TYPES = {"Conv": ("Convolution", "GroupConvolution"), "ConvTranspose": ("ConvolutionBackpropData",
                                                                          "GroupConvolutionBackpropData"),
            "Gemm": ("MatMul",), "CONV_2D": ("Convolution",), "DEPTHWISE_CONV_2D": ("GroupConvolution",),
            "FULLY_CONNECTED": ("MatMul",), "BATCH_MATMUL": ("MatMul",), "TRANSPOSE_CONV": ("ConvolutionBackpropData",),
            "Clip": ("Clamp",), "Mul": ("Multiply",), "Sub": ("Subtract",), "Div": ("Divide",)}


def ignored_scope(opts: OptimizeOptions, model: Any = None) -> Any:
    """NNCF's ``IgnoredScope`` for ``--ignore``: names as given, ``type:X`` as OpenVINO op types (an ONNX or TFLite
    type such as ``type:Conv`` or ``type:FULLY_CONNECTED`` is read as the OpenVINO types that stand for it). With the
    model, a name or a type that matches none of its ops is refused here, naming it (NNCF's own check says less)."""
    import nncf

    from edgestudio.backends.optimizers.base import OptimizationError

    if not opts.ignored_scope:
        return None
    names = [n for n in opts.ignored_scope if not n.startswith("type:")]
    types: list[str] = []
    ops = {op.get_friendly_name(): op.get_type_name() for op in model.get_ops()} if model is not None else None
    present = set(ops.values()) if ops is not None else None
    for item in (n[5:] for n in opts.ignored_scope if n.startswith("type:")):
        wanted = [item] if present is None or item in present else [t for t in OV_TYPES.get(item, ()) if t in present]
        if not wanted:
            raise OptimizationError(None, f"--ignore type:{item}: no op of the OpenVINO model has that type "
                                          f"(OpenVINO types such as type:Convolution or type:MatMul; "
                                          f"ONNX's Conv/Gemm/MatMul are read as those)")
        types += [t for t in wanted if t not in types]
    for name in names:
        if ops is not None and name not in ops:
            raise OptimizationError(None, f"--ignore {name}: no op of the OpenVINO model has that name (NNCF takes "
                                          "the IR's op names: a converter may have renamed or fused the ONNX node)")
    return nncf.IgnoredScope(names=names, types=types)


def quiet_nncf() -> None:
    import logging

    logging.getLogger("nncf").setLevel(logging.WARNING)
