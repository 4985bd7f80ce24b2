"""Keras (.keras / .h5) -> SavedModel with ``model.export`` (an inference-only SavedModel)."""

from __future__ import annotations

from pathlib import Path

from edgestudio.backends.converters.base import CONVERTERS, Converter, ConvertOptions
from edgestudio.core.formats import ModelFormat
from edgestudio.core.progress import CancelToken, ProgressCallback


@CONVERTERS.register
class KerasToSavedModel(Converter):
    name = "keras-export"
    label = "keras Model.export"
    sources = frozenset({ModelFormat.KERAS, ModelFormat.KERAS_H5})
    target = ModelFormat.SAVED_MODEL
    requires = ("tensorflow",)
    distributions = ("keras", "tensorflow-cpu")
    preference = 5  # Keras -> SavedModel -> IR is OpenVINO's own recommended route
    tolerance = 1e-5

    def convert(self, src: Path, fmt: ModelFormat, dst: Path, opts: ConvertOptions, *,
                progress: ProgressCallback, cancel: CancelToken) -> None:
        from edgestudio.core.loaders import load_keras_model

        progress(0.1, "loading")
        model = load_keras_model(src, fmt)
        cancel.check()
        progress(0.5, "exporting")
        model.export(str(dst), verbose=False)
