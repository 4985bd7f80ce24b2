"""LiteRT full-integer INT8 with a representative dataset; float32 inputs/outputs by default (a drop-in model),
or int8/uint8 ones (``io_type``: what a microcontroller feeds it). ONNX and TFLite sources come through a
SavedModel (onnx2tf)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgestudio.backends.optimizers.base import OPTIMIZERS, OptimizeOptions, Optimizer, calibration_feeds
from edgestudio.core.formats import ModelFormat
from edgestudio.core.progress import CancelToken, ProgressCallback


@OPTIMIZERS.register
class TfliteInt8(Optimizer):
    method = "int8-static"
    runtime = "litert"
    sources = (ModelFormat.SAVED_MODEL, ModelFormat.KERAS, ModelFormat.KERAS_H5)
    requires = ("tensorflow",)
    distributions = ("tensorflow-cpu",)
    needs_calibration = True
    keeps_in_float = True
    description = "full-integer INT8 calibrated on your samples (what microcontrollers and NPUs run)"

    def optimize(self, src: Path, fmt: ModelFormat, dst: Path, opts: OptimizeOptions, *,
                 progress: ProgressCallback, cancel: CancelToken) -> dict[str, Any]:
        import tensorflow as tf

        from edgestudio.backends.optimizers._tflite import convert
        from edgestudio.core.inspection import inspect_model

        specs = inspect_model(src, fmt).inputs
        samples, warnings = calibration_feeds(opts, specs, model=src)

        def representative() -> Any:
            for feed in samples:
                cancel.check()
                yield [feed[s.name].astype("float32") if feed[s.name].dtype.kind == "f" else feed[s.name]
                       for s in specs]

        def configure(conv: Any) -> None:
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = representative
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if opts.io_type != "float":
                conv.inference_input_type = conv.inference_output_type = {"int8": tf.int8, "uint8": tf.uint8}[
                    opts.io_type]

        if opts.ignored_scope:  # mixed precision: the quantization debugger's denylist keeps those ops in float
            from edgestudio.backends.converters.tf_to_tflite import tflite_converter

            from edgestudio.backends.optimizers._tflite import denylist, still_quantized

            float_model = tflite_converter(src, fmt).convert()  # what the denylist names: its ops' output tensors
            nodes, ops = denylist(float_model, opts.ignored_scope)  # refused here when one matches nothing
            progress(0.2, f"calibrating on {len(samples)} samples; {len(opts.ignored_scope)} kept in float")
            conv = tflite_converter(src, fmt)
            configure(conv)
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=conv, debug_dataset=representative,
                debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=nodes or None,
                                                                            denylisted_ops=ops or None))
            dst.write_bytes(debugger.get_nondebug_quantized_model())
            still = still_quantized(dst, nodes, ops)
            if still:  # never silently: --ignore asked for float there
                from edgestudio.backends.optimizers.base import OptimizationError

                raise OptimizationError(None, f"--ignore: the TFLite converter still quantized {', '.join(still[:3])}"
                                              f"{' and more' if len(still) > 3 else ''}")
            return {"warnings": warnings, "calibration_samples": len(samples), "io_type": opts.io_type,
                    "kept_in_float": list(opts.ignored_scope)}
        progress(0.2, f"calibrating on {len(samples)} samples and converting to full INT8")
        convert(src, fmt, dst, configure)
        return {"warnings": warnings, "calibration_samples": len(samples), "io_type": opts.io_type}
