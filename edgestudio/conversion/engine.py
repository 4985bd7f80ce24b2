"""Run a conversion plan hop by hop; every hop's output must load, be a real graph, and compute what its
parent computes (within the converter's tolerance). A "successful" converter run that fails any of these
is a failure."""

from __future__ import annotations

import dataclasses

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgestudio.backends.converters.base import CONVERTERS, ConversionError, ConvertOptions
from edgestudio.conversion.planner import ConversionPlan, Hop, plan_conversion
from edgestudio.core.errors import Cancelled, EdgeStudioError, clean_message, out_of_space
from edgestudio.core.formats import ModelFormat, detect_format, output_name
from edgestudio.core.progress import CancelToken, ProgressCallback, noop_progress
from edgestudio.core.model_files import remove_model_files


@dataclass
class StepReport:
    source: str
    target: str
    converter: str
    output: str | None  # None for an intermediate that was not kept
    seconds: float
    parity: dict[str, Any] | None
    versions: dict[str, str] = field(default_factory=dict)
    route: str | None = None  # the converter's own second route, when its first failed (said, never silent)

    def to_dict(self) -> dict[str, Any]:
        return {"from": self.source, "to": self.target, "converter": self.converter, "output": self.output,
                "seconds": round(self.seconds, 3), "parity": self.parity, "versions": self.versions,
                **({"route": self.route} if self.route else {})}


@dataclass
class ConversionReport:
    output: str
    steps: list[StepReport]
    seconds: float
    plan: ConversionPlan
    warnings: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """The weakest hop's parity verdict ("not checked" when validation was off)."""
        from edgestudio.bench.parity import NOT_CHECKED, overall

        verdicts = [s.parity["verdict"] for s in self.steps if s.parity]
        return overall(verdicts) if verdicts and len(verdicts) == len(self.steps) else NOT_CHECKED

    def to_dict(self) -> dict[str, Any]:
        return {"output": self.output, "steps": [s.to_dict() for s in self.steps], "seconds": round(self.seconds, 3),
                "verdict": self.verdict, "warnings": list(self.warnings),
                "unavailable_converters": self.plan.unavailable}




def default_output(src: Path, target: ModelFormat, folder: Path | None = None) -> Path:
    """``model.onnx`` -> ``model.xml`` beside it; never an existing path (nothing of the user's is overwritten)."""
    stem = src.stem if src.is_file() else src.name
    base = (folder or src.parent) / output_name(stem.removesuffix("_savedmodel"), target)
    candidate, n = base, 1
    while candidate.exists() or (target is ModelFormat.OPENVINO and candidate.with_suffix(".bin").exists()):
        candidate = base.with_name(f"{base.stem}-{n}{base.suffix}")
        n += 1
    return candidate


def check_output(path: Path, converter: str) -> None:
    """The converter's output must exist, be a model we can read, and have a graph."""
    from edgestudio.core.inspection import count_ops

    if not path.exists():
        raise ConversionError(path, "the converter reported success but wrote no file", converter=converter)
    try:
        fmt = detect_format(path)
        ops = count_ops(path, fmt)
    except EdgeStudioError as exc:
        raise ConversionError(path, f"the converter's output is not a valid model ({exc.cause})",
                              converter=converter) from None
    if ops == 0 and fmt is not ModelFormat.TFJS:
        raise ConversionError(path, "the converter's output has an empty graph", converter=converter)


