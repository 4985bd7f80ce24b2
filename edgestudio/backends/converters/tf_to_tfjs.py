"""Keras / SavedModel -> TensorFlow.js graph model with ``tensorflowjs`` (4.22, installed without its pins).

tensorflowjs pins TF 2.19 through tensorflow-decision-forests and imports JAX support at import time; the
SavedModel path uses neither, so both are stubbed before the import (measured: byte-identical graph models to a
TF 2.19 run). Keras models are exported to a SavedModel first: the Keras-3 layers-model format does not load in
tfjs (an upstream bug), graph models do. Weights can be stored as float16 or uint8 (``tfjs_quantization``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from edgestudio.backends.converters.base import CONVERTERS, ConversionError, Converter, ConvertOptions
from edgestudio.core.formats import ModelFormat
from edgestudio.core.progress import CancelToken, ProgressCallback


def import_tfjs_converter() -> Any:
    """``tensorflowjs.converters.tf_saved_model_conversion_v2``, on this TensorFlow (stubs for TF-DF and JAX)."""
    from edgestudio.core.loaders import quiet_tensorflow, stub_tfjs_extras

    quiet_tensorflow()
    stub_tfjs_extras()
    from tensorflowjs.converters import tf_saved_model_conversion_v2

    return tf_saved_model_conversion_v2


@CONVERTERS.register
class TfToTfjs(Converter):
    name = "tensorflowjs"
    label = "tensorflowjs (graph model)"
    sources = frozenset({ModelFormat.KERAS, ModelFormat.KERAS_H5, ModelFormat.SAVED_MODEL})
    target = ModelFormat.TFJS
    requires = ("tensorflowjs", "tensorflow", "tensorflow_hub")
    distributions = ("tensorflowjs", "tensorflow-cpu")
    uses = ("tfjs_quantization",)
    preference = 20
    tolerance = 1e-4
    also_check_on = ("tfjs",)  # besides TensorFlow (tfjs-graph-converter): in a real browser, where it will run

    def convert(self, src: Path, fmt: ModelFormat, dst: Path, opts: ConvertOptions, *,
                progress: ProgressCallback, cancel: CancelToken) -> None:
        progress(0.05, "loading tensorflowjs")
        conv = import_tfjs_converter()
        quant = {} if opts.tfjs_quantization == "none" else (
            {"float16": True} if opts.tfjs_quantization == "float16" else {"uint8": True})
        with tempfile.TemporaryDirectory(prefix="edgestudio-tfjs-") as tmp:
            saved = src
            if fmt is not ModelFormat.SAVED_MODEL:
                from edgestudio.core.loaders import load_keras_model

                progress(0.2, "exporting the Keras model to a SavedModel")
                model = load_keras_model(src, fmt)
                saved = Path(tmp) / "saved_model"
                model.export(str(saved), verbose=False)
            cancel.check()
            progress(0.5, "converting to a TF.js graph model" + (f" ({opts.tfjs_quantization} weights)" if quant else ""))
            conv.convert_tf_saved_model(str(saved), str(dst), signature_def="serving_default", saved_model_tags="serve",
                                        quantization_dtype_map=quant or None)
        if not (dst / "model.json").is_file():
            raise ConversionError(src, "tensorflowjs finished without writing model.json", converter=self.name)
