"""Intermediate tensors as a runtime exposes them (``Runtime.intermediate_tensors``), for the per-layer comparison
(:mod:`edgestudio.bench.layers`): the tensor record, and the op vocabulary every format shares (one name per op,
the ops a quantizer quantizes the weights of, a runtime's own copies of a tensor that are walked through)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear")
#: a runtime's or a quantizer's own copies of a tensor, not layers: never paired, walked through (ExecuTorch's
#: portable INT8 program: quantized_decomposed's quantize/dequantize ops)
INTERNAL_OPS = frozenset({*QDQ_OPS, "FakeQuantize", "Convert", "ConvertLike", "QUANTIZE", "DEQUANTIZE",
                          "quantize_per_tensor", "dequantize_per_tensor", "quantize_per_channel",
                          "dequantize_per_channel"})
#: the ops a quantizer quantizes the weights of (ONNX, OpenVINO, TFLite, ExecuTorch names): what "keep it in
#: float" keeps
WEIGHTED_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm",
                          "Convolution", "GroupConvolution", "ConvolutionBackpropData", "GroupConvolutionBackpropData",
                          "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL",
                          "CONV_3D", "convolution", "linear", "addmm", "mm", "bmm"})
ACTIVATIONS = frozenset({"relu", "clip", "sigmoid", "hardsigmoid", "hardswish", "tanh", "leakyrelu", "prelu", "elu",
                         "selu", "gelu", "swish", "mish", "softplus", "softsign", "celu", "thresholdedrelu"})
_CANON = {  # one name per op across ONNX, OpenVINO, TFLite and ExecuTorch (lower case, no punctuation)
    "convolution": "conv", "groupconvolution": "conv", "conv2d": "conv", "depthwiseconv2d": "conv", "conv3d": "conv",
    "convolutionbackpropdata": "convtranspose", "groupconvolutionbackpropdata": "convtranspose",
    "transposeconv": "convtranspose", "gemm": "matmul", "fullyconnected": "matmul", "batchmatmul": "matmul",
    "addmm": "matmul", "linear": "matmul", "mm": "matmul", "bmm": "matmul",
    "clamp": "clip", "relu6": "clip", "relun1to1": "clip", "hardtanh": "clip", "logistic": "sigmoid",
    "hsigmoid": "hardsigmoid", "hswish": "hardswish", "multiply": "mul", "subtract": "sub", "divide": "div",
    "maximum": "max", "minimum": "min", "avgpool": "averagepool", "averagepool2d": "averagepool",
    "avgpool2d": "averagepool", "maxpool2d": "maxpool", "maxpool2dwithindices": "maxpool",
    "concatenation": "concat", "cat": "concat", "interpolate": "resize", "resizebilinear": "resize",
    "resizenearestneighbor": "resize", "reducemean": "mean", "globalaveragepool": "mean",
    "batchnorminference": "batchnorm", "batchnormalization": "batchnorm",
    "nativebatchnormlegitnotraining": "batchnorm", "squeeze": "reshape",
    "unsqueeze": "reshape", "flatten": "reshape", "viewcopy": "reshape", "power": "pow", "sqrt": "sqrt",
    "reducesum": "sum",
}


def canonical_op(op: str) -> str:
    """One name for an op type whatever the format calls it (Conv, Convolution, CONV_2D: ``conv``)."""
    key = re.sub(r"[^a-z0-9]", "", op.lower())
    return _CANON.get(key, key)


@dataclass
class Tensor:
    name: str
    op: str  # the producing op's type ("Input" for a graph input)
    node: str  # the producing node's name
    order: int  # position along the graph (topological)
    inputs: tuple[str, ...] = ()  # the tensors it is computed from (through runtime-internal copies; no constants)
    weighted: bool = False  # its producer has weights (a Conv/Gemm/MatMul with a constant operand)
    activation: str | None = None  # an activation fused into the producer (TFLite): the output is after it
    values: list[np.ndarray] = field(default_factory=list, repr=False)  # one per input sample
    named: bool = True  # False: its name is only a position (ExecuTorch keeps no tensor names): paired by structure
    opaque: str | None = None  # why the ops computing it are not exposed one by one (a delegated block)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.values[0].shape) if self.values else ()

    @property
    def post_activation(self) -> bool:
        return canonical_op(self.op) in ACTIVATIONS or bool(self.activation)


def float_tensors(order: list[Tensor]) -> list[Tensor]:
    """The float tensors, each with only float tensors (or graph inputs) for inputs: shapes and indices are not layers."""
    kept = [t for t in order if t.values and np.issubdtype(t.values[0].dtype, np.floating)]
    names = {t.name for t in kept}
    for t in kept:
        t.inputs = tuple(i for i in t.inputs if i in names or i.startswith("input:"))
    return kept
