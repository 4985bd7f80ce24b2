"""``inspect`` and ``convert`` (with ``--int8``: a full-integer TFLite model in one command)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edgestudio.cli.common import _check_inputs, _emit, _input_spec, _names, _other_env, _out, run_job
from edgestudio.cli.render import _convert_text, _inspect_text, _optimize_text
from edgestudio.core.errors import UsageError


def cmd_inspect(args: argparse.Namespace) -> Any:
    from edgestudio.bench.inputs import parse_shape_overrides

    shapes = parse_shape_overrides(args.shape)
    if args.workspace or args.env or _other_env(args.model):
        from edgestudio.core.jobs import JobKind, JobSpec

        info = run_job(args, JobSpec(JobKind.INSPECT, model=str(Path(args.model).resolve()),
                                     options={"shapes": shapes}))
    else:
        from edgestudio.core.inspection import inspect_model

        info = inspect_model(args.model, shapes=shapes).to_dict()
    _emit(args, info, _inspect_text)
    return info


def cmd_convert(args: argparse.Namespace) -> Any:
    from edgestudio.backends.converters.base import ConvertOptions
    from edgestudio.bench.inputs import parse_shape_overrides
    from edgestudio.conversion.engine import default_output
    from edgestudio.conversion.planner import plan_conversion
    from edgestudio.core.formats import ModelFormat, detect_format
    from edgestudio.core.jobs import JobKind, JobSpec

    try:
        target = ModelFormat.parse(args.to)
        via = [ModelFormat.parse(v) for v in args.via or []]
    except ValueError as exc:
        raise UsageError(None, str(exc)) from None
    src = Path(args.model)
    if args.tvm_trials < 0 or (args.tvm_minutes is not None and args.tvm_minutes <= 0):
        raise UsageError(None, "--tvm-trials must be >= 0 and --tvm-minutes > 0")
    if args.int8:
        return _convert_int8(args, src, target)
    plan = plan_conversion(detect_format(src), target, via=via, simplify=args.simplify)
    if args.plan:
        data = plan.to_dict()
        _emit(args, data, lambda d: plan.describe() + "".join(
            f"\n  unavailable: {k} (needs {', '.join(v)})" for k, v in plan.unavailable.items()))
        return data
    spec = _input_spec(args)
    _check_inputs(args, spec)
    opts = ConvertOptions(opset=args.opset, shapes=parse_shape_overrides(args.shape), layout=args.layout,
                          input_names=_names(args.input_names), output_names=_names(args.output_names),
                          compress_fp16=args.fp16, allow_tf_ops=args.allow_tf_ops, tolerance=args.tolerance,
                          tfjs_quantization=args.tfjs_quantization, executorch_delegate=args.executorch_delegate,
                          tvm_trials=args.tvm_trials,
                          tvm_minutes=args.tvm_minutes, validate=not args.no_validate, inputs=spec.to_dict())
    options = {"to": target.value, "via": [v.value for v in via], "simplify": args.simplify,
               "keep_intermediate": bool(args.workspace), "convert": opts.to_dict()}
    if args.workspace:
        dest = _out(args, default_output(src, target)) if args.output else None
        name = dest.name if dest else default_output(src, target, folder=Path("/nonexistent")).name
        result = run_job(args, JobSpec(JobKind.CONVERT, model=str(src), options=options), output_name=name)
        if dest is not None:  # also put a copy where the user asked for it
            from edgestudio.core.workspace import copy_model

            copy_model(Path(result["output"]), dest)
            result["output"] = str(dest)
    else:
        out = _out(args, default_output(src, target))
        result = run_job(args, JobSpec(JobKind.CONVERT, model=str(src), options=options, output=str(out)))
    result.pop("artifacts", None)
    _emit(args, result, _convert_text)
    return result


def _convert_int8(args: argparse.Namespace, src: Path, target: Any) -> dict[str, Any]:
    """``convert --to tflite --int8 --calibration DATA``: a full-integer TFLite model (what TFLite Micro runs),
    in one command: PyTorch files go to ONNX first (in the torch environment, checked against PyTorch), then
    the model is calibrated and quantized (int8-static for LiteRT: ONNX -> SavedModel -> INT8 TFLite), with the
    drift guard. With --workspace both results join the lineage."""
    from edgestudio.core.formats import ModelFormat
    from edgestudio.core.jobs import JobKind, JobSpec

    if target is not ModelFormat.TFLITE:
        raise UsageError(None, "--int8 goes with --to tflite (a full-integer TFLite model for LiteRT / TFLite Micro); "
                               "other runtimes: edgestudio optimize --method int8-static")
    if not args.calibration:
        raise UsageError(None, "--int8 needs --calibration DATA: real samples (.npz/.npy or an image folder), or "
                               "'random' for a smoke test whose accuracy is unknown")
    if args.calibration != "random" and not Path(args.calibration).exists():
        raise UsageError(None, f"{args.calibration}: no such file or folder")
    from edgestudio.app.pipelines import int8_tflite
    from edgestudio.backends.converters.base import ConvertOptions
    from edgestudio.bench.inputs import parse_shape_overrides
    from edgestudio.conversion.engine import default_output

    spec = _input_spec(args)
    _check_inputs(args, spec)
    name = f"{src.stem}_int8{'_' + args.io_type + 'io' if args.io_type and args.io_type != 'float' else ''}.tflite"
    dest = _out(args, src.parent / name) if args.output or not args.workspace else None
    onnx_folder = None if args.workspace else _out(args, src.parent / "x").parent

    def step(job: JobSpec, file_name: str) -> dict[str, Any]:
        """Each step is a job of its own (recorded in --workspace, the ONNX file in the INT8 model's lineage)."""
        last = job.kind is JobKind.OPTIMIZE
        if args.workspace:
            result = run_job(args, job, output_name=dest.name if last and dest else file_name)
            if last and dest is not None:  # also put a copy where the user asked for it
                from edgestudio.core.workspace import copy_model

                copy_model(Path(result["output"]), dest)
                result["output"] = str(dest)
            return result
        job.output = str(dest if last else default_output(src, ModelFormat.ONNX, folder=onnx_folder).resolve())
        return run_job(args, job)

    copts = ConvertOptions(opset=args.opset, shapes=parse_shape_overrides(args.shape), tolerance=args.tolerance)
    chain = int8_tflite(src, args.calibration, step, inputs=spec, io_type=args.io_type or "float", name=name,
                        onnx_name=default_output(src, ModelFormat.ONNX, folder=Path("/nonexistent")).name,
                        convert=copts, keep_intermediate=bool(args.workspace), keep_reference=bool(args.workspace))
    result, steps = chain.int8, chain.steps
    result.pop("artifacts", None)
    result["conversion"] = {"steps": steps, "warnings": chain.onnx.get("warnings", []) if chain.onnx else [],
                            "onnx": chain.onnx["output"] if chain.onnx else None}
    _emit(args, result, lambda d: "\n".join(
        [f"{s['from']:>12} -> {s['to']:<10} {s['converter']:<12} parity " + str((s.get('parity') or {}).get('summary'))
         for s in steps] + [_optimize_text(d)]))
    return result

