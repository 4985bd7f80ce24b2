"""ExecuTorch as a runtime: a ``.pte`` program (PyTorch's own edge format) run by ``executorch.runtime``, its
XNNPACK-delegated parts on the CPU's XNNPACK kernels, the rest on ExecuTorch's portable ops.

It runs in the ``executorch`` environment (see the catalog): the app's own process never imports torch or
ExecuTorch. Inputs are named ``input_0``, ``input_1``... in the program's order (a .pte keeps no names).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgestudio.backends.runtimes.base import RUNTIMES, DeviceInfo, Runtime, Session
from edgestudio.core.formats import ModelFormat
from edgestudio.core.readers.executorch import load_program, method_specs

class EtSession(Session):
    def __init__(self, program: Any, device: str) -> None:
        self._method = program.load_method("forward")
        self.inputs, self.outputs = method_specs(program.metadata("forward"))
        self.runtime = "executorch"
        self.device = device
        self.precision = None

    def _args(self, feeds: dict[str, np.ndarray]) -> list[Any]:
        import torch

        return [torch.from_numpy(np.require(feeds[s.name], dtype=s.dtype, requirements=["C", "W"]))
                for s in self.inputs]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self._method.execute(self._args(feeds))
        return {s.name: np.asarray(o.detach().numpy() if hasattr(o, "detach") else o)
                for s, o in zip(self.outputs, out)}

    def bind(self, feeds: dict[str, np.ndarray]) -> Callable[[], Any]:
        args = self._args(feeds)
        method = self._method
        return lambda: method.execute(args)


@RUNTIMES.register
class ExecuTorchRuntime(Runtime):
    name = "executorch"
    label = "ExecuTorch"
    formats = frozenset({ModelFormat.PTE})
    requires = ("executorch", "torch")
    package_loader = '''
def load(model, precision=None):
    import numpy as np
    import torch
    from executorch.runtime import Runtime

    program = Runtime.get().load_program(model)
    method = program.load_method("forward")
    meta = program.metadata("forward")
    names = [f"input_{i}" for i in range(meta.num_inputs())]

    def run(feeds):
        args = [torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in names]
        return method.execute(args)[0].numpy()
    return names, run
'''

    def devices(self) -> list[DeviceInfo]:
        import importlib.metadata

        version = importlib.metadata.version("executorch")
        return [DeviceInfo(self.name, "CPU", f"ExecuTorch {version} (XNNPACK delegate, portable ops)")]

    def load(self, path: str | Path, *, device: str = "CPU", threads: int | None = None,
             precision: str | None = None) -> Session:
        device = self.check_device(device)
        return EtSession(load_program(path), device)
