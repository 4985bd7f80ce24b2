"""Keras / SavedModel -> ONNX with tf2onnx."""

from __future__ import annotations

from pathlib import Path

from edgestudio.backends.converters.base import (
    CONVERTERS,
    ConversionError,
    Converter,
    ConvertOptions,
    rename_onnx_io,
)
from edgestudio.core.formats import ModelFormat
from edgestudio.core.progress import CancelToken, ProgressCallback

DEFAULT_OPSET = 17


@CONVERTERS.register
class TfToOnnx(Converter):
    name = "tf2onnx"
    label = "tf2onnx"
    sources = frozenset({ModelFormat.KERAS, ModelFormat.KERAS_H5, ModelFormat.SAVED_MODEL})
    target = ModelFormat.ONNX
    requires = ("tf2onnx", "tensorflow")
    distributions = ("tf2onnx", "tensorflow-cpu", "onnx")
    uses = ("opset", "shapes", "layout", "input_names", "output_names")
    preference = 20
    tolerance = 1e-4

    def layout_change(self, opts: ConvertOptions) -> str | None:
        return "nchw" if opts.layout == "nchw" else None

    def convert(self, src: Path, fmt: ModelFormat, dst: Path, opts: ConvertOptions, *,
                progress: ProgressCallback, cancel: CancelToken) -> None:
        from edgestudio.core.loaders import load_keras_model, quiet_tensorflow

        quiet_tensorflow()
        import tensorflow as tf
        import tf2onnx

        opset = opts.opset or DEFAULT_OPSET
        progress(0.1, "loading")
        if fmt is ModelFormat.SAVED_MODEL:
            from tf2onnx import tf_loader

            graph_def, inputs, outputs, renames = tf_loader.from_saved_model(
                str(src), None, None, tag="serve", signatures=["serving_default"], return_tensors_to_rename=True)
            cancel.check()
            progress(0.4, f"converting (opset {opset})")
            shape_override = {f"{k}:0" if ":" not in k else k: v for k, v in opts.shapes.items()} or None
            nchw = [i for i in inputs] if opts.layout == "nchw" else None
            tf2onnx.convert.from_graph_def(graph_def, input_names=inputs, output_names=outputs, opset=opset,
                                           tensors_to_rename=renames, shape_override=shape_override,
                                           inputs_as_nchw=nchw, output_path=str(dst))
        else:
            model = load_keras_model(src, fmt)
            specs = []
            for t in model.inputs:
                shape = list(t.shape)
                fixed = opts.shapes.get(t.name) or (opts.shapes.get("") if len(model.inputs) == 1 else None)
                if fixed:
                    shape = list(fixed)
                specs.append(tf.TensorSpec(shape, t.dtype, name=t.name))
            cancel.check()
            progress(0.4, f"converting (opset {opset})")
            nchw = [s.name for s in specs if len(s.shape) == 4] if opts.layout == "nchw" else None
            tf2onnx.convert.from_keras(model, input_signature=tuple(specs), opset=opset, inputs_as_nchw=nchw,
                                       output_path=str(dst))
        rename_onnx_io(dst, opts.input_names, opts.output_names)

    def explain(self, exc: BaseException, src: Path, fmt: ModelFormat) -> ConversionError:
        err = super().explain(exc, src, fmt)
        err.hint = "try another --opset, or convert to TFLite / OpenVINO IR directly (no ONNX hop)"
        return err
