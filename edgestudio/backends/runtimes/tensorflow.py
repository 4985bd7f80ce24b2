"""TensorFlow itself, for Keras and SavedModel models: the reference the other runtimes are checked against."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgestudio.backends.runtimes.base import RUNTIMES, DeviceInfo, Runtime, Session
from edgestudio.core.formats import ModelFormat, detect_format
from edgestudio.core.loaders import quiet_tensorflow


def _tf_device(device: str) -> str:
    return "/" + device if ":" in device else f"/{device}:0"


class KerasSession(Session):
    def __init__(self, model: Any, device: str) -> None:
        import tensorflow as tf

        from edgestudio.core.inspection import keras_dims
        from edgestudio.core.modelinfo import TensorSpec

        self._model = model
        self.runtime = "tensorflow"
        self.device = device
        self.inputs = [TensorSpec(t.name, keras_dims(t.shape), str(t.dtype)) for t in model.inputs]
        self.outputs = [TensorSpec(t.name, keras_dims(t.shape), str(t.dtype)) for t in model.outputs]
        self.precision = None
        self._fn = tf.function(lambda xs: model(xs, training=False), reduce_retracing=True)

    def _call(self, feeds: dict[str, np.ndarray]) -> Any:
        import tensorflow as tf

        xs = [tf.constant(feeds[s.name]) for s in self.inputs]
        with tf.device(_tf_device(self.device)):
            return self._fn(xs if len(xs) > 1 else xs[0])

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self._call(feeds)
        values = out if isinstance(out, (list, tuple)) else [out]
        return {s.name: np.asarray(v) for s, v in zip(self.outputs, values)}

    def bind(self, feeds: dict[str, np.ndarray]) -> Callable[[], Any]:
        import tensorflow as tf

        xs = [tf.constant(feeds[s.name]) for s in self.inputs]
        arg = xs if len(xs) > 1 else xs[0]
        fn = self._fn
        return lambda: fn(arg)


class SavedModelSession(Session):
    def __init__(self, loaded: Any, sig: Any, device: str) -> None:
        from edgestudio.core.inspection import keras_dims
        from edgestudio.core.modelinfo import TensorSpec

        self._loaded, self._sig = loaded, sig
        self.runtime = "tensorflow"
        self.device = device
        in_specs = sig.structured_input_signature[1]
        self.inputs = [TensorSpec(n, keras_dims(s.shape), s.dtype.name) for n, s in sorted(in_specs.items())]
        self.outputs = [TensorSpec(n, keras_dims(s.shape), s.dtype.name)
                        for n, s in sorted(sig.structured_outputs.items())]
        self.precision = None

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import tensorflow as tf

        with tf.device(_tf_device(self.device)):
            out = self._sig(**{k: tf.constant(v) for k, v in feeds.items()})
        return {s.name: np.asarray(out[s.name]) for s in self.outputs}

    def bind(self, feeds: dict[str, np.ndarray]) -> Callable[[], Any]:
        import tensorflow as tf

        args = {k: tf.constant(v) for k, v in feeds.items()}
        sig = self._sig
        return lambda: sig(**args)


@RUNTIMES.register
class TensorFlowRuntime(Runtime):
    name = "tensorflow"
    label = "TensorFlow"
    formats = frozenset({ModelFormat.KERAS, ModelFormat.KERAS_H5, ModelFormat.SAVED_MODEL})
    requires = ("tensorflow",)

    def devices(self) -> list[DeviceInfo]:
        quiet_tensorflow()
        import tensorflow as tf

        out = []
        for d in tf.config.list_physical_devices():
            name = d.name.replace("/physical_device:", "")
            short = "CPU" if name == "CPU:0" else name
            out.append(DeviceInfo(self.name, short, f"{d.device_type} {name} (tensorflow {tf.__version__})"))
        return out

    def load(self, path: str | Path, *, device: str = "CPU", threads: int | None = None,
             precision: str | None = None) -> Session:
        quiet_tensorflow()
        import tensorflow as tf

        if threads:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(1)
            except RuntimeError:  # already initialised in this process: keep the earlier setting
                pass
        device = self.check_device(device)
        fmt = detect_format(path)
        if fmt is ModelFormat.SAVED_MODEL:
            from edgestudio.core.loaders import load_saved_model, serving_signature

            loaded = load_saved_model(path)
            return SavedModelSession(loaded, serving_signature(loaded, path), device)
        from edgestudio.core.loaders import load_keras_model

        return KerasSession(load_keras_model(path, fmt), device)
