"""PyTorch (ExportedProgram .pt2, TorchScript .pt) -> ExecuTorch (.pte): ``torch.export`` lowered with
``to_edge_transform_and_lower`` and the XNNPACK partitioner (what ExecuTorch's own tutorials do for CPUs), then
``to_executorch``. Runs in the ``executorch`` environment. A TorchScript module goes through PyTorch's TorchScript
-> ExportedProgram converter first, at the example inputs' shapes (the user's: ``--input``, ``--shape``,
``--value``). The result is checked against PyTorch on the same inputs, like every hop.
"""

from __future__ import annotations

from pathlib import Path

from edgestudio.backends.converters.base import CONVERTERS, ConversionError, Converter, ConvertOptions
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
        from edgestudio.core.inputspec import InputSpec, make_feeds
        from edgestudio.core.inspection import load_torch_program

        progress(0.1, "loading with PyTorch")
        prog = load_torch_program(src)
        spec = InputSpec.from_dict(opts.inputs).merged(InputSpec(shapes=dict(opts.shapes)))
        feeds = make_feeds(prog.inputs, spec, count=1, model=src)
        args = prog.static_args(feeds.samples[0])  # one row: the program is static
        cancel.check()
        try:
            import torch

            if fmt is ModelFormat.PT2:
                ep = torch.export.export(prog.ep.module(), args)  # at the example's shapes: a .pte is static
            else:
                progress(0.2, "TorchScript -> ExportedProgram (torch.export)")
                from torch._export.converter import TS2EPConverter

                ep = TS2EPConverter(prog.module, args).convert()
            cancel.check()
            progress(0.4, "lowering to ExecuTorch (XNNPACK partitioner)")
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
            from executorch.exir import to_edge_transform_and_lower

            program = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()]).to_executorch()
            dst.write_bytes(program.buffer)
        except Exception as exc:  # noqa: BLE001 - said with the op where the library names one
            raise self.explain(exc, src, fmt) from None
        if not dst.exists():
            raise ConversionError(src, "ExecuTorch finished without writing a program", converter=self.name)
