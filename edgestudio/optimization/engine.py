"""Optimize a model for a runtime with one method, measuring what it cost in accuracy.

If the model is not in the format the optimizer takes, it is first converted with the conversion engine
(every hop parity-checked). With a labeled ``dataset`` the FP32 model and the result are both evaluated on
the target runtime and the result must stay within ``max_drop`` top-1 (the accuracy guard).
"""

from __future__ import annotations

import dataclasses
import os
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
from edgestudio.core.progress import CancelToken, ProgressCallback, noop_progress
from edgestudio.core.model_files import remove_model_files


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
    from edgestudio.core.catalog import optimize_runtime

    runtime = optimize_runtime(fmt.value)
    if runtime is None:
        from edgestudio.core.errors import UsageError

        raise UsageError(None, f"no runtime optimizes {fmt.label} models; convert it first or give --runtime")
    return runtime


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
    if fmt is ModelFormat.TFLITE and method.startswith("int8") or method == "fp16" and fmt is ModelFormat.TFLITE:
        from edgestudio.core.inspection import tflite_integer_only

        if tflite_integer_only(src):  # quantizers crash on such a model (SIGSEGV) or leave it as it was
            raise OptimizationError(src, f"it is already integer throughout (no float tensor left): {method} has "
                                         "nothing to do", hint="benchmark or package it as it is")
    if opts.ignored_scope and not cls.keeps_in_float:
        raise OptimizationError(src, f"--ignore: {method} for {runtime} cannot keep layers in float (int8-static "
                                     "for onnxruntime, openvino or litert can)")
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
        if work != src:  # what the user said about their model's inputs, for the converted one
            from edgestudio.bench.parity import follow_model

            opts = dataclasses.replace(opts, inputs=follow_model(dict(opts.inputs), src, work))
        if wfmt is ModelFormat.ONNX:  # no cycle, nothing over the memory budget, before a quantizer reads it
            from edgestudio.core.inspection import check_onnx_file

            check_onnx_file(work)
        out_fmt = cls.output_format(wfmt)
        out = Path(output) if output else src.parent / optimized_name(src, method, runtime, out_fmt)
        if out_fmt is ModelFormat.OPENVINO and out.suffix != ".xml":
            raise OptimizationError(out, "an OpenVINO IR output must be an .xml path")
        out.parent.mkdir(parents=True, exist_ok=True)
        cancel.check()
        progress(0.4, f"{method} for {runtime}")
        given = work
        if work == src:  # the user's own file: the library gets a private copy (it may write beside it)
            from edgestudio.core.model_files import private_copy

            given = private_copy(src, wfmt, Path(tmp) / "private")
        try:
            details = cls().optimize(given, wfmt, out, opts, progress=lambda f, m="": progress(0.4 + 0.4 * f, m),
                                     cancel=cancel)
        except EdgeStudioError as exc:
            # name the user's model, never a temporary file (a user's other file, the dataset, stays named)
            staged = exc.path is not None and (Path(exc.path) in (given, work) or Path(tmp) in Path(exc.path).parents
                                               or (keep_dir is not None and Path(keep_dir) in Path(exc.path).parents))
            if exc.path is None or staged:
                where = f" ({wfmt.label} made from it)" if work != src else ""
                raise OptimizationError(src, f"{cls.key()}{where}: {exc.cause}", hint=exc.hint) from None
            raise
        except Exception as exc:
            if type(exc).__name__ == "Cancelled":
                raise
            from edgestudio.core.errors import out_of_space

            if out_of_space(exc, out.parent):
                raise OptimizationError(src, f"no space left on {out.parent}") from None
            msg = " ".join(str(exc).split())[:300] or type(exc).__name__
            raise OptimizationError(src, f"{cls.key()} failed: {msg}") from None
        from edgestudio.conversion.engine import check_output

        check_output(out, cls.key())
        if out_fmt is not wfmt:  # e.g. Keras -> TFLite INT8: compare with the FP32 TFLite, not the Keras file
            from edgestudio.conversion.engine import convert_model, default_output

            ref_dir = Path(keep_dir) if keep_dir else Path(tmp)
            progress(0.82, f"FP32 {out_fmt.label} reference")
            from edgestudio.backends.converters.base import ConvertOptions

            from edgestudio.backends.converters.base import ConversionError

            try:
                ref = convert_model(work, out_fmt, output=default_output(work, out_fmt, ref_dir),
                                    options=ConvertOptions(inputs=calibration_as_inputs(work, opts)), cancel=cancel)
            except ConversionError as exc:  # named as the user's model, never the staged copy
                made = f" from the {wfmt.label} made from it" if work != src else ""
                raise OptimizationError(src, f"the FP32 {out_fmt.label} reference{made}: {exc.cause}",
                                        hint=exc.hint) from None
            steps += [s.to_dict() for s in ref.steps]
            from edgestudio.bench.parity import follow_model

            opts = dataclasses.replace(opts, inputs=follow_model(dict(opts.inputs), work, Path(ref.output)))
            work, wfmt = Path(ref.output), out_fmt
        warnings = list(details.pop("warnings", []) or [])
        cancel.check()
        progress(0.83, "drift check: the result against its FP32 parent")
        drift = drift_check(work, out, opts, cancel)
        details["drift"] = drift
        guarded = method not in UNGUARDED_METHODS
        if drift["verdict"] == "failed" and not guarded:  # pruning without retraining moves outputs by design
            warnings.append(f"drift vs FP32: worst output cosine {(drift.get('worst') or {}).get('cosine')} "
                            f"(pruning is judged by the accuracy guard: give --dataset)")
        elif drift["verdict"] == "failed":
            worst = drift.get("worst") or {}
            why = worst.get("reason") or f"cosine {worst.get('cosine')} < {opts.min_cosine}"
            from edgestudio.bench.tasks import TaskMetric

            task = ", ".join(TaskMetric(**m).text() for m in worst.get("task") or [])
            if task and task in why:  # the reason already is the task metric
                task = ""
            msg = (f"drift guard: output {worst.get('name')!r} against the FP32 model: {why} ("
                   + (f"as {worst.get('kind')}: {task}; " if task and worst.get("kind") else f"{task}; " if task else "")
                   + f"SNR {worst.get('snr_db')} dB; limit cosine {opts.min_cosine}) on {drift['samples']} "
                     f"{drift['data']}")
            if drift.get("note") and "interface" in drift["note"]:
                msg = f"drift guard: {drift['note']}"
            if not opts.keep_lossy:
                remove_model_files(out)
                raise OptimizationError(src, msg, hint="try another method or preset, int8-accuracy-aware, keep "
                                                       "layers in float with --ignore, or --keep-lossy to keep it")
            warnings.append(msg + " (kept: --keep-lossy)")
        elif drift["verdict"] == "inconclusive":
            warnings.append(f"drift check inconclusive: {drift.get('note')}")
        accuracy = None
        if opts.dataset:
            progress(0.88, "measuring accuracy (FP32 and optimized)")
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




