"""Apache TVM as a runtime: the library a TVM compilation wrote (``model.so`` in a ``tvm.json`` folder), run by
TVM's Relax virtual machine on the CPU it was compiled for.

It runs in the ``tvm`` environment (see the catalog): the app's own process never imports TVM. Threads: TVM's own
pool, sized with ``runtime.config_threadpool`` (the same count as every other runtime unless told).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgestudio.backends.runtimes.base import RUNTIMES, DeviceInfo, Runtime, Session
from edgestudio.core.errors import EdgeStudioError
from edgestudio.core.formats import ModelFormat
from edgestudio.core.modelinfo import TensorSpec


def _outputs(out: Any) -> list[Any]:
    """The VM's answer as a list of tensors (one tensor, or a tuple of them)."""
    if hasattr(out, "numpy"):
        return [out]
    return list(out)


class TvmSession(Session):
    def __init__(self, folder: Path, threads: int | None) -> None:
        import tvm
        from tvm import relax

        doc = json.loads((folder / "tvm.json").read_text())
        if threads:
            tvm.get_global_func("runtime.config_threadpool")(1, int(threads))  # 1: big cores first
        self._vm = relax.VirtualMachine(tvm.runtime.load_module(str(folder / "model.so")), tvm.cpu())
        self._tvm = tvm
        self.runtime = "tvm"
        self.device = "CPU"
        self.inputs = [TensorSpec(t["name"], list(t["shape"]), t["dtype"]) for t in doc["inputs"]]
        self.outputs = [TensorSpec(t["name"], list(t["shape"]), t["dtype"]) for t in doc["outputs"]]
        self.precision = "f32"
        self.facts = {"target": doc.get("target"), "tuning": doc.get("tuning"), "tvm": doc.get("tvm_version")}

    def _tensors(self, feeds: dict[str, np.ndarray]) -> list[Any]:
        return [self._tvm.runtime.tensor(np.require(feeds[s.name], dtype=s.dtype, requirements="C"))  # 0-d stays 0-d
                for s in self.inputs]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = _outputs(self._vm["main"](*self._tensors(feeds)))
        return {s.name: o.numpy() for s, o in zip(self.outputs, out)}

    def bind(self, feeds: dict[str, np.ndarray]) -> Callable[[], Any]:
        args = self._tensors(feeds)
        main = self._vm["main"]
        return lambda: main(*args)


@RUNTIMES.register
class TvmRuntime(Runtime):
    name = "tvm"
    label = "Apache TVM"
    formats = frozenset({ModelFormat.TVM})
    requires = ("tvm",)

    def devices(self) -> list[DeviceInfo]:
        import tvm

        cpu = tvm.target.codegen.llvm_get_system_cpu()
        return [DeviceInfo(self.name, "CPU", f"TVM {tvm.__version__} (llvm, {cpu})")]

    def load(self, path: str | Path, *, device: str = "CPU", threads: int | None = None,
             precision: str | None = None) -> Session:
        self.check_device(device)
        folder = Path(path)
        doc = json.loads((folder / "tvm.json").read_text())
        import tvm

        here = tvm.target.codegen.llvm_get_system_cpu()
        built = (doc.get("target") or {}).get("mcpu")
        if built and built != here:  # a library built for another CPU's ISA may not run here
            raise EdgeStudioError(folder, f"compiled for a {built} CPU; this one is a {here}: compile it here")
        return TvmSession(folder, threads)