def convert_model(src: str | Path, target: ModelFormat, *, output: str | Path | None = None,
                  options: ConvertOptions | None = None, via: list[ModelFormat] | None = None,
                  simplify: bool = False, intermediate_dir: str | Path | None = None,
                  progress: ProgressCallback = noop_progress, cancel: CancelToken | None = None) -> ConversionReport:
    """Convert ``src`` into ``target`` along the best plan, validating every hop.

    The final model goes to ``output`` (default: beside ``src``). Intermediate models go to
    ``intermediate_dir`` when given (kept, e.g. for lineage), else to a temporary folder that is removed.
    """
    src = Path(src)
    opts = dataclasses.replace(options or ConvertOptions(), chain_target=target.value)
    cancel = cancel or CancelToken()
    fmt = detect_format(src)
    plan = plan_conversion(fmt, target, via=via, simplify=simplify)
    out = Path(output) if output else default_output(src, target)
    if target is ModelFormat.OPENVINO and out.suffix != ".xml":
        raise ConversionError(out, "an OpenVINO IR output must be an .xml path (its weights go beside it as .bin)")
    t_start = time.perf_counter()
    steps: list[StepReport] = []
    warnings: list[str] = []
    tmp = None if intermediate_dir else tempfile.mkdtemp(prefix="edgestudio-convert-")
    inter = Path(intermediate_dir or tmp or ".")
    try:
        current, current_fmt = src, fmt
        carry: dict[str, Any] = {}  # the samples the last hop was checked on, as its result takes them
        stem = src.stem if src.is_file() else src.name
        n = len(plan.hops)
        for i, hop in enumerate(plan.hops):
            try:
                parent = current
                current, current_fmt = _run_hop(
                    i, n, hop, current, current_fmt, out if i == n - 1 else None, inter, stem, opts, steps,
                    warnings, progress, cancel, carry)
                if i < n - 1 and (opts.inputs.get("outputs") or opts.inputs.get("shapes")):
                    from edgestudio.bench.parity import follow_model  # renamed outputs, shapes now fixed

                    opts = dataclasses.replace(opts, inputs=follow_model(opts.inputs, parent, current))
            except ConversionError as exc:
                remove_model_files(out)  # a failed conversion leaves no output behind
                if n > 1 or exc.path != str(src):  # name the user's model and the step, not a temp file
                    exc = ConversionError(src, f"step {i + 1}/{n} ({hop.source.value} -> {hop.target.value}): "
                                               f"{exc.cause}", converter=exc.converter, op=exc.op, node=exc.node,
                                          hint=exc.hint)
                raise exc from None
            except BaseException:
                remove_model_files(out)
                raise
        progress(1.0, "done")
        if tmp:  # intermediates were temporary: do not point at files that are gone
            for step in steps[:-1]:
                step.output = None
        return ConversionReport(str(out), steps, time.perf_counter() - t_start, plan, warnings)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)




def _also_check(i: int, hop: Hop, cls: Any, current: Path, dst: Path, parity: dict[str, Any],
                report: Any, check_kw: dict[str, Any], warnings: list[str], hop_progress: ProgressCallback,
                cancel: CancelToken) -> None:
    """Run the result where it will be deployed too (``also_check_on``: a TF.js model in the browser), with the
    same inputs and criteria as the main check; a runtime this machine lacks is a warning, never a silent skip."""
    from edgestudio.backends.runtimes import RUNTIMES
    from edgestudio.bench.parity import FAILED, compare_models

    for name in getattr(cls, "also_check_on", ()):
        cancel.check()
        missing = RUNTIMES.get(name).missing_packages()
        if missing:
            warnings.append(f"step {i + 1} ({hop.source.value} -> {hop.target.value}): not run on {name} "
                            f"({', '.join(missing)})")
            continue
        hop_progress(0.92, f"running the result on {name}")
        extra = compare_models(current, dst, **check_kw, child_runtime=name)
        parity.setdefault("also", {})[name] = extra.to_dict()
        if extra.verdict == FAILED:
            raise ConversionError(dst, f"the result runs on {report.child_runtime} but not the same on {name}: "
                                       f"{extra.note or extra.summary()}", converter=hop.converter)


