"""OpenVINO: IR, ONNX and TFLite models on every device ``Core().available_devices`` reports."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgestudio.backends.runtimes.base import RUNTIMES, DeviceInfo, Runtime, Session
from edgestudio.core.errors import ModelFormatError
from edgestudio.core.formats import ModelFormat

_core: Any = None


def ov_core() -> Any:
    """One Core per process: creating it loads the device plugins."""
    global _core
    if _core is None:
        import openvino as ov

        _core = ov.Core()
    return _core


class OvSession(Session):
    def __init__(self, compiled: Any, device: str) -> None:
        from edgestudio.core.inspection import ov_port_spec

        self._compiled = compiled
        self._request = compiled.create_infer_request()
        self.runtime = "openvino"
        self.device = device
        self.inputs = [ov_port_spec(p, i) for i, p in enumerate(compiled.inputs)]
        self.outputs = [ov_port_spec(p, i) for i, p in enumerate(compiled.outputs)]
        try:
            hint = compiled.get_property("INFERENCE_PRECISION_HINT")
            self.precision = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
        except Exception:
            self.precision = None

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        scalars = {s.name for s in self.inputs if s.shape == []}
        if scalars:  # a one-element array for a 0-d input (np.ascontiguousarray makes 0-d arrays 1-d) is that scalar
            feeds = {k: (np.asarray(v).reshape(()) if k in scalars and np.size(v) == 1 else v)
                     for k, v in feeds.items()}
        result = self._request.infer(feeds)
        return {spec.name: np.array(result[port]) for spec, port in zip(self.outputs, self._compiled.outputs)}

    def bind(self, feeds: dict[str, np.ndarray]) -> Callable[[], Any]:
        import openvino as ov

        for name, arr in feeds.items():
            self._request.set_tensor(name, ov.Tensor(np.require(arr, requirements="C")))  # a 0-d input stays 0-d
        return self._request.infer


@RUNTIMES.register
class OpenVinoRuntime(Runtime):
    name = "openvino"
    label = "OpenVINO"
    formats = frozenset({ModelFormat.OPENVINO, ModelFormat.ONNX, ModelFormat.TFLITE})
    package_loader = '''
def load(model, precision=None):
    import openvino as ov

    config = {"PERFORMANCE_HINT": "LATENCY"}
    if precision:
        config["INFERENCE_PRECISION_HINT"] = precision
    compiled = ov.Core().compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    names = [p.get_any_name() for p in compiled.inputs]
    return names, lambda feeds: request.infer(feeds)[compiled.outputs[0]].copy()
'''
    requires = ("openvino",)

    def devices(self) -> list[DeviceInfo]:
        core = ov_core()
        out = []
        for dev in core.available_devices:
            try:
                desc = str(core.get_property(dev, "FULL_DEVICE_NAME"))
            except Exception:
                desc = dev
            out.append(DeviceInfo(self.name, dev, desc))
        return out

    def load(self, path: str | Path, *, device: str = "CPU", threads: int | None = None,
             precision: str | None = None) -> Session:
        device = self.check_device(device)
        from edgestudio.core.formats import detect_format

        if detect_format(path) is ModelFormat.ONNX:  # no cycle, nothing over the memory budget
            from edgestudio.core.inspection import check_onnx_file

            check_onnx_file(path)
        core = ov_core()
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if precision:
            # On AMX CPUs the default is bf16: "f32" is what accuracy checks want.
            config["INFERENCE_PRECISION_HINT"] = precision
        try:
            from edgestudio.core.formats import native_path

            model = core.read_model(native_path(path))
            compiled = core.compile_model(model, device, config)
        except Exception as exc:
            raise ModelFormatError(path, f"openvino cannot compile it on {device}: {' '.join(str(exc).split())[:300]}") from None
        return OvSession(compiled, device)