def calibration_as_inputs(model: Path, opts: OptimizeOptions) -> dict[str, Any]:
    """The user's input specification for a conversion made on the way to (or beside) an optimization: with the
    calibration samples as its data when nothing else was given and they fit ``model`` as they are (they fix what
    the conversion needs fixed, dynamic dims, and are what its check runs on, instead of random data); a dataset
    in another layout is the calibration loader's to adapt, and is left out."""
    inputs = dict(opts.inputs)
    calib = opts.calibration or opts.dataset
    if inputs.get("data") or not calib or calib == "random" or Path(calib).suffix not in (".npz", ".npy") \
            or not Path(calib).is_file():
        return inputs
    from edgestudio.bench.parity import load_for_check
    from edgestudio.core.inputspec import InputSpec, make_feeds, npz_keys_are_inputs
    from edgestudio.core.safety import npz_names

    sess = load_for_check(model)
    if sess is None:
        return inputs
    one = len(sess.inputs) == 1
    if not (npz_keys_are_inputs(calib, sess.inputs) or one and (Path(calib).suffix == ".npy"
                                                                  or "x" in npz_names(Path(calib)))):
        return inputs
    with_data = InputSpec.from_dict(inputs).merged(InputSpec(data=str(Path(calib).resolve())))
    try:
        make_feeds(sess.inputs, with_data, count=1, model=model)
    except EdgeStudioError:
        return inputs
    return with_data.to_dict()


def planned_source(fmt: ModelFormat, sources: tuple[ModelFormat, ...]) -> tuple[ModelFormat, Any]:
    """The format an optimizer taking ``sources`` gets a ``fmt`` model in, and the conversion plan to it (None when it
    is one of them already): the first that has a path, as :func:`_bring_to` tries them. A ConversionError says
    why none has (what a plan shows before anything runs is what the run does)."""
    from edgestudio.backends.converters.base import ConversionError
    from edgestudio.conversion.planner import plan_conversion

    if fmt in sources:
        return fmt, None
    causes = []
    for target in sources:
        try:
            return target, plan_conversion(fmt, target)
        except ConversionError as exc:
            causes.append(exc.cause)
    raise ConversionError(None, f"no conversion path from {fmt.label} to any of "
                                f"{', '.join(s.label for s in sources)}" + (f" ({causes[0]})" if causes else ""))


def _bring_to(src: Path, fmt: ModelFormat, sources: tuple[ModelFormat, ...], folder: Path, opts: OptimizeOptions,
              progress: ProgressCallback, cancel: CancelToken) -> tuple[Path, list[dict[str, Any]], Path]:
    """The model in one of ``sources`` (converted, parity-checked, if it is not already)."""
    if fmt in sources:
        return src, [], src
    from edgestudio.backends.converters.base import ConversionError
    from edgestudio.conversion.engine import convert_model, default_output

    errors: list[tuple[ModelFormat, ConversionError]] = []
    inputs = calibration_as_inputs(src, opts)
    for target in sources:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            from edgestudio.backends.converters.base import ConvertOptions

            report = convert_model(src, target, output=default_output(src, target, folder),
                                   options=ConvertOptions(inputs=inputs),
                                   progress=lambda f, m="": progress(0.35 * f, m), cancel=cancel)
            return Path(report.output), [s.to_dict() for s in report.steps], Path(report.output)
        except ConversionError as exc:
            errors.append((target, exc))
    names = ", ".join(s.label for s in sources)
    # the real cause: a converter that ran and failed, never a planner's "no path" to a format tried after it
    tried = [(t, e) for t, e in errors if not e.cause.startswith("no conversion path")]
    target, last = (tried or errors or [(None, None)])[0]
    cause = (f"to {target.label}: {last.cause}" if target is not None and last is not None else "no converter")
    raise OptimizationError(src, f"this method needs a {names} model; converting it {cause}",
                            hint=(last.hint if last and last.hint else
                                  "pass the original Keras/SavedModel, or pick another --runtime"))


