"""PyTorch (ExportedProgram .pt2, TorchScript .pt) -> ONNX with ``torch.onnx.export``.

Runs in the ``torch`` environment. ExportedPrograms go through the dynamo exporter (their dynamic dims stay
dynamic); TorchScript modules through the TorchScript exporter at the shape given with ``--shape`` (TorchScript
files do not record one), and where it lacks an op, through PyTorch's TorchScript -> ExportedProgram converter and
the dynamo exporter. The example inputs are the user's (``--input``,
``--value``, ``--shape``) with the declared dtypes: an ``int``/``float`` forward argument is passed as that Python
scalar (it becomes a 0-d ONNX input), a 0-d tensor input as a 0-d tensor. The result is checked against PyTorch
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
        import torch

        from edgestudio.core.inputspec import InputSpec, make_feeds
        from edgestudio.core.inspection import load_torch_program

        opset = opts.opset or DEFAULT_OPSET
        progress(0.1, "loading with PyTorch")
        prog = load_torch_program(src)
        inputs = prog.inputs
        spec = InputSpec.from_dict(opts.inputs).merged(InputSpec(shapes=dict(opts.shapes)))
        # the example inputs: what the user gave (--input, --value, --shape), as the model declares them (a Python
        # int for an ``sr: int`` argument, a 0-d tensor for a 0-d Tensor input, int64 token ids)
        feeds = make_feeds(inputs, spec, count=1, model=src)
        feed = feeds.samples[0]
        args = prog.args(feed)
        cancel.check()
        progress(0.3, f"exporting (opset {opset})")
        names = [s.name for s in inputs]
        try:
            if fmt is ModelFormat.PT2:
                prog_onnx = torch.onnx.export(prog.ep, args, dynamo=True, opset_version=opset, input_names=names,
                                              verbose=False)
                prog_onnx.save(str(dst))
            else:
                _python_not_on_numbers(opset)
                try:
                    torch.onnx.export(prog.module, args, str(dst), dynamo=False, opset_version=opset,
                                      input_names=names, verbose=False)
                except Exception as first:  # noqa: BLE001 - the dynamo exporter is the next route
                    if "TorchScript interpreter" in str(first):  # the model's own code raised: said below
                        raise
                    progress(0.5, f"the TorchScript exporter failed ({_first_line(first)}): again through "
                                  "torch.export (TorchScript -> ExportedProgram) and the dynamo exporter")
                    cancel.check()
                    _via_torch_export(prog.module, args, dst, opset, names, first)
                    self.route = ("through torch.export and the dynamo exporter: the TorchScript exporter failed "
                                  f"({_first_line(first)})")
        except Exception as exc:
            if "TorchScript interpreter" in str(exc):  # the model's own code raised on the example inputs
                from edgestudio.backends.runtimes.torch import describe_feed, last_error_line

                random = [n for n, v in feeds.sources.items() if v == "random"]
                scalars = [s.name for s in inputs if s.shape == [] and s.name in random]
                hint = ("give the value it takes with " + " ".join(f"--value {n}=V" for n in scalars) if scalars
                        else "give real inputs with --input" if random else None)
                raise ConversionError(src, f"the model raised {last_error_line(exc)} on the example inputs "
                                           f"({describe_feed(inputs, feed)}"
                                           f"{'; random: ' + ', '.join(random) if random else ''})",
                                      converter=self.name, hint=hint) from None
            if isinstance(exc, _BothExportersFailed):
                raise ConversionError(src, f"neither PyTorch exporter could export it: {exc}", converter=self.name,
                                      hint="export an ExportedProgram (.pt2) with torch.export from the model's "
                                           "Python code, which both routes start from") from None
            raise self.explain(exc, src, fmt) from None
        if not dst.exists():
            raise ConversionError(src, "torch.onnx.export finished without writing a model", converter=self.name)


class _BothExportersFailed(Exception):
    pass


def _first_line(exc: BaseException) -> str:
    from edgestudio.core.errors import clean_message

    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return clean_message(lines[-1] if lines and "operator" not in lines[0] else (lines[0] if lines else
                                                                                   type(exc).__name__), 200)


def _via_torch_export(module: object, args: tuple, dst: Path, opset: int, names: list[str],
                      first: BaseException) -> None:
    """The second route for a TorchScript module the TorchScript exporter refuses (an op it has no symbolic for,
    e.g. ``aten::fft_rfft``): PyTorch's own TorchScript -> ExportedProgram converter, then the dynamo exporter,
    which covers far more of ATen. Both failures are said when neither works."""
    import torch

    try:
        from torch._export.converter import TS2EPConverter

        ep = TS2EPConverter(module, tuple(args)).convert()
        torch.onnx.export(ep, tuple(args), dynamo=True, opset_version=opset, input_names=names,
                          verbose=False).save(str(dst))
    except Exception as second:  # noqa: BLE001 - both routes are named
        raise _BothExportersFailed(f"the TorchScript exporter: {_first_line(first)}; torch.export and the dynamo "
                                   f"exporter: {_first_line(second)}") from None


def _python_not_on_numbers(opset: int) -> None:
    """TorchScript's ``not n`` on an int (silero-vad's sample-rate checks) is ``aten::__not__``, which the
    TorchScript exporter maps to ONNX ``Not`` and refuses for non-boolean inputs ("ONNX export does NOT support
    exporting bitwise Not for non-boolean input values"). Python's ``not n`` is ``n == 0``: cast to bool, then Not."""
    import torch

    def symbolic(g, self):  # type: ignore[no-untyped-def]
        return g.op("Not", g.op("Cast", self, to_i=9))  # 9: ONNX BOOL; a bool input casts to itself

    try:  # the TorchScript exporter's own registry (torch 2.9+), where its built-in __not__ lives
        from torch.onnx._internal.torchscript_exporter import registration

        for name in ("aten::__not__", "aten::__not_"):  # the exporter looks it up with one trailing "_" dropped
            registration.registry.register(name, opset, symbolic, custom=True)
    except ImportError:  # older torch: the public registration reaches the same table
        torch.onnx.register_custom_op_symbolic("aten::__not__", symbolic, opset)
