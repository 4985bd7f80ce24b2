"""ONNX Runtime static INT8 (QDQ) with calibration: MinMax / Entropy / Percentile, per-channel weights.

Defaults avoid the known x86 trap: activations uint8 with int8 weights (U8S8). The S8S8 default of
``quantize_static`` gained nothing on x86 here, and OpenVINO cannot compile such a model at its default
precision.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgestudio.backends.optimizers.base import OPTIMIZERS, OptimizeOptions, Optimizer, calibration_samples
from edgestudio.core.formats import ModelFormat
from edgestudio.core.progress import CancelToken, ProgressCallback


@OPTIMIZERS.register
class OrtInt8Static(Optimizer):
    method = "int8-static"
    runtime = "onnxruntime"
    sources = (ModelFormat.ONNX,)
    requires = ("onnxruntime",)
    distributions = ("onnxruntime",)
    needs_calibration = True
    description = "static INT8 (QDQ) calibrated on your samples; U8S8 by default"

    def optimize(self, src: Path, fmt: ModelFormat, dst: Path, opts: OptimizeOptions, *,
                 progress: ProgressCallback, cancel: CancelToken) -> dict[str, Any]:
        import tempfile

        from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        from edgestudio.core.inspection import inspect_model

        spec = inspect_model(src, fmt).inputs[0]
        samples, warnings = calibration_samples(opts.calibration, spec, opts.subset_size, fallback=opts.dataset)

        class Reader(CalibrationDataReader):  # type: ignore[misc]
            def __init__(self) -> None:
                self._it = iter(samples)

            def get_next(self) -> dict[str, Any] | None:
                cancel.check()
                x = next(self._it, None)
                return None if x is None else {spec.name: x}

        method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[opts.calibration_method]
        names = [n for n in opts.ignored_scope if not n.startswith("type:")]
        with tempfile.TemporaryDirectory(prefix="edgestudio-ort-q-") as tmp:
            prepared = Path(tmp) / "prepared.onnx"
            progress(0.1, "pre-processing (shape inference, folding)")
            try:
                quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
            except Exception:  # pre-processing is an improvement, not a requirement
                prepared = src
            progress(0.3, f"calibrating on {len(samples)} samples ({opts.calibration_method})")
            quantize_static(
                str(prepared), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=opts.per_channel,
                activation_type=QuantType.QUInt8 if opts.activation_type == "uint8" else QuantType.QInt8,
                weight_type=QuantType.QUInt8 if opts.weight_type == "uint8" else QuantType.QInt8,
                calibrate_method=method, nodes_to_exclude=names or None,
                op_types_to_quantize=None, extra_options={"ActivationSymmetric": opts.activation_type == "int8"})
        if opts.activation_type == "int8":
            warnings.append("S8S8 (int8 activations) brings no speed-up on x86 with ONNX Runtime; uint8 does")
        return {"warnings": warnings, "calibration_samples": len(samples)}
