"""Safe loading of TensorFlow-family models, shared by inspection, runtimes and converters.

Keras models load with ``safe_mode=True``: a model that needs arbitrary code (Lambda layers, pickled
functions) is refused, never executed. Heavy imports happen inside the functions.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from edgestudio.core.errors import ModelFormatError, UnsafeModelError
from edgestudio.core.formats import ModelFormat

_UNSAFE_MARKERS = ("safe_mode", "lambda", "arbitrary code", "unsafe", "deserializ")


def quiet_tensorflow() -> None:
    """Keep TensorFlow's C++ and Python logging out of the user's terminal."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # oneDNN custom ops print a banner on import and change numerics run to run; the reference stays plain.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def load_keras_model(path: str | Path, fmt: ModelFormat) -> Any:
    """Load a .keras / .h5 model without running user code; the file may have any extension."""
    quiet_tensorflow()
    import keras

    p = Path(path)
    suffix = ".keras" if fmt is ModelFormat.KERAS else ".h5"
    with tempfile.TemporaryDirectory(prefix="edgestudio-keras-") as tmp:
        target = p
        if p.suffix.lower() not in ((".keras",) if fmt is ModelFormat.KERAS else (".h5", ".hdf5")):
            # Keras chooses its loader from the extension: give it a link with the right one.
            target = Path(tmp) / ("model" + suffix)
            os.symlink(p.resolve(), target)
        try:
            from edgestudio.core.formats import native_path

            return keras.saving.load_model(native_path(target), compile=False, safe_mode=True)
        except Exception as exc:  # keras raises ValueError/TypeError/OSError/KeyError for bad files
            msg = " ".join(str(exc).split())
            low = msg.lower()
            if any(m in low for m in _UNSAFE_MARKERS) and ("lambda" in low or "safe_mode" in low):
                raise UnsafeModelError(p, "model needs arbitrary Python code to load (e.g. a Lambda layer); refused in safe mode") from None
            raise ModelFormatError(p, f"cannot load Keras model: {msg[:300]}") from None


def load_saved_model(path: str | Path) -> Any:
    """Load a SavedModel folder with tf.saved_model.load (no Python code from the model runs)."""
    quiet_tensorflow()
    import tensorflow as tf

    try:
        from edgestudio.core.formats import native_path

        return tf.saved_model.load(native_path(path))
    except Exception as exc:
        msg = " ".join(str(exc).split())
        raise ModelFormatError(path, f"cannot load SavedModel: {msg[:300]}") from None


def serving_signature(loaded: Any, path: str | Path) -> Any:
    sigs = getattr(loaded, "signatures", {}) or {}
    if "serving_default" in sigs:
        return sigs["serving_default"]
    if sigs:
        return next(iter(sigs.values()))
    raise ModelFormatError(path, "SavedModel has no serving signature")


def stub_tfjs_extras() -> None:
    """tensorflowjs imports tensorflow-decision-forests (which pins TF 2.19 and does not load on ours) and JAX
    support at import time; the SavedModel/graph-model paths use neither: register empty stand-ins first."""
    import sys
    import types

    for name in ("tensorflow_decision_forests", "tensorflowjs.converters.jax_conversion"):
        if name not in sys.modules:
            stub = types.ModuleType(name)
            stub.convert_jax = None  # type: ignore[attr-defined]
            sys.modules[name] = stub
