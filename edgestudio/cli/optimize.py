"""``optimize`` (one method, or --auto), ``rescue`` (INT8 with the fewest layers kept in float) and ``distill``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from edgestudio.cli.common import _check_inputs, _emit, _input_spec, _option_fields, _out, run_job
from edgestudio.cli.render import _distill_text, _optimize_text, _rescue_failure, _rescue_text
from edgestudio.core.errors import UsageError


OPTIMIZE_FLAGS = "edgestudio.backends.optimizers.base:OptimizeOptions"


def _given_options(args: argparse.Namespace) -> dict[str, Any]:
    """The optimization options the user gave on the command line (generated flags default to None)."""
    return {name: getattr(args, name) for name, *_ in _option_fields(OPTIMIZE_FLAGS)
            if name != "inputs" and getattr(args, name, None) is not None}


def _optimize_options(args: argparse.Namespace) -> Any:
    from edgestudio.backends.optimizers.base import OptimizeOptions

    return OptimizeOptions(**_given_options(args), inputs=_input_spec(args).to_dict())


def _check_applies(args: argparse.Namespace, method: str, runtime: str) -> None:
    """Refuse an option the chosen method does not read (it used to be ignored silently)."""
    from edgestudio.core.catalog import COMMON_OPTIMIZE_OPTIONS, optimizer_options

    reads = set(optimizer_options(runtime, method)) | set(COMMON_OPTIMIZE_OPTIONS)
    flags = {name: meta.get("flag", "--" + name.replace("_", "-")) for name, _, _, meta in _option_fields(OPTIMIZE_FLAGS)}
    extra = [flags[n] for n in _given_options(args) if n not in reads]
    if extra:
        takes = [flags[n] for n in optimizer_options(runtime, method)]
        raise UsageError(None, f"{', '.join(extra)} {'does' if len(extra) == 1 else 'do'} not apply to {method} for "
                               f"{runtime} (its own options: {', '.join(takes) or 'none'})")


def cmd_optimize(args: argparse.Namespace) -> Any:
    from edgestudio.core.formats import ModelFormat, detect_format
    from edgestudio.core.jobs import JobKind, JobSpec

    src = Path(args.model)
    fmt = detect_format(src)
    opts = _optimize_options(args)
    _check_inputs(args, _input_spec(args))
    for data in (args.calibration, args.dataset):
        if data and data != "random" and not Path(data).exists():
            raise UsageError(None, f"{data}: no such file or folder")
    if args.auto:
        from edgestudio.execution.remote import on_agent
        from edgestudio.execution.targets import agent_name

        device = agent_name(args.env)
        spec = JobSpec(JobKind.OPTIMIZE, model=str(src), runtime=args.runtime or "any", exclusive=True,
                       options={"auto": True, "options": opts.to_dict(), "iterations": args.iterations,
                                "bench_device": on_agent("CPU", device) if device else None})
        if device:  # the candidates are made here (converters, quantizers) and measured on the device
            args.env = None
        if args.workspace:
            result = run_job(args, spec, output_name="auto")
        else:
            out = _out(args, src.parent / f"{src.stem if src.is_file() else src.name}_auto")
            spec.output = str((out / "auto").resolve())
            result = run_job(args, spec)
        result.pop("artifacts", None)
        _emit(args, result, _optimize_text)
        return result
    if not args.method:
        raise UsageError(None, "give --method (or --auto)")
    from edgestudio.backends.optimizers.base import find_optimizer
    from edgestudio.optimization.engine import default_runtime_for, optimized_name

    runtime = args.runtime or default_runtime_for(fmt)
    cls = find_optimizer(args.method, runtime)
    _check_applies(args, args.method, runtime)
    out_fmt = cls.output_format(fmt if fmt in cls.sources else cls.sources[0])
    name = optimized_name(src, args.method, runtime, out_fmt)
    spec = JobSpec(JobKind.OPTIMIZE, model=str(src), runtime=runtime,
                   options={"method": args.method, "options": opts.to_dict(), "keep_reference": bool(args.workspace)})
    if args.workspace:
        result = run_job(args, spec, output_name=_out(args, src.parent / name).name if args.output else name)
    else:
        out = _out(args, src.parent / name)
        if out_fmt is ModelFormat.OPENVINO and out.suffix != ".xml":
            raise UsageError(None, f"{out}: an OpenVINO IR output must end in .xml")
        spec.output = str(out)
        result = run_job(args, spec)
    result.pop("artifacts", None)
    _emit(args, result, _optimize_text)
    return result


def cmd_rescue(args: argparse.Namespace) -> Any:
    from edgestudio.optimization.rescue import rescue

    src = Path(args.model)
    if not src.exists():
        raise UsageError(None, f"{src}: no such file or folder")
    from edgestudio.optimization.rescue import rescue_runtime, rescue_suffix

    rescue_runtime(args.runtime)  # one that can rescue, or a one-line error naming those that can
    out = _out(args, src.parent / f"{src.stem}_int8_rescued{rescue_suffix(args.runtime)}")
    opts = _optimize_options(args)
    import contextlib

    with contextlib.redirect_stdout(sys.stderr):  # TensorFlow's exporters print to stdout: keep --json clean
        result = rescue(src, out, runtime=args.runtime, options=opts, inputs=_input_spec(args),
                        max_drop=opts.max_drop, min_cosine=opts.min_cosine or 0.999, max_steps=args.max_steps,
                        budget_s=args.budget)
    _emit(args, result, _rescue_text)
    if not result["passed"]:
        print(_rescue_failure(result), file=sys.stderr)
        raise SystemExit(1)
    return result


def cmd_distill(args: argparse.Namespace) -> Any:
    from edgestudio.core.jobs import JobKind, JobSpec

    src = Path(args.model)
    for path in (src, Path(args.data)):
        if not path.exists():
            raise UsageError(None, f"{path}: no such file or folder")
    kwargs = {"teacher": str(src.resolve()), "data": str(Path(args.data).resolve()),
              "student": str(Path(args.student).resolve()) if args.student else None, "width": args.width,
              "temperature": args.temperature, "epochs": args.epochs, "batch_size": args.batch_size,
              "dataset": str(Path(args.dataset).resolve()) if args.dataset else None}
    spec = JobSpec(JobKind.CALL, model=str(src.resolve()),
                   options={"function": "edgestudio.optimization.distill:distill", "kwargs": kwargs})
    dest = _out(args, src.parent / f"{src.stem}_student.keras")
    name = dest.name
    if args.workspace:
        result = run_job(args, spec, output_name=name)
        if args.output:
            from edgestudio.core.workspace import copy_model

            copy_model(Path(result["output"]), dest)
            result["output"] = str(dest)
    else:
        spec.output = str(dest)
        result = run_job(args, spec, record=False)
    result.pop("artifacts", None)
    _emit(args, result, _distill_text)
    return result

