"""Shared TFLite-converter helper for the LiteRT optimizers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgestudio.core.formats import ModelFormat


def convert(src: Path, fmt: ModelFormat, dst: Path, configure: Any) -> None:
    from edgestudio.backends.converters.tf_to_tflite import tflite_converter

    conv = tflite_converter(src, fmt)
    configure(conv)
    dst.write_bytes(conv.convert())


#: ``--ignore type:X`` given with another format's op type: the TFLite ops that stand for it
TFLITE_TYPES = {"Conv": ("CONV_2D", "DEPTHWISE_CONV_2D", "CONV_3D"), "Convolution": ("CONV_2D",),
                "GroupConvolution": ("DEPTHWISE_CONV_2D",), "Gemm": ("FULLY_CONNECTED",),
                "MatMul": ("FULLY_CONNECTED", "BATCH_MATMUL"), "ConvTranspose": ("TRANSPOSE_CONV",),
                "Add": ("ADD",), "Mul": ("MUL",), "Relu": ("RELU",), "Softmax": ("SOFTMAX",)}


def _ops(model: bytes) -> list[tuple[str, list[str], list[Any]]]:
    """(op name, output tensor names, output dtypes) of each op of a TFLite model."""
    import warnings

    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interp = Interpreter(model_content=model)
    details = {d["index"]: d for d in interp.get_tensor_details()}
    return [(op["op_name"], [details[int(o)]["name"] for o in op["outputs"] if int(o) >= 0],
             [details[int(o)]["dtype"] for o in op["outputs"] if int(o) >= 0])
            for op in interp._get_ops_details()]  # noqa: SLF001 - LiteRT's only way to walk the ops


def denylist(float_model: bytes, ignored: list[str]) -> tuple[list[str], list[str]]:
    """The quantization debugger's (denylisted_nodes, denylisted_ops) for ``--ignore``: names are the float model's
    op output tensors, ``type:X`` a TFLite op (an ONNX/OpenVINO type such as Conv or Gemm is read as the TFLite ops
    that stand for it). One that matches nothing is refused, naming it (the debugger would ignore it silently)."""
    from edgestudio.backends.optimizers.base import OptimizationError

    ops = _ops(float_model)
    names = {n for _, outs, _ in ops for n in outs}
    present = {op for op, _, _ in ops}
    nodes: list[str] = []
    types: list[str] = []
    for item in ignored:
        if item.startswith("type:"):
            t = item[5:]
            wanted = [t] if t in present else [x for x in TFLITE_TYPES.get(t, ()) if x in present]
            if not wanted and t.upper() in present:  # ONNX's Div, Sigmoid, ... spelled as TFLite spells them
                wanted = [t.upper()]
            if not wanted:
                raise OptimizationError(None, f"--ignore {item}: no op of the TFLite model has that type (TFLite ops "
                                              "such as type:CONV_2D or type:FULLY_CONNECTED; ONNX's Conv/Gemm/MatMul "
                                              "are read as those)")
            types += [x for x in wanted if x not in types]
        elif item in names:
            nodes.append(item)
        else:
            raise OptimizationError(None, f"--ignore {item}: no op of the TFLite model writes a tensor of that name "
                                          "(the denylist takes op output tensors, e.g. the names `debug` shows)")
    return nodes, types


def still_quantized(model: Path, nodes: list[str], types: list[str]) -> list[str]:
    """The denylisted ops whose outputs are still integer in the quantized ``model``."""
    import numpy as np

    out = []
    for op, outs, dtypes in _ops(model.read_bytes()):
        if any(n in nodes for n in outs) or op in types:
            out += [n for n, d in zip(outs, dtypes) if np.issubdtype(d, np.integer)]
    return out
