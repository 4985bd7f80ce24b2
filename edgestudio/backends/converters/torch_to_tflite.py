"""PyTorch (ExportedProgram .pt2, TorchScript .pt) -> TFLite with LiteRT Torch (``litert-torch``, formerly
ai-edge-torch): Google's own path from ``torch.export`` to a ``.tflite``, without ONNX in between.

Runs in the ``litert-torch`` environment (torch and litert-torch, whose JAX / converter dependencies the app
does not need otherwise). The example inputs are the user's (``--input``, ``--value``, ``--shape``) as the model
declares them; a TorchScript module goes through PyTorch's TorchScript -> ExportedProgram converter first. The
result is checked against PyTorch on the same inputs, like every hop. Shapes are those of the example inputs
(a TFLite model is static; LiteRT resizes a batch at run time where the graph allows it).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

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
class TorchToTflite(Converter):
    name = "litert-torch"
    label = "litert_torch.convert"
    sources = frozenset({ModelFormat.PT2, ModelFormat.TORCHSCRIPT})
    target = ModelFormat.TFLITE
    requires = ("torch", "litert_torch")
    distributions = ("torch", "litert-torch")
    uses = ("shapes",)
    preference = 10
    tolerance = 1e-4

    def convert(self, src: Path, fmt: ModelFormat, dst: Path, opts: ConvertOptions, *,
                progress: ProgressCallback, cancel: CancelToken) -> None:
        try:
            ep, args = static_torch_program(src, opts, progress)
            cancel.check()
            progress(0.3, "converting with LiteRT Torch")
            import litert_torch

            with _quiet():  # its MLIR passes print to the process's own stdout/stderr
                edge = litert_torch.convert(ep.module(), args)
                edge.export(str(dst))
        except EdgeStudioError:  # the user's inputs (a missing --shape): said as they are
            raise
        except Exception as exc:  # noqa: BLE001 - said with the op where the library names one
            raise self.explain(exc, src, fmt) from None
        if not dst.exists():
            raise ConversionError(src, "litert_torch.convert finished without writing a model", converter=self.name)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The library's native log lines (MLIR, absl) go to a log file, not over the job's messages."""
    import sys
    import tempfile

    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
