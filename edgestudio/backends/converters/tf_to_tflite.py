"""Keras / SavedModel -> TFLite with TensorFlow's TFLite converter."""

from __future__ import annotations

from pathlib import Path

from edgestudio.backends.converters.base import CONVERTERS, ConversionError, Converter, ConvertOptions
from edgestudio.core.formats import ModelFormat
from edgestudio.core.progress import CancelToken, ProgressCallback


def tflite_converter(src: Path, fmt: ModelFormat):  # type: ignore[no-untyped-def]
    """A ``tf.lite.TFLiteConverter`` for a Keras file or a SavedModel folder (shared with the optimizers)."""
    from edgestudio.core.loaders import load_keras_model, quiet_tensorflow

    quiet_tensorflow()
    import tensorflow as tf

    if fmt is ModelFormat.SAVED_MODEL:
        return tf.lite.TFLiteConverter.from_saved_model(str(src))
    return tf.lite.TFLiteConverter.from_keras_model(load_keras_model(src, fmt))


@CONVERTERS.register
class TfToTflite(Converter):
    name = "tf-tflite"
    label = "tf.lite.TFLiteConverter"
    sources = frozenset({ModelFormat.KERAS, ModelFormat.KERAS_H5, ModelFormat.SAVED_MODEL})
    target = ModelFormat.TFLITE
    requires = ("tensorflow",)
    distributions = ("tensorflow-cpu", "tensorflow")
    uses = ("allow_tf_ops",)
    preference = 10
    tolerance = 1e-4

    def convert(self, src: Path, fmt: ModelFormat, dst: Path, opts: ConvertOptions, *,
                progress: ProgressCallback, cancel: CancelToken) -> None:
        import tensorflow as tf

        progress(0.1, "loading")
        conv = tflite_converter(src, fmt)
        if opts.allow_tf_ops:
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
        cancel.check()
        progress(0.4, "converting")
        data = conv.convert()
        dst.write_bytes(data)

    def explain(self, exc: BaseException, src: Path, fmt: ModelFormat) -> ConversionError:
        err = super().explain(exc, src, fmt)
        if err.op or "not supported" in str(exc):
            err.hint = "retry with --allow-tf-ops (SELECT_TF_OPS, needs the Flex delegate), or go via ONNX"
        return err