DRIFT_SAMPLES = 32
#: methods whose result is expected to move away from the FP32 outputs (the top-1 guard judges them)
UNGUARDED_METHODS = frozenset({"prune"})


def drift_check(reference: Path, optimized: Path, opts: OptimizeOptions, cancel: CancelToken | None = None) -> dict[str, Any]:
    """Compare an optimized model with its FP32 parent on held-out real samples (cosine, SNR per output).

    Data, in order: the user's ``--input``; the labeled ``--dataset``; the calibration samples after those
    used for calibration (the same ones when there are no others: said so); random data (then a pass is
    only "inconclusive": random inputs cannot speak for real ones).
    """
    from edgestudio.bench.parity import FAILED, INCONCLUSIVE, PASSED, compare_models, load_for_check
    from edgestudio.core.datasets import RANDOM, load_dataset
    from edgestudio.core.inputspec import InputSpec, npz_keys_are_inputs

    given = InputSpec.from_dict(opts.inputs)
    data = None
    what = "random inputs"
    same_as_calibration = False
    inputs = given
    if given.data:
        what = "samples of your --input"
        if opts.calibration and _same_file(given.data, opts.calibration):
            same_as_calibration = True
            what += " (the same ones used to calibrate: give others to see how it does on data it never saw)"
    else:
        source, offset = None, 0
        if opts.dataset and opts.dataset != RANDOM:
            source, what = opts.dataset, "held-out samples of --dataset"
        elif opts.calibration and opts.calibration != RANDOM:
            source, offset, what = opts.calibration, opts.subset_size, "held-out calibration samples"
        if source is not None:
            sess = load_for_check(reference)
            specs = sess.inputs
            if npz_keys_are_inputs(source, specs):
                inputs = given.merged(InputSpec(data=str(source)))
                what = "samples of " + Path(source).name
            else:
                ds = load_dataset(source, spec=specs[0])
                if offset and len(ds) < offset + 8:  # nothing held out: the calibration samples themselves
                    offset, same_as_calibration = 0, True
                    what = "calibration samples (the same ones used to calibrate: give more, or --dataset)"
                xs = list(ds.samples(specs[0], limit=offset + DRIFT_SAMPLES))[offset:]
                data = {specs[0].name: xs}
    if cancel is not None:
        cancel.check()
    report = compare_models(reference, optimized, inputs=inputs, data=data, samples=DRIFT_SAMPLES, mode="lossy",
                            min_cosine=opts.min_cosine, data_source="dataset")
    verdict = report.verdict
    note = report.note
    sources = set((report.inputs.get("sources") or {}).values())
    if verdict == PASSED and "random" in sources and sources <= {"random", "--value"}:  # no real data at all
        verdict, note = INCONCLUSIVE, ("checked on random inputs only, which cannot speak for real data: give "
                                       "--input, --dataset or real --calibration samples")
    if verdict == INCONCLUSIVE and not note:  # an output's own doubt (what a cosine cannot see) says why
        note = next((f"{o.name}: {o.reason}" for o in report.outputs if o.verdict == INCONCLUSIVE and o.reason), None)
    failed = [o for o in report.outputs if o.verdict == FAILED]
    # the output the verdict stands on: a failed one (its own reason), else the lowest cosine
    worst = failed[0] if failed else min(report.outputs, key=lambda o: o.cosine) if report.outputs else None

    def figures(o: Any) -> dict[str, Any]:
        return {"name": o.name, "cosine": round(o.cosine, 6), "mean_cosine": None if o.mean_cosine is None else
                round(o.mean_cosine, 6), "snr_db": None if o.snr_db is None else round(o.snr_db, 2),
                "verdict": o.verdict, "reason": o.reason, "worst_slice": o.worst_slice,
                "worst_slice_cosine": None if o.worst_slice_cosine is None else round(o.worst_slice_cosine, 6),
                "kind": o.kind, "task": [m.to_dict() for m in o.task]}

    return {"verdict": verdict, "min_cosine": opts.min_cosine, "samples": report.samples, "data": what,
            "same_as_calibration": same_as_calibration, "note": note,
            "outputs": [figures(o) for o in report.outputs],
            "worst": None if worst is None else figures(worst),
            "passed": verdict == PASSED if verdict != INCONCLUSIVE else None,
            "failed": verdict == FAILED}


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve() or os.path.samefile(a, b)
    except OSError:
        return False


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
