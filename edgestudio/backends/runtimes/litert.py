"""LiteRT (TFLite): the ``ai-edge-litert`` interpreter where it installs, else ``tf.lite.Interpreter``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgestudio.backends.runtimes.base import RUNTIMES, DeviceInfo, Runtime, Session
from edgestudio.core.formats import ModelFormat
from edgestudio.core.modelinfo import TensorSpec


def _scale(d: dict[str, Any]) -> tuple[float, int] | None:
    """(scale, zero point) of a quantized integer input/output tensor, else None."""
    if np.dtype(d["dtype"]).kind not in "iu":
        return None
    scale, zero = d.get("quantization", (0.0, 0))
    return (float(scale), int(zero)) if scale else None


def quantize(x: np.ndarray, d: dict[str, Any]) -> np.ndarray:
    """A float feed for a quantized integer input, quantized with the tensor's parameters (others unchanged)."""
    q = _scale(d)
    if q is None or np.asarray(x).dtype.kind != "f":
        return x
    info = np.iinfo(np.dtype(d["dtype"]))
    return np.clip(np.round(np.asarray(x) / q[0] + q[1]), info.min, info.max).astype(d["dtype"])


def dequantize(y: np.ndarray, d: dict[str, Any]) -> np.ndarray:
    q = _scale(d)
    return y if q is None else ((y.astype(np.float32) - q[1]) * q[0]).astype(np.float32)


class LiteRtSession(Session):
    def __init__(self, interp: Any, device: str) -> None:
        from edgestudio.core.inspection import tflite_dims

        self._interp = interp
        self._allocated_for: dict[str, tuple[int, ...]] | None = None
        self.runtime = "litert"
        self.device = device
        self._in = interp.get_input_details()
        self._out = interp.get_output_details()
        # a full-integer model's int8/uint8 inputs and outputs are offered as float32: feeds are quantized with the
        # tensor's scale and zero point, outputs dequantized, so every check compares real values
        self.inputs = [TensorSpec(d["name"], tflite_dims(d), "float32" if _scale(d) else np.dtype(d["dtype"]).name)
                       for d in self._in]
        self.outputs = [TensorSpec(d["name"], tflite_dims(d), "float32" if _scale(d) else np.dtype(d["dtype"]).name)
                        for d in self._out]
        self.precision = None

    def _set(self, feeds: dict[str, np.ndarray]) -> None:
        shapes = {d["name"]: tuple(feeds[d["name"]].shape) for d in self._in}
        if shapes != self._allocated_for:
            for d in self._in:
                if tuple(d["shape"]) != shapes[d["name"]]:
                    self._interp.resize_tensor_input(d["index"], list(shapes[d["name"]]))
            self._interp.allocate_tensors()
            self._allocated_for = shapes
        for d in self._in:
            self._interp.set_tensor(d["index"], quantize(feeds[d["name"]], d))

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._set(feeds)
        self._interp.invoke()
        return {spec.name: dequantize(self._interp.get_tensor(d["index"]), d) for spec, d in zip(self.outputs, self._out)}

    def bind(self, feeds: dict[str, np.ndarray]) -> Callable[[], Any]:
        self._set(feeds)
        return self._interp.invoke


@RUNTIMES.register
class LiteRtRuntime(Runtime):
    name = "litert"
    label = "LiteRT / TFLite"
    formats = frozenset({ModelFormat.TFLITE})
    package_loader = '''
def load(model, precision=None):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # TensorFlow's bundled interpreter will do too
        from tensorflow.lite import Interpreter

    interp = Interpreter(model_path=model)
    interp.allocate_tensors()
    ins, out = interp.get_input_details(), interp.get_output_details()[0]
    names = [d["name"] for d in ins]

    def run(feeds):
        for d in ins:
            x = feeds[d["name"]]
            if tuple(d["shape"]) != x.shape:
                interp.resize_tensor_input(d["index"], list(x.shape))
                interp.allocate_tensors()
            scale, zero = d["quantization"]
            if scale and x.dtype.kind == "f" and np.dtype(d["dtype"]).kind in "iu":  # an INT8-I/O model
                info = np.iinfo(d["dtype"])
                x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(d["dtype"])
            interp.set_tensor(d["index"], x)
        interp.invoke()
        y = interp.get_tensor(out["index"])
        scale, zero = out["quantization"]
        if scale and np.dtype(out["dtype"]).kind in "iu":
            y = ((y.astype(np.float32) - zero) * scale).astype(np.float32)
        return y
    return names, run
'''
    requires = ("ai_edge_litert",)
    output_atol = 1e-3  # XNNPACK's float kernels differ from TensorFlow's by this much on an exact conversion
    no_profiler = ("LiteRT's Python interpreter exposes no per-op profiler; profile the TFLite model with --runtime "
                   "openvino (which reads TFLite), or LiteRT's native benchmark_model tool on the device")

    @classmethod
    def missing_packages(cls) -> list[str]:
        from edgestudio.backends.registry import packages_available

        # Either LiteRT or TensorFlow's bundled interpreter will do.
        if not packages_available(("ai_edge_litert",)) or not packages_available(("tensorflow",)):
            return []
        return ["ai-edge-litert"]

    def devices(self) -> list[DeviceInfo]:
        try:
            import ai_edge_litert

            impl = f"ai-edge-litert {getattr(ai_edge_litert, '__version__', '')}".strip()
        except ImportError:  # pragma: no cover
            impl = "tf.lite.Interpreter"
        return [DeviceInfo(self.name, "CPU", f"CPU with XNNPACK ({impl})")]

    def load(self, path: str | Path, *, device: str = "CPU", threads: int | None = None,
             precision: str | None = None) -> Session:
        from edgestudio.core.inspection import tflite_interpreter

        device = self.check_device(device)
        return LiteRtSession(tflite_interpreter(path, threads), device)
