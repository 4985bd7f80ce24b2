"""PyTorch (ExportedProgram .pt2, TorchScript .pt) -> ExecuTorch (.pte): ``torch.export`` lowered with
``to_edge_transform_and_lower`` and the XNNPACK partitioner (what ExecuTorch's own tutorials do for CPUs), then
``to_executorch``. Runs in the ``executorch`` environment. A TorchScript module goes through PyTorch's TorchScript
-> ExportedProgram converter first, at the example inputs' shapes (the user's: ``--input``, ``--shape``,
``--value``). The result is checked against PyTorch on the same inputs, like every hop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgestudio.backends.converters.base import (
    CONVERTERS,
    ConversionError,
    Converter,
    ConvertOptions,
    static_torch_program,
)
from edgestudio.core.errors import EdgeStudioError
from edgestudio.core.formats import ModelFormat
from edgestudio.core.progress import CancelToken, ProgressCallback


@CONVERTERS.register
class TorchToExecuTorch(Converter):
    name = "executorch"
    label = "executorch.exir.to_edge_transform_and_lower"
    sources = frozenset({ModelFormat.PT2, ModelFormat.TORCHSCRIPT})
    target = ModelFormat.PTE
    requires = ("torch", "executorch")
    distributions = ("torch", "executorch")
    uses = ("shapes",)
    preference = 10
    tolerance = 1e-4

    def convert(self, src: Path, fmt: ModelFormat, dst: Path, opts: ConvertOptions, *,
                progress: ProgressCallback, cancel: CancelToken) -> None:
        try:
            ep, _ = static_torch_program(src, opts, progress)
            cancel.check()
            progress(0.4, f"lowering to ExecuTorch ({opts.executorch_delegate} delegate)")
            dst.write_bytes(lower_to_pte(ep, opts.executorch_delegate))
        except EdgeStudioError:  # the user's inputs (a missing --shape): said as they are
            raise
        except Exception as exc:  # noqa: BLE001 - said with the op where the library names one
            raise self.explain(exc, src, fmt) from None
        if not dst.exists():
            raise ConversionError(src, "ExecuTorch finished without writing a program", converter=self.name)


def lower_to_pte(ep: Any, delegate: str = "xnnpack") -> bytes:
    """An ExportedProgram lowered to an ExecuTorch program: XNNPACK takes what it can, the portable ops the rest;
    ``delegate="none"``: portable (and quantized) ops only, each of which ETDump records."""
    from executorch.exir import to_edge_transform_and_lower

    if delegate == "none":
        import executorch.kernels.quantized  # noqa: F401 - the quantize/dequantize out variants of an INT8 program

        return bytes(to_edge_transform_and_lower(ep).to_executorch().buffer)
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    return bytes(to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()]).to_executorch().buffer)