def _run_hop(i: int, n: int, hop: Hop, current: Path, current_fmt: ModelFormat, final: Path | None, inter: Path,
             stem: str, opts: ConvertOptions, steps: list[StepReport], warnings: list[str],
             progress: ProgressCallback, cancel: CancelToken, carry: dict[str, Any] | None = None
             ) -> tuple[Path, ModelFormat]:
    """Convert, check the output is a real model, and check parity against ``current``."""
    cancel.check()
    cls = CONVERTERS.get(hop.converter)
    conv = cls()
    dst = final or cls.output_path(inter, stem)
    if final is None and dst.exists():
        dst = cls.output_path(inter, f"{stem}.step{i + 1}")  # never clobber an earlier hop
    dst.parent.mkdir(parents=True, exist_ok=True)

    def hop_progress(f: float, msg: str = "", i: int = i) -> None:
        progress((i + 0.8 * max(0.0, min(f, 1.0))) / n, f"[{i + 1}/{n}] {hop.converter}: {msg}")

    hop_progress(0.0, f"{hop.source.value} -> {hop.target.value}")
    t0 = time.perf_counter()
    if current_fmt is ModelFormat.ONNX:  # every converter gets a checked graph: no cycle, nothing over the budget
        from edgestudio.core.inspection import check_onnx_file

        check_onnx_file(current)
    if current_fmt is ModelFormat.TFLITE:  # a custom op is a kernel only its app has: no converter can carry it
        from edgestudio.core.inspection import tflite_custom_ops

        from edgestudio.core.inspection import tflite_state_ops

        state = tflite_state_ops(current)
        if state:  # tf2onnx says "list index out of range", OpenVINO "Unexpected type: RESOURCE"
            raise ConversionError(current, f"it keeps state between calls in resource variables ({', '.join(state)}: "
                                           f"a streaming model), which {hop.converter} cannot convert",
                                  converter=hop.converter, op=state[0],
                                  hint="run it on LiteRT (or TFLite Micro with MicroResourceVariables), or convert "
                                       "the model it was exported from with its state as inputs and outputs")
        custom = tflite_custom_ops(current)
        if custom:
            raise ConversionError(current, f"it uses the custom op{'s' if len(custom) > 1 else ''} "
                                           f"{', '.join(custom)} (not a TFLite builtin: a kernel that ships with the "
                                           f"app that made the model), which {hop.converter} cannot convert",
                                  converter=hop.converter, op=custom[0],
                                  hint="run it on LiteRT with that kernel registered, or convert the model it was "
                                       "exported from")
    given, private = current, None
    if i == 0:  # the user's own model: the converter gets a private copy (libraries write beside their input)
        from edgestudio.core.model_files import private_copy

        private = Path(tempfile.mkdtemp(prefix="edgestudio-private-"))
        given = private_copy(current, current_fmt, private)
    try:
        conv.convert(given, current_fmt, dst, opts, progress=hop_progress, cancel=cancel)
    except (Cancelled, ConversionError):
        raise
    except EdgeStudioError as exc:
        raise ConversionError(current, exc.cause, converter=hop.converter, hint=exc.hint) from None
    except Exception as exc:  # the library's own error: make it actionable
        if out_of_space(exc, dst.parent):
            raise ConversionError(current, f"no space left on {dst.parent}", converter=hop.converter) from None
        raise conv.explain(exc, current, current_fmt) from None
    finally:
        if private is not None:
            shutil.rmtree(private, ignore_errors=True)
    seconds = time.perf_counter() - t0
    check_output(dst, hop.converter)
    parity = None
    from edgestudio.bench.parity import FAILED, INCONCLUSIVE, compare_models, smoke_run
    from edgestudio.core.inputspec import InputSpec

    inputs = InputSpec.from_dict(opts.inputs).merged(InputSpec(shapes=dict(opts.shapes or {})))
    cancel.check()
    try:
        if opts.validate:
            hop_progress(0.85, "checking parity against the parent")
            # FP16 weights are judged by cosine, unless the user set an explicit element-wise tolerance
            lossy = opts.tolerance is None and (
                (opts.compress_fp16 and hop.target is ModelFormat.OPENVINO)
                or (opts.tfjs_quantization != "none" and hop.target is ModelFormat.TFJS))
            from edgestudio.bench.parity import default_runtime, exact_tolerance

            # the converter's tolerance, raised to what the runtimes' float kernels need (unless the user set one)
            tol = opts.tolerance if opts.tolerance is not None else exact_tolerance(
                cls.tolerance, default_runtime(current_fmt), default_runtime(hop.target))
            check_kw = dict(tolerance=tol, inputs=inputs, mode="lossy" if lossy else "exact",
                            min_cosine=0.999 if lossy else None, expected_layout=conv.layout_change(opts))
            if carry and carry.get("data"):  # a later hop: the first hop's samples, in this model's names/layout
                check_kw.update(inputs=InputSpec(outputs=inputs.outputs), data=carry["data"],
                                data_source=carry["source"], samples=len(next(iter(carry["data"].values()))))
            report = compare_models(current, dst, **check_kw)
            if carry is not None:
                from edgestudio.bench.parity import carried_data

                got = carried_data(report)
                carry.update(data=got[0], source=got[1]) if got else carry.clear()
        else:  # not compared, but never called a success without running once
            hop_progress(0.85, "running the result once")
            smoke_run(dst, inputs)
            report = None
    except (EdgeStudioError, Cancelled):
        raise
    except Exception as exc:
        raise ConversionError(dst, f"the converted model does not run: {clean_message(exc)}",
                              converter=hop.converter,
                              hint="if an input needs a fixed value or shape, give --value NAME=V / --shape") from None
    if report is not None:
        parity = report.to_dict()
        if report.verdict == FAILED:
            why = report.note if report.note and report.note.startswith("the child's interface") else (
                report.summary() + (f"; {report.note}" if report.note else ""))
            raise ConversionError(dst, f"parity check failed after {hop.converter}: {why}",
                                  converter=hop.converter,
                                  hint="raise --tolerance if this precision loss is expected, choose --layout, "
                                       "or try another path with --via")
        if report.verdict == INCONCLUSIVE:
            warnings.append(f"step {i + 1} ({hop.source.value} -> {hop.target.value}): parity inconclusive: "
                            f"{report.note}")
        elif report.inputs.get("random"):
            warnings.append(f"step {i + 1} ({hop.source.value} -> {hop.target.value}): parity checked on random "
                            "inputs only; give real ones with --input for a stronger check")
        _also_check(i, hop, cls, current, dst, parity, report, check_kw, warnings, hop_progress, cancel)
    steps.append(StepReport(hop.source.value, hop.target.value, hop.converter, str(dst), seconds, parity,
                            cls.versions(), route=conv.route))
    return dst, hop.target
