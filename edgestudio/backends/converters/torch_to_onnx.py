"""PyTorch (ExportedProgram .pt2, TorchScript .pt) -> ONNX with ``torch.onnx.export``.

Runs in the ``torch`` environment. ExportedPrograms go through the dynamo exporter (their dynamic dims stay
dynamic); TorchScript modules through the TorchScript exporter (the dynamo one takes no ScriptModule) at the
shape given with ``--shape`` (TorchScript files do not record one). The result is checked against PyTorch
itself, on the same inputs, like every hop.
"""

from __future__ import annotations

from pathlib import Path

from edgestudio.backends.converters.base import CONVERTERS, ConversionError, Converter, ConvertOptions
from edgestudio.core.formats import ModelFormat
from edgestudio.core.progress import CancelToken, ProgressCallback

DEFAULT_OPSET = 18


@CONVERTERS.register
class TorchToOnnx(Converter):
    name = "torch.onnx"
    label = "torch.onnx.export"
    sources = frozenset({ModelFormat.PT2, ModelFormat.TORCHSCRIPT})
    target = ModelFormat.ONNX
    requires = ("torch", "onnxscript", "onnx")
    distributions = ("torch", "onnxscript", "onnx")
    uses = ("opset", "shapes")
    preference = 10
    tolerance = 1e-4

    def convert(self, src: Path, fmt: ModelFormat, dst: Path, opts: ConvertOptions, *,
                progress: ProgressCallback, cancel: CancelToken) -> None:
        import numpy as np
        import torch

        from edgestudio.backends.runtimes.torch import load_torch
        from edgestudio.core.inspection import load_exported_program
        from edgestudio.core.inputspec import InputSpec, resolve_shapes

        opset = opts.opset or DEFAULT_OPSET
        progress(0.1, "loading with PyTorch")
        module, inputs, _ = load_torch(src)
        spec = InputSpec.from_dict(opts.inputs).merged(InputSpec(shapes=dict(opts.shapes)))
        shapes = resolve_shapes(inputs, spec, model=src)
        args = tuple(torch.from_numpy(np.zeros(shapes[s.name], dtype=np.dtype(s.dtype if s.dtype != "?" else "float32")))
                     for s in inputs)
        cancel.check()
        progress(0.3, f"exporting (opset {opset})")
        names = [s.name for s in inputs]
        try:
            if fmt is ModelFormat.PT2:
                ep = load_exported_program(src)
                prog = torch.onnx.export(ep, args, dynamo=True, opset_version=opset, input_names=names,
                                         verbose=False)
                prog.save(str(dst))
            else:
                torch.onnx.export(module, args, str(dst), dynamo=False, opset_version=opset, input_names=names,
                                  verbose=False)
        except Exception as exc:
            raise self.explain(exc, src, fmt) from None
        if not dst.exists():
            raise ConversionError(src, "torch.onnx.export finished without writing a model", converter=self.name)
