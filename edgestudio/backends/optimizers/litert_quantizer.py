"""LiteRT Quantizer (``litert-quantizer``, formerly ai-edge-quantizer): quantizes a ``.tflite`` where it is.

A TFLite model needs no round trip (TFLite -> ONNX -> SavedModel -> TFLite) to be quantized: the quantizer reads
the flatbuffer, calibrates it with the LiteRT interpreter and writes the quantized flatbuffer. Its recipes: full
INT8 (int8 activations and weights, calibrated), dynamic-range INT8 and weight-only INT8; ``--ignore`` keeps ops
in float through a per-op ``no_quantize`` entry of the recipe (op output tensor names, or ``type:OP``).

The int8-static and int8-dynamic classes here take over the catalog keys of the TFLite-converter ones they
extend: a Keras/SavedModel model still goes through the TFLiteConverter (it sees the TF graph), a ``.tflite``
comes here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from edgestudio.backends.optimizers.base import (
    OPTIMIZERS,
    OptimizationError,
    OptimizeOptions,
    Optimizer,
    calibration_feeds,
)
from edgestudio.backends.optimizers.tflite_dynamic import TfliteDynamic
from edgestudio.backends.optimizers.tflite_int8 import TfliteInt8
from edgestudio.core.formats import ModelFormat
from edgestudio.core.progress import CancelToken, ProgressCallback

#: the signature key given to a model that has none (the quantizer calibrates and checks through signatures)
_ADDED_SIGNATURE = "edgestudio_default"
#: samples its own per-tensor check runs on (every tensor of both models is kept for each)
_CHECK_SAMPLES = 4


def quantize_tflite(src: Path, dst: Path, recipe: str, opts: OptimizeOptions, *, progress: ProgressCallback,
                    cancel: CancelToken) -> dict[str, Any]:
    """Quantize the TFLite model ``src`` into ``dst`` with LiteRT Quantizer. ``recipe``: ``static`` (int8
    activations and weights, calibrated on ``opts.calibration``), ``dynamic`` (int8 weights, activations quantized
    on the fly) or ``weights`` (int8 weights dequantized to float). ``src`` is only read."""
    from edgestudio.backends.registry import packages_available

    if packages_available(("litert_quantizer",)):
        raise OptimizationError(None, "quantizing a .tflite needs LiteRT Quantizer: pip install litert-quantizer")
    if recipe == "static" and opts.io_type == "uint8":
        raise OptimizationError(None, "--io-type uint8: LiteRT Quantizer makes int8 inputs/outputs only (use int8 or "
                                      "float, or quantize the Keras/SavedModel model with the TFLite converter)")
    from litert_quantizer import quantizer as lq
    from litert_quantizer.qtyping import QuantGranularity, TFLOperationName

    from edgestudio.backends.optimizers._tflite import denylist, still_quantized

    float_model = src.read_bytes()
    signed, key, added = _prepared(float_model)
    nodes, types = denylist(float_model, list(opts.ignored_scope))  # refused here when one matches nothing
    q = lq.Quantizer(bytearray(signed))
    granularity = QuantGranularity.CHANNELWISE if opts.per_channel else QuantGranularity.TENSORWISE
    everything = TFLOperationName.ALL_SUPPORTED
    if recipe == "static":
        q.add_static_config(".*", everything, activation_num_bits=8, weight_num_bits=8, weight_granularity=granularity)
        if opts.io_type == "float":  # a drop-in model: float inputs/outputs, QUANTIZE/DEQUANTIZE at the edges
            for io in (TFLOperationName.INPUT, TFLOperationName.OUTPUT):
                q.update_quantization_recipe(".*", io, None, algorithm_key="no_quantize")
    elif recipe == "dynamic":
        q.add_dynamic_config(".*", everything, num_bits=8, granularity=granularity)
    else:
        q.add_weight_only_config(".*", everything, num_bits=8, granularity=granularity)
    known = {o.value for o in TFLOperationName}
    for t in types:  # ops the quantizer does not know it never quantizes (still_quantized checks below)
        if t in known:
            q.update_quantization_recipe(".*", TFLOperationName(t), None, algorithm_key="no_quantize")
    for name in nodes:  # an op's scope is its output tensor names, each followed by ";"
        q.update_quantization_recipe(f"(^|;){re.escape(name)};", everything, None, algorithm_key="no_quantize")

    warnings: list[str] = []
    details: dict[str, Any] = {"quantizer": f"litert-quantizer {_version()}", "recipe": recipe}
    check_data: list[dict[str, Any]] = []
    calibration = None
    if q.need_calibration:
        from edgestudio.core.inspection import inspect_model

        specs = inspect_model(src, ModelFormat.TFLITE).inputs
        samples, warnings = calibration_feeds(opts, specs, model=src)
        to_signature = _signature_names(signed, key)
        data = [{to_signature[s.name]: _as_input(feed[s.name], s.dtype) for s in specs} for feed in samples]
        cancel.check()
        progress(0.2, f"calibrating on {len(data)} samples")
        with _quiet():  # its calibration draws a tqdm bar on stderr (the CLI and the studio show their own)
            calibration = q.calibrate({key: data}, num_threads=_threads())
        check_data = data[-_CHECK_SAMPLES:]
        details["calibration_samples"] = len(data)
        details["io_type"] = opts.io_type
    cancel.check()
    progress(0.6, f"quantizing ({recipe})")
    with _quiet():
        result = q.quantize(calibration, enable_progress_report=False)
    quantized = bytes(result.quantized_model or b"")
    if added:  # the interface of the parent: no signature the user's model did not have
        quantized = _without_signatures(quantized)
    _check_loads(quantized)
    cancel.check()
    progress(0.85, "LiteRT Quantizer's per-tensor check")
    details["tensor_check"] = _tensor_check(q, key, check_data)
    dst.write_bytes(quantized)
    still = still_quantized(dst, nodes, types)
    if still:  # never silently: --ignore asked for float there
        raise OptimizationError(None, f"--ignore: LiteRT Quantizer still quantized {', '.join(still[:3])}"
                                      f"{' and more' if len(still) > 3 else ''}")
    if opts.ignored_scope:
        details["kept_in_float"] = list(opts.ignored_scope)
    details["warnings"] = warnings
    return details


def _check_loads(model: bytes) -> None:
    """The result must load in the LiteRT interpreter (refused with the interpreter's own words if not)."""
    import warnings

    from ai_edge_litert.interpreter import Interpreter

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Interpreter(model_content=model).allocate_tensors()
    except Exception as exc:
        raise OptimizationError(None, "LiteRT Quantizer's result does not load in LiteRT: "
                                      + (" ".join(str(exc).split())[:240] or type(exc).__name__)) from None


def _version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("litert-quantizer")
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _threads() -> int:
    import os

    return max(1, min(16, os.cpu_count() or 1))


def _quiet() -> Any:
    import contextlib
    import io

    return contextlib.redirect_stderr(io.StringIO())


def _as_input(x: Any, dtype: str | None) -> Any:
    import numpy as np

    return np.asarray(x).astype(dtype or "float32", copy=False)


def _prepared(model: bytes) -> tuple[bytes, str, bool]:
    """``(model, signature key, signature added)``: what the quantizer can take. It calibrates and checks through a
    SignatureDef: a model without one (MediaPipe's) gets one over its main subgraph's inputs and outputs, named as
    its tensors. It reads an op's type from ``builtin_code`` only, which a model of an older schema leaves 0 (ADD)
    with the type in ``deprecated_builtin_code`` (MediaPipe's: every op then quantized as an ADD, and the result
    does not load): the type is written in both, as LiteRT reads it. It takes float16 weights behind a DEQUANTIZE
    for activations: those are given as the float32 constants they stand for."""
    import warnings

    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        signatures = Interpreter(model_content=model).get_signature_list()
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    m = flatbuffer_utils.read_model_from_bytearray(bytearray(model))  # buffers stored at offsets resolved
    old_codes = 0
    for code in m.operatorCodes or []:
        if code.builtinCode != max(code.builtinCode, code.deprecatedBuiltinCode):
            code.builtinCode, old_codes = max(code.builtinCode, code.deprecatedBuiltinCode), old_codes + 1
    folded = _fold_float16_weights(m, schema)
    if signatures and not folded and not old_codes:
        return model, next(iter(signatures)), False
    if not signatures:
        graph = m.subgraphs[0]

        def tensor_map(index: int) -> Any:
            t = schema.TensorMapT()
            t.name, t.tensorIndex = _decoded(graph.tensors[index].name) or f"tensor_{index}", index
            return t

        sig = schema.SignatureDefT()
        sig.signatureKey, sig.subgraphIndex = _ADDED_SIGNATURE, 0
        sig.inputs = [tensor_map(int(i)) for i in graph.inputs]
        sig.outputs = [tensor_map(int(i)) for i in graph.outputs]
        m.signatureDefs = [sig]
    key = next(iter(signatures)) if signatures else _ADDED_SIGNATURE
    return bytes(flatbuffer_utils.convert_object_to_bytearray(m)), key, not signatures


def _fold_float16_weights(m: Any, schema: Any) -> int:
    """Replace each DEQUANTIZE of a float16 constant by the float32 constant it computes; the count replaced."""
    import numpy as np

    dequantize = [i for i, c in enumerate(m.operatorCodes or [])
                  if max(c.builtinCode, c.deprecatedBuiltinCode) == schema.BuiltinOperator.DEQUANTIZE]
    folded = 0
    for graph in m.subgraphs or []:
        keep = []
        for op in graph.operators or []:
            src = graph.tensors[op.inputs[0]] if op.opcodeIndex in dequantize and len(op.inputs) == 1 else None
            data = m.buffers[src.buffer].data if src is not None and src.type == schema.TensorType.FLOAT16 else None
            if data is None or len(data) == 0:
                keep.append(op)
                continue
            buf = schema.BufferT()
            buf.data = np.frombuffer(bytes(data), "<f2").astype("<f4").view(np.uint8)
            m.buffers.append(buf)
            graph.tensors[op.outputs[0]].buffer = len(m.buffers) - 1
            folded += 1
        graph.operators = keep
    if folded:  # the float16 copies nothing reads any more would stay in the result (and be calibrated): dropped
        for gi, g in enumerate(m.subgraphs):
            read = {int(i) for op in g.operators or [] for i in (*op.inputs, *op.outputs) if int(i) >= 0}
            read |= {int(i) for i in (*g.inputs, *g.outputs)}
            dead = {i for i, t in enumerate(g.tensors) if t.type == schema.TensorType.FLOAT16 and i not in read}
            if not dead:
                continue
            new = {}
            for i in range(len(g.tensors)):
                if i not in dead:
                    new[i] = len(new)
            for i in dead:
                m.buffers[g.tensors[i].buffer].data = None  # unreferenced now: nothing written for it
            g.tensors = [t for i, t in enumerate(g.tensors) if i not in dead]
            for op in g.operators or []:
                op.inputs = [new[int(i)] if int(i) >= 0 else int(i) for i in op.inputs]
                op.outputs = [new[int(i)] if int(i) >= 0 else int(i) for i in op.outputs]
                if op.intermediates is not None and len(op.intermediates):
                    op.intermediates = [new[int(i)] for i in op.intermediates]
            g.inputs = [new[int(i)] for i in g.inputs]
            g.outputs = [new[int(i)] for i in g.outputs]
            for sig in m.signatureDefs or []:
                if sig.subgraphIndex == gi:
                    for tm in (*(sig.inputs or []), *(sig.outputs or [])):
                        tm.tensorIndex = new[int(tm.tensorIndex)]
    return folded


def _without_signatures(model: bytes) -> bytes:
    from ai_edge_litert.tools import flatbuffer_utils

    m = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    m.signatureDefs = [s for s in (m.signatureDefs or []) if _decoded(s.signatureKey) != _ADDED_SIGNATURE]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(m))


