"""Optimize a model for a runtime with one method, measuring what it cost in accuracy.

If the model is not in the format the optimizer takes, it is first converted with the conversion engine
(every hop parity-checked). With a labeled ``dataset`` the FP32 model and the result are both evaluated on
the target runtime and the result must stay within ``max_drop`` top-1 (the accuracy guard).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgestudio.backends.optimizers.base import OptimizationError, OptimizeOptions, find_optimizer
from edgestudio.core.errors import EdgeStudioError
from edgestudio.core.formats import ModelFormat, detect_format
from edgestudio.core.modelinfo import model_size_bytes
from edgestudio.core.workspace import remove_model_files
from edgestudio.core.progress import CancelToken, ProgressCallback, noop_progress


@dataclass
class OptimizeReport:
    output: str
    method: str
    runtime: str
    size_before: int
    size_after: int
    seconds: float
    source_format: str
    steps: list[dict[str, Any]] = field(default_factory=list)  # conversion hops before optimizing
    accuracy: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    reference: str | None = None  # the FP32 model the optimizer started from (kept when converted)

    def to_dict(self) -> dict[str, Any]:
        return {"output": self.output, "method": self.method, "runtime": self.runtime,
                "size_bytes": {"before": self.size_before, "after": self.size_after},
                "seconds": round(self.seconds, 3), "source_format": self.source_format, "steps": self.steps,
                "accuracy": self.accuracy, "warnings": self.warnings, "details": self.details,
                "reference": self.reference}


def default_runtime_for(fmt: ModelFormat) -> str:
    return {ModelFormat.ONNX: "onnxruntime", ModelFormat.ORT: "onnxruntime", ModelFormat.OPENVINO: "openvino",
            ModelFormat.TFLITE: "litert"}.get(fmt, "litert")


def optimized_name(src: Path, method: str, runtime: str, out_fmt: ModelFormat) -> str:
    stem = src.stem if src.is_file() else src.name
    tag = method.replace("-", "_")
    suffix = out_fmt.default_suffix or ""
    name = f"{stem}_{tag}{suffix}"
    return name if out_fmt not in (ModelFormat.SAVED_MODEL,) else f"{stem}_{tag}_savedmodel"


def optimize_model(src: str | Path, method: str, *, runtime: str | None = None, output: str | Path | None = None,
                   options: OptimizeOptions | None = None, keep_dir: str | Path | None = None,
                   progress: ProgressCallback = noop_progress, cancel: CancelToken | None = None) -> OptimizeReport:
    """Optimize ``src`` with ``method`` for ``runtime``. ``keep_dir`` keeps the converted FP32 reference."""
    src = Path(src)
    opts = options or OptimizeOptions()
    cancel = cancel or CancelToken()
    fmt = detect_format(src)
    runtime = runtime or default_runtime_for(fmt)
    cls = find_optimizer(method, runtime)
    if cls.needs_labels and not opts.dataset:
        raise OptimizationError(src, f"{method} needs labeled data: --dataset DATA")
    if cls.needs_calibration and not (opts.calibration or opts.dataset):
        raise OptimizationError(src, f"{method} needs calibration data: --calibration DATA (.npz/.npy, an image "
                                     "folder, or 'random')")
    t_start = time.perf_counter()
    tmp = tempfile.mkdtemp(prefix="edgestudio-opt-")
    try:
        work, steps, reference = _bring_to(src, fmt, cls.sources, Path(keep_dir) if keep_dir else Path(tmp), opts,
                                           progress, cancel)
        wfmt = detect_format(work)
        out_fmt = cls.output_format(wfmt)
        out = Path(output) if output else src.parent / optimized_name(src, method, runtime, out_fmt)
        if out_fmt is ModelFormat.OPENVINO and out.suffix != ".xml":
            raise OptimizationError(out, "an OpenVINO IR output must be an .xml path")
        out.parent.mkdir(parents=True, exist_ok=True)
        cancel.check()
        progress(0.4, f"{method} for {runtime}")
        try:
            details = cls().optimize(work, wfmt, out, opts, progress=lambda f, m="": progress(0.4 + 0.4 * f, m),
                                     cancel=cancel)
        except EdgeStudioError as exc:
            if exc.path is None:
                raise OptimizationError(src, exc.cause, hint=exc.hint) from None
            raise
        except Exception as exc:
            if type(exc).__name__ == "Cancelled":
                raise
            msg = " ".join(str(exc).split())[:300] or type(exc).__name__
            raise OptimizationError(src, f"{cls.key()} failed: {msg}") from None
        from edgestudio.conversion.engine import _check_output

        _check_output(out, cls.key())
        if out_fmt is not wfmt:  # e.g. Keras -> TFLite INT8: compare with the FP32 TFLite, not the Keras file
            from edgestudio.conversion.engine import convert_model, default_output

            ref_dir = Path(keep_dir) if keep_dir else Path(tmp)
            progress(0.82, f"FP32 {out_fmt.label} reference")
            ref = convert_model(work, out_fmt, output=default_output(work, out_fmt, ref_dir), cancel=cancel)
            steps += [s.to_dict() for s in ref.steps]
            work, wfmt = Path(ref.output), out_fmt
        warnings = list(details.pop("warnings", []) or [])
        accuracy = None
        if opts.dataset:
            progress(0.85, "measuring accuracy (FP32 and optimized)")
            accuracy = _accuracy_guard(work, out, runtime, opts, cancel)
        report = OptimizeReport(
            output=str(out), method=method, runtime=runtime, size_before=model_size_bytes(work, wfmt),
            size_after=model_size_bytes(out, detect_format(out)), seconds=time.perf_counter() - t_start,
            source_format=fmt.value, steps=steps, accuracy=accuracy, warnings=warnings, details=details,
            reference=str(work) if keep_dir and work != src else None)
        if accuracy and not accuracy["passed"]:
            remove_model_files(out)
            raise OptimizationError(src, f"accuracy guard: top-1 fell from {accuracy['before']:.4f} to "
                                         f"{accuracy['after']:.4f} (drop {accuracy['drop']:.4f} > max "
                                         f"{opts.max_drop})", hint="try another method or preset, more "
                                                                   "calibration data, or int8-accuracy-aware")
        progress(1.0, "done")
        return report
    except BaseException:
        if output is not None:
            remove_model_files(Path(output))
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)




def _bring_to(src: Path, fmt: ModelFormat, sources: tuple[ModelFormat, ...], folder: Path, opts: OptimizeOptions,
              progress: ProgressCallback, cancel: CancelToken) -> tuple[Path, list[dict[str, Any]], Path]:
    """The model in one of ``sources`` (converted, parity-checked, if it is not already)."""
    if fmt in sources:
        return src, [], src
    from edgestudio.backends.converters.base import ConversionError
    from edgestudio.conversion.engine import convert_model, default_output

    last: ConversionError | None = None
    for target in sources:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            report = convert_model(src, target, output=default_output(src, target, folder),
                                   progress=lambda f, m="": progress(0.35 * f, m), cancel=cancel)
            return Path(report.output), [s.to_dict() for s in report.steps], Path(report.output)
        except ConversionError as exc:
            last = exc
    names = ", ".join(s.label for s in sources)
    raise OptimizationError(src, f"this method needs a {names} model and {fmt.label} cannot be converted to it"
                                 + (f" ({last.cause})" if last else ""),
                            hint="pass the original Keras/SavedModel, or pick another --runtime")


def _runtime_that_runs(path: Path, runtime: str) -> str | None:
    """``runtime`` if it runs ``path``'s format, else None (the format's own runtime)."""
    from edgestudio.backends.runtimes import RUNTIMES

    cls = RUNTIMES.all().get(runtime)
    return runtime if cls is not None and detect_format(path) in cls.formats else None


def _accuracy_guard(reference: Path, optimized: Path, runtime: str, opts: OptimizeOptions,
                    cancel: CancelToken) -> dict[str, Any]:
    from edgestudio.bench.accuracy import evaluate

    before = evaluate(reference, opts.dataset or "", runtime=_runtime_that_runs(reference, runtime), cancel=cancel)
    after = evaluate(optimized, opts.dataset or "", runtime=_runtime_that_runs(optimized, runtime), cancel=cancel)
    drop = before.top1 - after.top1
    return {"before": before.top1, "after": after.top1, "drop": drop, "max_drop": opts.max_drop,
            "passed": drop <= opts.max_drop + 1e-12, "n": after.n, "top5_after": after.top5,
            "runtime_before": before.runtime, "runtime_after": after.runtime}
