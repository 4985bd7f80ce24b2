"""PyTorch as a runtime: TorchScript (``torch.jit.save``, .pt) and ExportedProgram (``torch.export.save``, .pt2)
files, run by PyTorch itself, the parent every conversion of them is checked against.

It runs in the ``torch`` Python environment (see the catalog): the app's own process never imports torch.
Pickled modules (``torch.save(model)``) are refused when the format is detected: unpickling runs code.
TorchScript files do not record their input shapes: give ``--shape``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgestudio.backends.runtimes.base import RUNTIMES, DeviceInfo, Runtime, Session
from edgestudio.core.formats import ModelFormat
from edgestudio.core.inspection import load_torch
from edgestudio.core.modelinfo import TensorSpec


class TorchSession(Session):
    def __init__(self, module: Any, inputs: list[TensorSpec], outputs: list[TensorSpec], threads: int | None) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        self._module = module
        self.runtime = "torch"
        self.device = "CPU"
        self.inputs = inputs
        self.outputs = outputs
        self.precision = None

    def _call(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        import torch

        with torch.inference_mode():
            out = self._module(*[torch.from_numpy(np.ascontiguousarray(feeds[s.name])) for s in self.inputs])
        outs = out if isinstance(out, (list, tuple)) else [out]
        return [o.detach().numpy() for o in outs]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self._call(feeds)
        if len(self.outputs) != len(values):  # TorchScript: the outputs are known once it ran
            self.outputs = [TensorSpec(f"output_{i}" if len(values) > 1 else "output", list(v.shape), str(v.dtype))
                            for i, v in enumerate(values)]
        return {s.name: v for s, v in zip(self.outputs, values)}

    def bind(self, feeds: dict[str, np.ndarray]) -> Callable[[], Any]:
        import torch

        tensors = [torch.from_numpy(np.ascontiguousarray(feeds[s.name])) for s in self.inputs]
        module = self._module

        def call() -> Any:
            with torch.inference_mode():
                return module(*tensors)

        return call


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
        module, inputs, outputs = load_torch(path)
        return TorchSession(module, inputs, outputs, threads)
