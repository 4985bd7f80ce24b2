"""PyTorch as a runtime: TorchScript (``torch.jit.save``, .pt) and ExportedProgram (``torch.export.save``, .pt2)
files, run by PyTorch itself, the parent every conversion of them is checked against.

It runs in the ``torch`` Python environment (see the catalog): the app's own process never imports torch.
Pickled modules (``torch.save(model)``) are refused when the format is detected: unpickling runs code.
TorchScript files do not record their input shapes: give ``--shape``. A forward argument declared ``int``,
``float`` or ``bool`` is a 0-d input, passed to the model as that Python scalar (``--value sr=16000``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgestudio.backends.runtimes.base import RUNTIMES, DeviceInfo, Runtime, Session
from edgestudio.core.errors import EdgeStudioError
from edgestudio.core.formats import ModelFormat
from edgestudio.core.inspection import TorchProgram, load_torch_program
from edgestudio.core.modelinfo import TensorSpec


class TorchSession(Session):
    def __init__(self, program: TorchProgram, threads: int | None, path: str | None = None) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        self._program = program
        self._module = program.module
        self._path = path
        self.runtime = "torch"
        self.device = "CPU"
        self.inputs = program.inputs
        self.outputs = program.outputs
        self.precision = None

    def _call(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        import torch

        args = self._program.args(feeds)
        try:
            with torch.inference_mode():
                out = self._module(*args)
        except Exception as exc:
            raise self._error(exc, feeds) from None
        outs = out if isinstance(out, (list, tuple)) else [out]
        return [o.detach().numpy() if isinstance(o, torch.Tensor) else np.asarray(o) for o in outs]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self._call(feeds)
        if len(self.outputs) != len(values):  # TorchScript: the outputs are known once it ran
            self.outputs = [TensorSpec(f"output_{i}" if len(values) > 1 else "output", list(v.shape), str(v.dtype))
                            for i, v in enumerate(values)]
        return {s.name: v for s, v in zip(self.outputs, values)}

    def bind(self, feeds: dict[str, np.ndarray]) -> Callable[[], Any]:
        import torch

        args = self._program.args(feeds)
        module = self._module

        def call() -> Any:
            try:
                with torch.inference_mode():
                    return module(*args)
            except Exception as exc:
                raise self._error(exc, feeds) from None

        return call

    def _error(self, exc: Exception, feeds: dict[str, np.ndarray]) -> EdgeStudioError:
        """The model's own check failing (e.g. a sample rate it does not take), as one line."""
        return EdgeStudioError(self._path, f"PyTorch raised {last_error_line(exc)} when run on "
                                           f"{describe_feed(self.inputs, feeds)}", hint=_value_hint(self.inputs))


def last_error_line(exc: BaseException) -> str:
    """The message TorchScript puts last (``builtins.ValueError: ...``) after its serialized traceback."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[-1] if lines else type(exc).__name__
    if ":" not in text.split(" ")[0]:
        text = f"{type(exc).__name__}: {text}"
    return text.removeprefix("builtins.")[:300]


def describe_feed(inputs: list[TensorSpec], feeds: dict[str, np.ndarray]) -> str:
    parts = []
    for s in inputs:
        a = np.asarray(feeds.get(s.name))
        parts.append(f"{s.name}={a.reshape(()).item()!r}" if a.size == 1 and s.shape == [] else
                     f"{s.name} {list(a.shape)} {a.dtype}")
    return ", ".join(parts) or "no inputs"


def _value_hint(inputs: list[TensorSpec]) -> str | None:
    scalars = [s.name for s in inputs if s.shape == []]
    if not scalars:
        return "give real inputs with --input"
    return "give the value it takes with " + " ".join(f"--value {n}=V" for n in scalars)


@RUNTIMES.register
class TorchRuntime(Runtime):
    name = "torch"
    label = "PyTorch"
    formats = frozenset({ModelFormat.TORCHSCRIPT, ModelFormat.PT2})
    requires = ("torch",)

    def devices(self) -> list[DeviceInfo]:
        import torch

        return [DeviceInfo(self.name, "CPU", f"PyTorch {torch.__version__} on the CPU")]

    def load(self, path: str | Path, *, device: str = "CPU", threads: int | None = None,
             precision: str | None = None) -> Session:
        self.check_device(device)
        return TorchSession(load_torch_program(path), threads, str(path))