def _decoded(name: Any) -> str:
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name or "")


def _signature_names(model: bytes, key: str) -> dict[str, str]:
    """Tensor name (what the input specification names) -> the signature's name for that input."""
    import warnings

    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runner = Interpreter(model_content=model).get_signature_runner(key)
    return {d["name"]: name for name, d in runner.get_input_details().items()}


def _tensor_check(q: Any, key: str, data: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The quantizer's own side-by-side check of every tensor (SNR and cosine against the float model) on a
    few calibration samples: where in the graph the error comes from (the drift guard judges the outputs)."""
    if not data:
        return None
    from litert_quantizer.utils.validation_utils import ValidationErrorMetric as M

    import warnings

    try:
        with warnings.catch_warnings():  # LiteRT warns that keeping every tensor is for debugging: it is, here
            warnings.simplefilter("ignore")
            result = q.validate({key: data}, error_metrics=[M.SNR, M.COSINE_SIMILARITY], num_threads=_threads())
        sig = result.get_signature_comparison_result(key)
    except Exception as exc:  # a diagnostic, never the verdict: say why it is missing
        return {"error": " ".join(str(exc).split())[:200]}
    import math

    def db(m: dict[str, Any]) -> float:  # the quantizer's SNR is a power ratio
        ratio = float(m.get("snr", float("nan")))
        return round(10 * math.log10(ratio), 2) if ratio > 0 else float("nan")

    rows = [(name, db(m), float(m.get("cosine_similarity", float("nan"))))
            for name, m in {**sig.intermediate_tensors, **sig.output_tensors}.items()]
    rows = [r for r in rows if r[1] == r[1]]  # NaN: a constant or empty tensor
    rows.sort(key=lambda r: r[1])
    return {"samples": len(data), "tensors": len(rows),
            "outputs": {n: {"snr_db": db(m), "cosine": round(float(m.get("cosine_similarity", 0.0)), 6)}
                        for n, m in sig.output_tensors.items()},
            "worst": [{"tensor": n, "snr_db": round(s, 2), "cosine": round(c, 6)} for n, s, c in rows[:3]]}


@OPTIMIZERS.register
class LiteRTInt8Static(TfliteInt8):
    """Full INT8: a ``.tflite`` with LiteRT Quantizer, a TF model with the TFLite converter."""

    sources = (*TfliteInt8.sources, ModelFormat.TFLITE)
    description = ("full-integer INT8 calibrated on your samples (what microcontrollers and NPUs run); a .tflite is "
                   "quantized where it is by LiteRT Quantizer")

    def optimize(self, src: Path, fmt: ModelFormat, dst: Path, opts: OptimizeOptions, *,
                 progress: ProgressCallback, cancel: CancelToken) -> dict[str, Any]:
        if fmt is not ModelFormat.TFLITE:
            return super().optimize(src, fmt, dst, opts, progress=progress, cancel=cancel)
        return quantize_tflite(src, dst, "static", opts, progress=progress, cancel=cancel)


@OPTIMIZERS.register
class LiteRTInt8Dynamic(TfliteDynamic):
    """Dynamic-range INT8: a ``.tflite`` with LiteRT Quantizer, a TF model with the TFLite converter."""

    sources = (*TfliteDynamic.sources, ModelFormat.TFLITE)
    keeps_in_float = True  # a .tflite only: the TFLite converter's dynamic range has no denylist
    description = ("dynamic-range INT8: a quarter of the size, no calibration data; a .tflite is quantized where it "
                   "is by LiteRT Quantizer")

    def optimize(self, src: Path, fmt: ModelFormat, dst: Path, opts: OptimizeOptions, *,
                 progress: ProgressCallback, cancel: CancelToken) -> dict[str, Any]:
        if fmt is not ModelFormat.TFLITE:
            if opts.ignored_scope:
                raise OptimizationError(None, "--ignore: int8-dynamic keeps layers in float for a .tflite model only "
                                              "(the TFLite converter's dynamic range cannot; int8-static can)")
            return super().optimize(src, fmt, dst, opts, progress=progress, cancel=cancel)
        return quantize_tflite(src, dst, "dynamic", opts, progress=progress, cancel=cancel)


@OPTIMIZERS.register
class LiteRTWeightsInt8(Optimizer):
    """Weight-only INT8 with LiteRT Quantizer: int8 weights dequantized to float at load, float compute."""

    method = "weights-int8"
    runtime = "litert"
    sources = (ModelFormat.TFLITE,)  # a TF model is converted to FP32 TFLite first (parity-checked)
    requires = ("litert_quantizer",)
    distributions = ("litert-quantizer",)
    keeps_in_float = True
    description = "INT8 weights, float compute: a quarter of the size at nearly the FP32 accuracy (LiteRT Quantizer)"

    def optimize(self, src: Path, fmt: ModelFormat, dst: Path, opts: OptimizeOptions, *,
                 progress: ProgressCallback, cancel: CancelToken) -> dict[str, Any]:
        return quantize_tflite(src, dst, "weights", opts, progress=progress, cancel=cancel)
