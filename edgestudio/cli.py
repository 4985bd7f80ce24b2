"""The headless command line over the same core as the GUI.

``edgestudio`` with no arguments starts the studio. Every subcommand takes ``--json`` (one JSON document on
stdout). Errors print one line ``error: <file>: <cause>`` on stderr and exit 1; usage errors exit 2.
Nothing heavy is imported here: runtimes load inside the commands that need them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from edgestudio import __version__
from edgestudio.core.errors import EdgeStudioError, UsageError, describe_exception, display

Handler = Callable[[argparse.Namespace], Any]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _ArgError(f"{message} (usage: {self.prog} --help)")


class _ArgError(Exception):
    """A command line argparse refused: one line, naming the model when the line has one, exit code 2."""


def _emit(args: argparse.Namespace, data: Any, text: Callable[[Any], str]) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, default=str))
    else:
        print(text(data))


def _input_spec(args: argparse.Namespace) -> Any:
    """The input specification from --input / --shape / --value (one meaning on every command)."""
    from edgestudio.core.inputspec import InputSpec

    spec = InputSpec.from_cli(getattr(args, "input", None), getattr(args, "shape", None), getattr(args, "value", None),
                              getattr(args, "output_kind", None))
    return _remembered_kinds(args, spec)


def _remembered_kinds(args: argparse.Namespace, spec: Any) -> Any:
    """With --workspace, what the model's outputs are (--output-kind) is remembered for it and its variants: given
    kinds are saved, kinds given before are used."""
    model = getattr(args, "model", None)
    if not getattr(args, "workspace", None) or not isinstance(model, str) or not Path(model).exists():
        return spec
    from edgestudio.core.errors import EdgeStudioError
    from edgestudio.core.inputspec import InputSpec

    try:
        with _open_workspace(args) as ws:
            entry = ws.model_by_path(model) or ws.import_model(model, copy=False)
            saved = ws.inputs_for(entry.id)
            kinds = {**(saved.get("outputs") or {}), **spec.outputs}
            if spec.outputs:
                ws.set_inputs(entry.id, {**saved, "outputs": kinds})
    except (EdgeStudioError, OSError):
        return spec
    return InputSpec(spec.data, spec.shapes, spec.values, kinds)


def _add_input_args(p: argparse.ArgumentParser, what: str = "the run") -> None:
    g = p.add_argument_group("inputs", f"what {what} feeds the model (the same on every command)")
    g.add_argument("--input", metavar="FILE", help=".npz keyed by input name (an array of rank+1 is a stack of "
                                                    "samples), or .npy for a single input")
    g.add_argument("--shape", action="append", metavar="NAME=1,3,224,224",
                   help="the shape of a dynamic input (repeatable; unnamed: the first input)")
    g.add_argument("--value", action="append", metavar="NAME=V", help="an input that holds a fixed value, e.g. "
                                                                      "sr=16000 (repeatable)")
    g.add_argument("--output-kind", action="append", metavar="NAME=KIND",
                   help="what an output is, for the task metrics of the checks: logits, scores, boxes, embedding, "
                        "mask, landmarks or raw (repeatable; remembered with --workspace)")


def _check_inputs(args: argparse.Namespace, spec: Any) -> None:
    """Names the model does not have are an error listing the real ones (checked before any job starts)."""
    if spec.empty:
        return
    from edgestudio.core.formats import ModelFormat, detect_format

    if detect_format(args.model) in (ModelFormat.KERAS, ModelFormat.KERAS_H5, ModelFormat.SAVED_MODEL) or \
            _other_env(args.model):
        return  # reading their inputs needs TensorFlow (or another environment's PyTorch); the job checks them
    from edgestudio.core.inspection import inspect_model

    spec.check_names(inspect_model(args.model).inputs, args.model)


# -------------------------------------------------------------------------------------------- inspect
def _fmt_shape(shape: list[Any]) -> str:
    from edgestudio.core.inputspec import format_dims

    return format_dims(shape)


def _inspect_text(d: dict[str, Any]) -> str:
    lines = [f"{d['path']}", f"  format      {d['format']}", f"  size        {d['size_bytes']:,} bytes"]
    for key in ("inputs", "outputs"):
        for t in d[key]:
            lines.append(f"  {key[:-1]:<11} {t['name']}  {_fmt_shape(t['shape'])}  {t['dtype']}")
    if d.get("parameters") is not None:
        lines.append(f"  parameters  {d['parameters']:,}")
    if d.get("macs") is not None:
        lines.append(f"  MACs        {d['macs']:,}" + (f"  (at {d['macs_at']})" if d.get("macs_at") else ""))
    elif d.get("macs_note"):
        lines.append(f"  MACs        {d['macs_note']}")
    if d.get("opset") is not None:
        lines.append(f"  opset       {d['opset']}")
    if d.get("producer"):
        lines.append(f"  producer    {d['producer']}")
    ops = sorted(d["ops"].items(), key=lambda kv: -kv[1])
    if ops:
        lines.append("  ops         " + ", ".join(f"{k} x{v}" for k, v in ops[:20]) + (" ..." if len(ops) > 20 else ""))
    return "\n".join(lines)


def _other_env(model: str) -> bool:
    """Is this model read in another Python environment (a PyTorch file: the ``torch`` environment)?"""
    from edgestudio.core.catalog import current_env, format_env
    from edgestudio.core.formats import detect_format

    return format_env(detect_format(model).value) not in ("default", current_env())


def _in_model_env(args: argparse.Namespace, model: str, function: Any, **kwargs: Any) -> Any:
    """``function(**kwargs)`` here, or as a job in the environment ``model`` is read in (a .pte: ExecuTorch's)."""
    if not _other_env(model):
        return function(**kwargs)
    from edgestudio.core.jobs import JobKind, JobSpec

    return run_job(args, JobSpec(JobKind.CALL, model=str(Path(model).resolve()), options={
        "function": f"{function.__module__}:{function.__name__}", "kwargs": kwargs}), record=False)


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


# -------------------------------------------------------------------------------------------- devices
def cmd_devices(args: argparse.Namespace) -> Any:
    """``devices``: every device the runtimes here and on the registered remote devices see; ``devices add|list|
    remove``: the remote devices (agents)."""
    from edgestudio.execution import remote

    if args.action == "add":
        if not (args.name and args.host and args.token):
            raise UsageError(None, "devices add NAME --host HOST [--port PORT] --token TOKEN")
        data: Any = remote.add_device(args.name, args.host, args.port, args.token, tls=args.tls,
                                      check=not args.no_check)
        f = data.get("facts") or {}
        _emit(args, data, lambda d: f"added {d['name']} ({d['host']}:{d['port']})" + (
            f": {f.get('cpu')}, {f.get('cores')} cores, {f.get('os')}; runtimes "
            + ", ".join(f"{k} {v}" for k, v in (f.get("runtimes") or {}).items() if k != "numpy") if f else
            " (not checked)") + f"\n  use it with --target agent:{d['name']}")
        return data
    if args.action == "remove":
        if not args.name:
            raise UsageError(None, "devices remove NAME")
        remote.remove_device(args.name)
        _emit(args, {"removed": args.name}, lambda d: f"removed {d['removed']}")
        return None
    if args.action == "list":
        data = [remote.device_health(e) for e in remote.registered_devices()]

        def text(ds: list[dict[str, Any]]) -> str:
            lines = []
            for d in ds:
                f = d["facts"]
                state = (f"online ({d['rtt_ms']} ms): {f.get('cpu')}, {f.get('cores')} cores, {f.get('machine')}, "
                         f"{(f.get('memory_bytes') or 0) / 2**30:.1f} GiB, " + ", ".join(
                             f"{k} {v}" for k, v in (f.get("runtimes") or {}).items() if k != "numpy")
                         + "".join(f", {k} {v:.0f} C" for k, v in list((f.get("temperature_c") or {}).items())[:2])
                         if d["online"] else f"OFFLINE: {d['error']}")
                lines.append(f"{d['target']:<20} {d['host']}:{d['port']:<6} {state}")
            return "\n".join(lines) or ("no remote devices (start `edgestudio agent serve` on one, then "
                                        "`edgestudio devices add NAME --host H --token T`)")

        _emit(args, data, text)
        return data
    from edgestudio.execution.envs import runtimes_to_enable

    if args.action == "missing":
        rows = runtimes_to_enable()
        _emit(args, rows, lambda rs: "\n".join(f"{r['runtime']:<12} {r['label']} needs {'; '.join(r['needs'])}"
                                                f"\n{'':<12} {r['enable']}" for r in rs)
              or "every runtime the catalog declares is usable here")
        return rows
    devices = remote.all_device_dicts()

    def listing(ds: list[dict[str, Any]]) -> str:
        lines = [f"{d['runtime']:<12} {d['device']:<16} {d['description']}" for d in ds]
        more = runtimes_to_enable()
        if more:
            lines += ["", "not enabled here (`edgestudio devices missing` for what each needs):"]
            lines += [f"{r['runtime']:<12} {r['enable']}" for r in more]
        return "\n".join(lines)

    _emit(args, devices, listing)
    return devices


def cmd_agent(args: argparse.Namespace) -> Any:
    from edgestudio.agent.server import run_from_args

    if run_from_args(args):
        raise SystemExit(1)
    return None


# ---------------------------------------------------------------------------------------------- bench
def _bench_text(d: dict[str, Any]) -> str:
    lat = d["latency_ms"]
    return (f"{d['model']} on {d['runtime']}/{d['device']}" + (f" ({d['precision']})" if d.get("precision") else "")
            + f"\n  iterations {d['iterations']}   load {d['load_ms']:.1f} ms   first inference "
            f"{d['first_inference_ms']:.2f} ms   peak RSS {d['peak_rss_mb']:.0f} MB"
            f"\n  latency ms  mean {lat['mean']:.3f}  std {lat['std']:.3f}  min {lat['min']:.3f}  p50 {lat['p50']:.3f}"
            f"  p90 {lat['p90']:.3f}  p95 {lat['p95']:.3f}  p99 {lat['p99']:.3f}  max {lat['max']:.3f}"
            + (f"\n  p50 95% CI [{d['ci_ms']['p50'][0]:.4f}, {d['ci_ms']['p50'][1]:.4f}] ms   warm-up "
               f"{d.get('warmup_runs')} runs" + (" (steady)" if d.get("steady") else " (not steady at the cap)"
                                                 if d.get("steady") is False else "")
               + f"   threads {d.get('threads')} ({d.get('threads_source')})"
               + (f"   load {d['machine']['load_average'][0]} on {d['machine']['cpu']}"
                  if (d.get("machine") or {}).get("load_average") else "") if d.get("ci_ms") else "")
            + f"\n  throughput {d['throughput_fps']:.1f} inferences/s"
            f"\n  inputs     " + ", ".join(f"{k} {v}" for k, v in (d.get("input_shapes") or {}).items())
            + (f"\n  target     {d['target'].get('browser')}: {d['target'].get('runtime')}, "
               f"{d['target'].get('threads')} threads, crossOriginIsolated {d['target'].get('crossOriginIsolated')}, "
               f"WebGPU adapter {'yes' if d['target'].get('webgpu') else 'no'}"
               if (d.get("target") or {}).get("browser") else "")
            + (_agent_text(d["agent"]) if d.get("agent") else "")
            + (f"\n  outputs    vs {d['parity_vs_native']['native_runtime']}: {d['parity_vs_native']['summary']}"
               if d.get("parity_vs_native") else ""))


def _agent_text(a: dict[str, Any]) -> str:
    on = a.get("executed_on") or {}
    return (f"\n  device     {a['device']} ({a['host']}:{a['port']}): {on.get('cpu', '?')}, {on.get('cores', '?')} "
            f"cores, {on.get('os', '')}; latencies measured on the device (model transfer {a['transfer_s']:.2f} s, "
            "not included)")


def _bounded(name: str, kind: type = int) -> Callable[[str], Any]:
    """An argparse type: a number within ``safety.LIMITS[name]`` (``--threads 100000`` is refused, not started)."""
    from edgestudio.core.safety import check_number

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {'whole ' if kind is int else ''}number: {text!r}") from None
        try:
            check_number(name, value)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(exc.cause) from None
        return value

    parse.__name__ = name
    return parse


def _int_list(text: str | None, what: str) -> list[int] | None:
    if not text:
        return None
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(None, f"{what} takes comma-separated whole numbers, e.g. 1,2,4 (got {text!r})") from None
    if not values or min(values) < 1:
        raise UsageError(None, f"{what} values must be >= 1 (got {text!r})")
    from edgestudio.core.safety import check_number

    for v in values:
        check_number(what.lstrip("-"), v)
    return values


def _throughput_text(d: dict[str, Any]) -> str:
    streams, batches = d["streams"], d["batches"]
    cell = {(c["batch"], c["streams"]): c for c in d["cells"]}
    lines = [f"{d['model']} on {d['runtime']}: throughput (samples/s), batch x streams, {d['duration_s']:g} s a cell, "
             f"{d['cores']} cores split across the streams",
             f"  {'batch':>6} " + "".join(f"{f'{s} stream' + ('s' if s > 1 else ''):>28}" for s in streams)]
    for b in batches:
        row = []
        for s in streams:
            c = cell[(b, s)]
            row.append("error" if c["error"] else f"{c['fps']:.0f} fps, p50 {c['p50_ms']:.3f} ms")
        lines.append(f"  {b:>6} " + "".join(f"{x:>28}" for x in row))
    best = d.get("best")
    if best:
        lines.append(f"best: batch {best['batch']}, {best['streams']} stream(s): {best['fps']:.0f} samples/s")
    lines += [f"  batch {c['batch']}, {c['streams']} streams: {c['error']}" for c in d["cells"] if c["error"]]
    return "\n".join(lines)


def _bench_throughput(args: argparse.Namespace) -> Any:
    from edgestudio.bench.throughput import throughput_sweep

    result = throughput_sweep(args.model, runtime=args.runtime, batches=_int_list(args.batch, "--batch"),
                              streams=_int_list(args.streams, "--streams"), duration_s=args.duration or 2.0,
                              inputs=_input_spec(args))
    _emit(args, result, _throughput_text)
    return result


def cmd_bench(args: argparse.Namespace) -> Any:
    from edgestudio.bench.latency import BenchConfig, run_benchmark
    from edgestudio.core.formats import detect_format

    if args.iterations < 1 or args.warmup < 0:
        raise UsageError(None, "--iterations must be >= 1 and --warmup >= 0")
    if args.throughput:
        return _bench_throughput(args)
    fmt = detect_format(args.model)
    runtime = args.runtime
    if runtime is None:
        from edgestudio.core.catalog import native_runtime

        runtime = native_runtime(fmt.value) if args.env else None
        if runtime is None:
            from edgestudio.backends.runtimes import runtime_for_format

            runtime = runtime_for_format(fmt)
    from edgestudio.backends.runtimes import RUNTIMES

    rt = RUNTIMES.get(runtime)  # the class: the runtime itself may be installed only in the environment
    if fmt not in rt.formats:
        raise EdgeStudioError(args.model, f"runtime {runtime} does not run {fmt.label} models "
                                          f"(it runs: {', '.join(sorted(f.value for f in rt.formats))})")
    spec = _input_spec(args)
    _check_inputs(args, spec)
    if args.browser:
        from edgestudio.backends.runtimes.ort_web import browser_device

        args.device = browser_device(runtime, args.device, args.browser)
    config = BenchConfig(runtime=runtime, device=args.device, iterations=args.iterations, warmup=args.warmup,
                         duration_s=args.duration, threads=args.threads, precision=args.precision, inputs=spec)
    if args.workspace or args.env or _other_env(args.model):
        from edgestudio.core.jobs import JobKind, JobSpec

        result = run_job(args, JobSpec(JobKind.BENCH, model=str(Path(args.model).resolve()), runtime=runtime,
                                       device=args.device, options={
            "iterations": config.iterations, "warmup": config.warmup, "duration_s": config.duration_s,
            "threads": config.threads, "inputs": spec.to_dict(), "precision": config.precision}))
        result.pop("samples_ms", None)
    else:
        result = run_benchmark(args.model, config).to_dict()
    if getattr(rt, "in_browser", False):  # the browser's answers, checked against the native runtime's
        from edgestudio.bench.parity import compare_models
        from edgestudio.core.catalog import native_runtime

        native = native_runtime(fmt.value)
        report = compare_models(args.model, args.model, inputs=spec, parent_runtime=native, child_runtime=runtime,
                                child_device=args.device)
        result["parity_vs_native"] = {"native_runtime": native, **report.to_dict()}
    _emit(args, result, _bench_text)
    return result


# -------------------------------------------------------------------------------------------- convert
def _convert_text(d: dict[str, Any]) -> str:
    lines = [f"{d['output']}  ({d['seconds']:.1f} s; parity {d.get('verdict', 'not checked')})"]
    for s in d["steps"]:
        p = s.get("parity") or {}
        check = "parity not checked (the result was run once)" if not p else f"parity {p.get('summary')}"
        lines.append(f"  {s['from']:>10} -> {s['to']:<10} {s['converter']:<12} {s['seconds']:6.2f} s   {check}")
        if s.get("route"):
            lines.append(f"  {'':>10}    {s['route']}")
        for rt, extra in (p.get("also") or {}).items():
            lines.append(f"  {'':>10}    {'':<10} {'':<12} {'':>8}   also run on {rt}: parity {extra.get('summary')}")
    return "\n".join(lines + [f"warning: {w}" for w in d.get("warnings", [])])


def _names(text: str | None) -> list[str] | None:
    return [n.strip() for n in text.split(",") if n.strip()] if text else None


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
    spec = _input_spec(args)
    _check_inputs(args, spec)
    model, steps, warnings = src, [], []
    if _other_env(str(src)):  # PyTorch: to ONNX in its environment first
        from edgestudio.backends.converters.base import ConvertOptions
        from edgestudio.bench.inputs import parse_shape_overrides
        from edgestudio.conversion.engine import default_output

        copts = ConvertOptions(opset=args.opset, shapes=parse_shape_overrides(args.shape), inputs=spec.to_dict(),
                               tolerance=args.tolerance)
        options = {"to": "onnx", "keep_intermediate": bool(args.workspace), "convert": copts.to_dict()}
        if args.workspace:
            first = run_job(args, JobSpec(JobKind.CONVERT, model=str(src), options=options),
                            output_name=default_output(src, ModelFormat.ONNX, folder=Path("/nonexistent")).name)
        else:
            out = _out(args, src.parent / "x").parent
            first = run_job(args, JobSpec(JobKind.CONVERT, model=str(src), options=options, output=str(
                default_output(src, ModelFormat.ONNX, folder=out).resolve())))
        model, steps, warnings = Path(first["output"]), list(first.get("steps", [])), list(first.get("warnings", []))
        from edgestudio.core.inputspec import InputSpec

        spec = InputSpec(data=spec.data, values=spec.values)  # the ONNX model has its shapes now (NHWC after it)
    from edgestudio.backends.optimizers.base import OptimizeOptions

    opts = OptimizeOptions(calibration=args.calibration, io_type=args.io_type or "float", inputs=spec.to_dict(),
                           keep_lossy=False)
    name = f"{src.stem}_int8{'_' + args.io_type + 'io' if args.io_type and args.io_type != 'float' else ''}.tflite"
    ospec = JobSpec(JobKind.OPTIMIZE, model=str(model), runtime="litert",
                    options={"method": "int8-static", "options": opts.to_dict(), "keep_reference": bool(args.workspace)})
    if args.workspace:
        dest = _out(args, src.parent / name) if args.output else None
        result = run_job(args, ospec, output_name=dest.name if dest else name)
        if dest is not None:
            from edgestudio.core.workspace import copy_model

            copy_model(Path(result["output"]), dest)
            result["output"] = str(dest)
    else:
        ospec.output = str(_out(args, src.parent / name))
        result = run_job(args, ospec)
    result.pop("artifacts", None)
    result["conversion"] = {"steps": steps, "warnings": warnings, "onnx": str(model) if model != src else None}
    _emit(args, result, lambda d: "\n".join(
        [f"{s['from']:>12} -> {s['to']:<10} {s['converter']:<12} parity " + str((s.get('parity') or {}).get('summary'))
         for s in steps] + [_optimize_text(d)]))
    return result


# ------------------------------------------------------------------------------- optimize, eval, compare
def _optimize_text(d: dict[str, Any]) -> str:
    if "candidates" in d:
        lines = [f"{'variant':<42}{'p50 ms':>9}{'p99 ms':>9}{'size':>10}{'accuracy':>10}  guard  pareto"]
        for r in d["candidates"]:
            p50 = f"{r['p50_ms']:.3f}" if r.get("p50_ms") is not None else "-"
            p99 = f"{r['p99_ms']:.3f}" if r.get("p99_ms") is not None else "-"
            acc = f"{r['accuracy']:.4f}" if r.get("accuracy") is not None else "-"
            size = f"{r['size_bytes'] / 1024:.0f} KB" if r.get("size_bytes") else "-"
            lines.append(f"{r['label']:<42}{p50:>9}{p99:>9}{size:>10}{acc:>10}  {'ok' if r['passed'] else 'drop':<6} "
                         f"{'*' if r['pareto'] else ''}" + (f"  ({r['error']})" if r.get("error") else ""))
        best = d.get("best")
        lines.append(f"pick: {best['label']} -> {best['path']}" if best else "no candidate passed the accuracy guard")
        if d.get("paired_final"):
            pf = d["paired_final"]
            lines.append(f"picked in a paired final round of the top {sum(1 for r in d['candidates'] if r.get('paired_rank'))}"
                         f" ({pf['blocks']} alternating blocks of {pf['block']}): " + ", ".join(
                             f"{r['label']} x{r.get('threads')} threads {r['paired_p50_ms']:.3f} ms "
                             f"[{r['paired_ci_ms'][0]:.3f}, {r['paired_ci_ms'][1]:.3f}]" + (" tie" if r.get("tied")
                                                                                              else "")
                             for r in sorted((r for r in d["candidates"] if r.get("paired_rank")),
                                             key=lambda r: r["paired_rank"])))
        if d.get("bench_device"):
            lines.append(f"latencies measured on {d['bench_device']} (the variants were made and their accuracy "
                         "checked here)")
        return "\n".join(lines + [f"warning: {w}" for w in d.get("warnings", [])])
    sb = d["size_bytes"]
    lines = [f"{d['output']}", f"  {d['method']} for {d['runtime']} in {d['seconds']:.1f} s; size {sb['before']:,} -> "
             f"{sb['after']:,} bytes ({sb['after'] / max(sb['before'], 1):.0%})"]
    drift = (d.get("details") or {}).get("drift")
    if drift:
        from edgestudio.bench.parity import output_text

        outs = "; ".join(output_text(o) for o in drift["outputs"][:4])
        lines.append(f"  drift vs FP32: {drift['verdict']} on {drift['samples']} {drift['data']}: {outs} "
                     f"(limit cosine {drift['min_cosine']})")
    if d.get("accuracy"):
        a = d["accuracy"]
        lines.append(f"  top-1 {a['before']:.4f} -> {a['after']:.4f} (drop {a['drop']:.4f}, max {a['max_drop']})")
    if d.get("details", {}).get("sparsity") is not None:
        det = d["details"]
        lines.append(f"  sparsity {det['sparsity']:.1%}; zipped {det['compressed_bytes']['before']:,} -> "
                     f"{det['compressed_bytes']['after']:,} bytes")
    return "\n".join(lines + [f"  warning: {w}" for w in d.get("warnings", [])])


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
        from edgestudio.execution.targets import agent_name

        device = agent_name(args.env)
        spec = JobSpec(JobKind.OPTIMIZE, model=str(src), runtime=args.runtime or "any", exclusive=True,
                       options={"auto": True, "options": opts.to_dict(), "iterations": args.iterations,
                                "bench_device": f"CPU@agent:{device}" if device else None})
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


def cmd_eval(args: argparse.Namespace) -> Any:
    from edgestudio.core.jobs import JobKind, JobSpec

    if args.dataset != "random" and not Path(args.dataset).exists():
        raise UsageError(None, f"{args.dataset}: no such file or folder")
    spec = _input_spec(args)
    _check_inputs(args, spec)
    result = run_job(args, JobSpec(JobKind.EVAL, model=args.model, runtime=args.runtime, device=args.device,
                                   options={"dataset": args.dataset, "limit": args.limit, "inputs": spec.to_dict()}))
    _emit(args, result, lambda d: f"{args.model} on {d['runtime']}/{d['device']}: top-1 {d['top1']:.4f}"
                                  + (f", top-5 {d['top5']:.4f}" if d.get("top5") is not None else "") + f" on {d['n']} samples")
    return result


def _compare_text(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'variant':<32}{'runtime':<12}{'device':<18}{'p50 ms':>9}{'paired p50 [95% CI]':>27}{'p99 ms':>9}"
             f"{'fps':>9}{'size':>10}{'top-1':>8}  pareto"]
    for r in rows:
        f = lambda k, fmt: fmt.format(r[k]) if r.get(k) is not None else "-"  # noqa: E731
        paired = (f"{r['paired_p50_ms']:.3f} [{r['paired_ci_ms'][0]:.3f}, {r['paired_ci_ms'][1]:.3f}]"
                  + (" tie" if r.get("tied") else "    ") if r.get("paired_p50_ms") is not None else "-")
        where = str(r.get("device") or "") + (f" x{r['threads']}" if r.get("threads") else "")
        lines.append(f"{Path(r['model']).name[:31]:<32}{r['runtime']:<12}{where[:17]:<18}"
                     f"{f('p50_ms', '{:.3f}'):>9}{paired:>27}"
                     f"{f('p99_ms', '{:.3f}'):>9}{f('throughput_fps', '{:.0f}'):>9}{r['size_bytes'] / 1024:>8.0f}KB"
                     f"{f('accuracy', '{:.4f}'):>8}  {'*' if r['pareto'] else ''}"
                     + (f"  ({r['error']})" if r.get("error") else ""))
        for warning in (r.get("flag"), r.get("noise")):  # a wrong answer or a noisy run is said, never ranked silently
            if warning:
                lines.append(f"  ! {warning}")
    if any(r.get("paired_p50_ms") is not None for r in rows):
        lines.append("ranked by the paired round (variants loaded once, timed in alternating blocks); "
                     "'tie': not slower than the row above in every block, or their intervals overlap: this "
                     "measurement cannot tell the two apart")
    return "\n".join(lines)


def _threads_arg(text: str | None) -> list[int] | None:
    """``--threads 2``, ``--threads 1,2,4`` or ``--threads all`` (1 to this machine's cores)."""
    if not text:
        return None
    if text.strip() == "all":
        from edgestudio.core.machine import default_threads

        return list(range(1, default_threads() + 1))
    try:
        counts = [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise UsageError(None, f"--threads {text}: give a count, a list (1,2,4) or 'all'") from None
    if not counts or min(counts) < 1:
        raise UsageError(None, f"--threads {text}: thread counts start at 1")
    from edgestudio.core.safety import check_number

    for c in counts:
        check_number("threads", c)
    return counts


def cmd_compare(args: argparse.Namespace) -> Any:
    from edgestudio.workers.comparison import comparison_rows
    from edgestudio.execution.targets import agent_name, executor_for
    from edgestudio.workers.manager import JobManager

    executor = executor_for(args.env, max_workers=1)
    remote = agent_name(args.env)
    devices = args.device or ["CPU"]
    device = [f"{d}@agent:{remote}" if remote else d for d in devices]  # the rows name the remote device
    ws = _open_workspace(args) if args.workspace else None
    mgr = JobManager(ws, executor)

    def parent_for(path: str) -> str | None:  # the artifact's parent in the workspace: which runtime is right
        entry = ws.model_by_path(path) if ws is not None else None
        return ws.model(entry.parent_id).path if entry is not None and entry.parent_id is not None else None

    try:
        rows = comparison_rows(mgr, args.models, args.runtime, dataset=args.dataset, device=device,
                               iterations=args.iterations, inputs=_input_spec(args).to_dict(), browser=args.browser,
                               paired=not args.no_paired, threads=_threads_arg(args.threads), parent_for=parent_for)
    finally:
        mgr.shutdown()
        if ws is not None:
            ws.close()
    _emit(args, rows, _compare_text)
    return rows


# -------------------------------------------------------------------------------------------- package
def cmd_package(args: argparse.Namespace) -> Any:
    from edgestudio.core.formats import detect_format
    from edgestudio.core.jobs import JobKind, JobSpec
    from edgestudio.packaging.deploy import default_package_runtime

    src = Path(args.model)
    fmt = detect_format(src)
    runtime = args.runtime or default_package_runtime(fmt)
    if runtime is None:
        raise EdgeStudioError(src, f"no deployment runtime runs {fmt.label} models; convert it first")
    out = _out(args, src.parent / f"{src.stem if src.is_file() else src.name}_{runtime}.zip")
    lineage = None
    if args.workspace:
        with _open_workspace(args) as ws:
            lineage = ws.lineage_records(str(src.resolve()))
    inputs = _input_spec(args)
    _check_inputs(args, inputs)
    spec = JobSpec(JobKind.PACKAGE, model=str(src), runtime=runtime, output=str(out), options={
        "dataset": args.dataset, "inputs": inputs.to_dict(), "iterations": args.iterations, "tflm": args.tflm,
        "lineage": lineage})
    result = run_job(args, spec, record=False)  # the zip goes where asked, not into the workspace
    lat = result["benchmark"]["latency_ms"]
    if runtime in ("ort-web", "tfjs"):
        chk = result["page_check"]
        _emit(args, result, lambda d: f"{d['package']}\n  {runtime}: p50 {lat['p50']:.3f} ms in {chk['browser']}; the "
              f"package's page ran in it and matched the native run ({chk['native_runtime']}, max abs diff "
              f"{chk['max_abs_diff_vs_native']:.3g})"
              f"\n  serve it with: python serve.py (sets the COOP/COEP headers wasm threads need)")
        return result
    _emit(args, result, lambda d: f"{d['package']}\n  {d['runtime']}: p50 {lat['p50']:.3f} ms"
          + (f", top-1 {d['accuracy']['top1']:.4f}" if d.get("accuracy") else "")
          + (_tflm_text(d["tflm"]) if d.get("tflm") else "")
          + f"\n  requirements: {', '.join(d['requirements'])}")
    return result


def _tflm_text(t: dict[str, Any]) -> str:
    from edgestudio.packaging import tflm

    if not t.get("arena_measured"):
        return f"\n  TFLite Micro: tflm/{t['source']}, arena ESTIMATED at {t['arena_bytes']:,} bytes (TFLM not run)"
    parts, par = t.get("arena_parts") or {}, t.get("parity") or {}
    return (f"\n  TFLite Micro: tflm/{t['source']} + main.cc; arena {t['arena_bytes']:,} bytes measured in TFLM "
            f"(head {parts.get('head', 0):,} + tail {parts.get('tail', 0):,}; 64-bit host), flash {t['flash_bytes']:,} "
            f"bytes; TFLM vs LiteRT (reference kernels) {tflm.parity_words(par)}"
            + (f"; state in {t['resource_variables']} resource variable(s)" if t.get("resource_variables") else ""))


def cmd_sweep(args: argparse.Namespace) -> Any:
    import time

    from edgestudio.bench.compare import apply_result, finalize_rows
    from edgestudio.bench.sweep import load_config, sweep_plan
    from edgestudio.core.jobs import JobStatus
    from edgestudio.execution.targets import executor_for
    from edgestudio.workers.manager import JobManager

    planned = sweep_plan(load_config(args.config))
    n_jobs = sum(len(specs) for _, specs in planned)
    if args.executor == "ray":
        executor = executor_for("ray" + (f":{args.address}" if args.address else ""), max_workers=n_jobs)
    else:
        executor = executor_for(args.env, max_workers=1)
    ws = _open_workspace(args) if args.workspace else None
    mgr = JobManager(ws, executor)
    t0 = time.perf_counter()
    show = not args.json
    try:
        submitted = [(row, [(spec.kind, mgr.submit(spec)) for spec in specs]) for row, specs in planned]
        done = 0
        for row, jobs in submitted:
            for kind, job_id in jobs:
                rec = mgr.wait(job_id)
                apply_result(row, kind, rec.status is JobStatus.SUCCEEDED, rec.result, rec.error)
                done += 1
            if show:
                print(f"[{done}/{n_jobs}] {Path(row['model']).name} {row['runtime']}/{row['device']}"
                      f" threads {row.get('threads')}: " + (f"p50 {row['p50_ms']:.3f} ms" if row.get("p50_ms")
                                                            is not None else f"failed: {row['error']}"),
                      file=sys.stderr, flush=True)
    finally:
        mgr.shutdown()
        if ws is not None:
            ws.close()
    rows = finalize_rows([row for row, _ in submitted])
    result = {"executor": args.executor + (f":{args.address}" if args.address else ""), "configs": len(rows),
              "jobs": n_jobs, "seconds": round(time.perf_counter() - t0, 2), "rows": rows}
    _emit(args, result, lambda d: _compare_text(d["rows"]) + f"\n{d['configs']} configurations ({d['jobs']} jobs) "
          f"on {d['executor']} in {d['seconds']:.1f} s")
    failed = [r for r in rows if r.get("error")]
    if failed:
        print(f"error: {display(str(args.config))}: {len(failed)} of {len(rows)} configurations failed (first: "
              f"{display(Path(failed[0]['model']).name)} {failed[0]['runtime']}/{failed[0]['device']}: "
              f"{display(str(failed[0]['error']))})", file=sys.stderr)
        raise SystemExit(1)
    return result


# ------------------------------------------------------------------------------------------ debug, profile
def _debug_text(d: dict[str, Any]) -> str:
    first, big = d.get("first_diverging"), d.get("biggest_contributor")
    head = {"agrees": "every matched layer agrees", "diverges": "the child diverges",
            "outputs agree": "the outputs agree; inside, a layer parts without reaching them",
            "inconclusive": "inconclusive"}.get(d["verdict"], d["verdict"])
    lone = d.get("unmatched") or {"parent": len(d["unmatched_parent"]), "child": len(d["unmatched_child"]),
                                  "refused": 0}
    lines = [f"{d['child']} vs {d['parent']}: {head} ({d['matched']} tensors paired: {d['matched_by_name']} by name, "
             f"{d.get('matched_by_structure', 0)} by graph structure; unmatched: {lone['parent']} of the parent's, "
             f"{lone['child']} of the child's, {lone['refused']} name pairs refused (before vs after an activation); "
             f"{d['samples']} samples)"]
    if d.get("note"):
        lines.append(f"  note: {d['note']}")

    def weighted(p: dict[str, Any]) -> str:
        own = p.get("blame_node") and p["blame_node"] != p["node"]
        return f" [weighted op: {p['blame_node']} ({p['blame_op']})]" if own else ""

    if first:
        lines.append(f"  first diverging layer: {first['node']} ({first['op']}) -> {first['parent']}: cosine "
                     f"{first['cosine']}, SNR {first['snr_db']} dB, max abs diff {first['max_abs_diff']:.4g}"
                     + weighted(first))
    if big:
        lines.append(f"  largest own error: {big['node']} ({big['op']}) -> {big['parent']}: cosine "
                     f"{big['input_cosine']} in -> {big['cosine']} out (drop {big['contribution']:.4g})"
                     + weighted(big) + "; keep it in float: --ignore " + str(big.get("blame_node") or big["node"]))
    lines.append(f"  {'#':>4} {'op':<16}{'tensor':<44}{'matched':<11}{'cosine':>10}{'own drop':>10}{'SNR dB':>9}"
                 f"{'max abs':>11}")
    for p in d["pairs"][:60]:
        snr = "inf" if p["snr_db"] is None else f"{p['snr_db']:.1f}"
        own = "-" if p.get("contribution") is None else f"{p['contribution']:.4f}"
        lines.append(f"  {p['order']:>4} {p['op'][:15]:<16}{p['parent'][-43:]:<44}{p['matched_by']:<11}"
                     f"{p['cosine'] if p['cosine'] is not None else '-':>10}{own:>10}{snr:>9}"
                     f"{p['max_abs_diff']:>11.4g}" + ("  <- diverges" if p["diverges"] else ""))
    outs = d.get("outputs")
    if outs and outs.get("outputs"):  # what the layers explain: the outputs, judged as the drift guard judges them
        from edgestudio.bench.parity import output_text

        lines.insert(1 + bool(d.get("first_diverging")) + bool(d.get("biggest_contributor")),
                     f"  outputs ({outs['verdict']}): " + "; ".join(output_text(o) for o in outs["outputs"][:4]))
    return "\n".join(lines)


def _chain_text(d: dict[str, Any]) -> str:
    n = len(d["hops"])
    lines = [f"the chain, hop by hop ({n} hop{'s' if n != 1 else ''}; verdict for the whole: {d['verdict']})"]
    for s in d["skipped"]:
        lines.append(f"  skipped {s['model']}: {s['reason']}")
    for i, h in enumerate([*d["hops"], d["whole"]] if n > 1 else d["hops"]):
        whole = i == len(d["hops"])
        first = h["first_diverging"]
        cos = "-" if h["output_cosine"] is None else f"{h['output_cosine']:.6f}"
        mark = "  <- the loss enters here" if i == d["loss_enters_at"] else ""
        lines.append(f"  {'whole' if whole else f'hop {i + 1}'}: {Path(h['parent']).name} -> {Path(h['child']).name}: "
                     f"{h['verdict']}, output cosine {cos}"
                     + (f", first diverging {first['node']} ({first['op']})" if first else "") + mark)
    if d.get("note"):
        lines.append(f"  note: {d['note']}")
    return "\n".join(lines)


def cmd_debug(args: argparse.Namespace) -> Any:
    from edgestudio.bench.layers import compare_chain, compare_layers

    if not Path(args.child).exists():
        raise UsageError(None, f"{args.child}: no such file or folder")
    if args.chain:
        if not args.workspace:
            raise UsageError(None, "--chain walks the child's lineage: give the --workspace it was made in")
        from edgestudio.core.workspace import Workspace

        ws = Workspace(args.workspace)
        try:
            entry = ws.model_by_path(args.child)
            if entry is None:
                raise UsageError(None, f"{args.child}: not in the workspace {args.workspace}")
            models = [m.path for m in ws.lineage(entry.id)]
        finally:
            ws.close()
        result = _in_model_env(args, args.child, compare_chain, models=models, inputs=_input_spec(args).to_dict(),
                               samples=args.samples)
        _emit(args, result, _chain_text)
        return result
    if not args.parent:
        raise UsageError(None, "give --parent (the model it was made from) or --chain with --workspace")
    if not Path(args.parent).exists():
        raise UsageError(None, f"{args.parent}: no such file or folder")
    result = _in_model_env(args, args.child, compare_layers, parent=args.parent, child=args.child,
                           inputs=_input_spec(args).to_dict(), samples=args.samples)
    _emit(args, result, _debug_text)
    return result


def _profile_text(d: dict[str, Any]) -> str:
    lines = [f"{d['model']} on {d['runtime']}: {d['total_layer_ms']:.3f} ms in layers (median of {d['runs']} runs)",
             f"  {'op type':<22}{'layers':>7}{'ms':>10}{'share':>8}"]
    lines += [f"  {r['op']:<22}{r['count']:>7}{r['ms']:>10.4f}{r['share']:>8.1%}" for r in d["by_op"][:12]]
    lines.append(f"  {'slowest layers':<40}{'kernel':<26}{'ms':>10}{'share':>8}")
    lines += [f"  {r['node'][-39:]:<40}{str(r['kernel'] or '')[:25]:<26}{r['ms']:>10.4f}{r['share']:>8.1%}"
              for r in d["layers"][:15]]
    return "\n".join(lines)


def cmd_profile(args: argparse.Namespace) -> Any:
    from edgestudio.bench.profile import profile_model

    result = _in_model_env(args, args.model, profile_model, path=args.model, runtime=args.runtime, runs=args.runs,
                           threads=args.threads, inputs=_input_spec(args).to_dict())
    _emit(args, result, _profile_text)
    return result


def cmd_explore(args: argparse.Namespace) -> Any:
    """`edgestudio explore MODEL [CHILD]`: Model Explorer on localhost (offline) until Ctrl-C, with --debug's and
    --profile's figures as node data; --save-node-data writes those files and serves nothing."""
    import shutil
    import signal
    import tempfile
    import time
    import webbrowser

    from edgestudio.execution.model_explorer import ExplorerServer, explorer_python, explorer_url, prepare

    if len(args.models) > 2:
        raise UsageError(None, "explore shows one model, or a parent and the child made from it: give at most two")
    for m in args.models:
        if not Path(m).exists():
            raise UsageError(None, f"{m}: no such file or folder")
    if not 0 <= args.port <= 65535:
        raise UsageError(None, f"--port takes 1-65535 (0: a free one), not {args.port}")

    def text(d: dict[str, Any]) -> str:
        lines = [f"Model Explorer: {d['url']}" if d.get("url") else f"node data for Model Explorer in {d['folder']}"]
        lines += [f"  model  {m}" for m in d["models"]]
        lines += [f"  node data  {Path(f['path']).name} -> {f['target']} ({f['nodes']} nodes)" for f in d["node_data"]]
        if (d.get("debug") or {}).get("verdict"):
            first = d["debug"].get("first_diverging")
            lines.append(f"  layers: {d['debug']['verdict']}, {d['debug']['matched']} matched"
                         + (f", first diverging: {first}" if first else ""))
        lines += [f"  note: {n}" for n in d["notes"]]
        lines.append("Ctrl-C stops it" if d.get("url") else
                     "load them with model_explorer.config().add_model_from_path(MODEL).add_node_data_from_path(FILE)")
        return "\n".join(lines)

    keep = args.save_node_data
    python = None if keep else explorer_python()  # not installed: say how, before any work
    folder = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="edgestudio-explorer-"))
    try:
        plan = prepare(list(args.models), str(folder), debug=args.debug, profile=args.profile,
                       inputs=_input_spec(args), samples=args.samples, runs=args.runs)
        if keep:
            _emit(args, plan, text)
            return plan
        server = ExplorerServer(python, port=args.port)

        def interrupted(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGINT, signal.default_int_handler)  # even where the shell started it ignoring Ctrl-C
        signal.signal(signal.SIGTERM, interrupted)  # a service manager's stop is a Ctrl-C
        result: dict[str, Any] = dict(plan)
        try:
            server.wait_ready()
            result = {**plan, "url": explorer_url(server.base_url, plan), "server": server.base_url,
                      "started_in_s": round(server.ready_after or 0.0, 2)}
            _emit(args, result, text)
            sys.stdout.flush()
            if not args.no_browser:
                webbrowser.open(result["url"])
            while server.proc is not None and server.proc.poll() is None:
                time.sleep(0.5)
            raise EdgeStudioError(None, f"Model Explorer's server stopped: {server.log_tail()}")
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)
            return result
        finally:
            server.stop()
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def _rescue_text(d: dict[str, Any]) -> str:
    guard = (f"top-1 drop <= {d['guard']['max_drop']}" if "max_drop" in d["guard"]
             else f"output cosine >= {d['guard']['min_output_cosine']}")
    lines = [f"{d['parent']}: INT8 ({d['runtime']} {d['method']}) with the fewest layers kept in float, guard: {guard}",
             f"  {'step':>4} {'kept in float':<44}{'p50 ms':>9}{'size KB':>9}{'cosine':>9}{'top-1':>8}  guard"]
    for r in d["steps"]:
        kept = ", ".join("/".join(n.split("/")[-2:]) for n in r["kept_in_float"]) or "-"
        if r.get("error"):
            lines.append(f"  {r['step']:>4} {kept[:43]:<44}  quantizer failed: {r['error']}")
            continue
        cos = f"{r['output_cosine']:.4f}" if r["output_cosine"] is not None else "-"
        top1 = f"{r['top1']:.4f}" if r.get("top1") is not None else "-"
        mark = "  <- best" if r["step"] == d.get("best_step") else ""
        lines.append(f"  {r['step']:>4} {kept[:43]:<44}{r['p50_ms']:>9.3f}{r['size_bytes'] / 1024:>9.0f}{cos:>9}"
                     f"{top1:>8}  {'ok' if r['passed'] else 'fails'}{mark}")
    lines.append(f"stopped: {d.get('stopped') or '-'} ({d.get('seconds', 0):.0f} s)")
    if d["passed"]:
        lines.append(f"result: {d['output']}")
    elif d["output"]:
        lines.append(f"best attempt (guard not met): {d['output']}")
    else:
        lines.append("no attempt improved on plain INT8: nothing written")
    return "\n".join(lines)


def _rescue_failure(d: dict[str, Any]) -> str:
    """One line for stderr when the guard was not met: why the search stopped and where its best attempt is."""
    best = next((r for r in d["steps"] if r["step"] == d.get("best_step")), None)
    text = f"error: rescue: the guard was not met; stopped: {d.get('stopped') or 'unknown'}"
    if d["output"] and best:
        figs = ", ".join(x for x in (f"top-1 {best['top1']:.4f}" if best.get("top1") is not None else "",
                                     f"output cosine {best['output_cosine']:.6f}"
                                     if best.get("output_cosine") is not None else "") if x)
        text += (f"; best attempt (step {best['step']}, {len(best['kept_in_float'])} kept in float: {figs}) "
                 f"written to {display(d['output'])}")
    else:
        text += "; no attempt improved on plain INT8: nothing written"
    return text


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


def _distill_text(d: dict[str, Any]) -> str:
    lines = [f"{d['output']}: {d['student']}, {d['student_params']:,} parameters ({d['param_ratio']:.0%} of the "
             f"teacher's {d['teacher_params']:,}); {d['epochs']} epochs on {d['inputs']} unlabeled inputs at "
             f"T={d['temperature']:g} in {d['seconds']:.1f} s; distillation loss {d['loss'][0]:.4f} -> {d['loss'][-1]:.4f}"]
    if d.get("student_top1") is not None:
        lines.append(f"  top-1 on the labeled set: teacher {d['teacher_top1']:.4f}, student {d['student_top1']:.4f} "
                     f"({(d['student_top1'] - d['teacher_top1']) * 100:+.2f} points)")
    else:
        lines.append("  accuracy not measured: give --dataset (labeled data) to compare teacher and student")
    return "\n".join(lines)


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


def _run_text(d: dict[str, Any]) -> str:
    lines = [f"{d['recipe']}: {'all gates passed' if d['passed'] else 'FAILED'} ({d['completed']} of {d['of']} steps)"]
    for r in d["steps"]:
        figure = (f" p50 {r['p50_ms']:.4f} ms" if r.get("p50_ms") is not None else
                  f" top-1 {r['top1']:.4f}" if r.get("top1") is not None else
                  f" -> {Path(r['output']).name}" if r.get("output") else "")
        gates = "; ".join(f"{g['gate']} {g['got']} (want {g['want']}) {'ok' if g['passed'] else 'FAILED'}"
                          for g in r["gates"])
        lines.append(f"  {r['step']:>2}. {r['kind']:<8} {r['id']:<14}{figure}  {r['seconds']:.1f} s"
                     + (f"  [{gates}]" if gates else ""))
    lines.append(f"artifacts in {d['output']}")
    return "\n".join(lines)


def cmd_run(args: argparse.Namespace) -> Any:
    """``run RECIPE.yaml``: replay a recipe; exit code 1 when a gate fails."""
    from edgestudio.core.jobs import JobKind, JobSpec
    from edgestudio.workers.recipes import load_recipe

    from edgestudio.workers.recipes import check_confined, plan_recipe

    recipe = Path(args.recipe).resolve()
    doc = load_recipe(recipe)  # a bad file: its one-line error before anything runs
    check_confined(recipe, doc, allow_outside=args.allow_outside)
    out = Path(args.output) if args.output else recipe.parent / f"{recipe.stem}_out"
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise UsageError(out, "the output folder is a link or a file: give a folder (it is created when missing)")
    if args.plan:
        plan = plan_recipe(recipe, (out / recipe.stem).resolve(), allow_outside=args.allow_outside)
        _emit(args, plan, _plan_text)
        return plan
    model = doc["model"] if Path(doc["model"]).is_absolute() else str((recipe.parent / doc["model"]).resolve())
    spec = JobSpec(JobKind.CALL, model=model, options={
        "function": "edgestudio.workers.recipes:run_recipe", "kwargs": {"recipe": str(recipe),
                                                                         "allow_outside": args.allow_outside}})
    if args.workspace:
        result = run_job(args, spec, output_name=recipe.stem)
    else:
        spec.output = str((out / recipe.stem).resolve())
        result = run_job(args, spec, record=False)
    result.pop("artifacts", None)
    _emit(args, result, _run_text)
    if not result["passed"]:
        failed = [r for r in result["steps"] if not r["passed"]]
        why = (f"step {failed[0]['step']} ({failed[0]['kind']} {failed[0]['id']}): "
               + "; ".join(f"{g['gate']} {g['got']} (want {g['want']})" for g in failed[0]["gates"] if not g["passed"])
               if failed else f"{result['completed']} of {result['of']} steps ran")
        print(f"error: {display(str(recipe))}: the recipe failed at {display(why)}", file=sys.stderr)
        raise SystemExit(1)
    return result


def _plan_text(d: dict[str, Any]) -> str:
    lines = [f"{d['recipe']}: the plan (nothing is run)", "reads:"]
    lines += [f"  {r['what']:<18} {r['path']}" for r in d["reads"]]
    lines.append(f"writes under {d['output']}:")
    for st in d["steps"]:
        lines.append(f"  {st['step']:>2}. {st['kind']:<8} {st['id']:<14} {st['runs']} (from {st['from']})"
                     + (f" -> {st['writes']}" if st["writes"] else ""))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- jobs and workspace
def _out(args: argparse.Namespace, default: Path) -> Path:
    """Where a command writes its artifact: ``default`` without ``-o``; ``-o`` naming an existing folder writes
    inside it (a free name, never replacing what is there); ``-o`` naming a link is refused (EdgeStudio never
    writes through a link). The path is absolute, its last part never resolved."""
    if not getattr(args, "output", None):
        return default.parent.resolve() / default.name
    out = Path(args.output)
    if out.is_symlink():
        raise UsageError(out, "is a link: EdgeStudio never writes through one (give a plain path)")
    if out.is_dir():
        from edgestudio.workers.pool import free_name

        return free_name(out.resolve() / default.name)
    if out.exists() and not getattr(args, "overwrite", False):
        raise UsageError(out, "exists: give another name, or --overwrite to replace it")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(out, f"cannot make its folder {display(str(out.parent))}: {exc.strerror or exc}") from None
    return out.parent.resolve() / out.name


def _open_workspace(args: argparse.Namespace) -> Any:
    from edgestudio.core.workspace import Workspace

    return Workspace(args.workspace)  # None: the default workspace under the user's data dir


def run_job(args: argparse.Namespace, spec: Any, output_name: str | None = None, *, record: bool = True) -> dict[str, Any]:
    """Run one job through the worker pool (recorded in ``--workspace`` when given and ``record``) and
    return its result."""
    from edgestudio.core.jobs import JobStatus
    from edgestudio.execution.targets import executor_for
    from edgestudio.workers.manager import JobManager

    if getattr(args, "timeout", None) and not spec.timeout_s:
        spec.timeout_s = args.timeout
    executor = executor_for(getattr(args, "env", None), max_workers=1)  # an unknown target fails here
    try:
        ws = _open_workspace(args) if args.workspace and record else None
    except BaseException:
        executor.shutdown()
        raise
    mgr = JobManager(ws, executor)
    show = sys.stderr.isatty() and not args.json
    if show:
        mgr.subscribe(lambda e: e.type == "progress" and print(
            f"\r[{e.data['fraction']:4.0%}] {e.data['message'][:70]:<70}", end="", file=sys.stderr, flush=True))
    try:
        job = mgr.submit(spec, output_name=output_name)
        try:
            rec = mgr.wait(job)
        except KeyboardInterrupt:
            mgr.cancel(job)
            mgr.wait(job, 30)
            raise
    finally:
        mgr.shutdown()
        if ws is not None:
            ws.close()
        if show:
            print("\r" + " " * 80 + "\r", end="", file=sys.stderr)
    if rec.status is JobStatus.SUCCEEDED:
        return rec.result or {}
    err = EdgeStudioError(None, rec.error or rec.status.value)
    err.named = True  # the worker's message names its file already
    raise err


def cmd_targets(args: argparse.Namespace) -> Any:
    from edgestudio.execution.targets import list_targets

    targets = [t.to_dict() for t in list_targets()]
    _emit(args, targets, lambda ts: "\n".join(f"{t['name']:<20} {t['kind']:<6} {t['detail'] or 'ready':<12} "
                                               f"{t['description']}" for t in ts))
    return targets


def cmd_envs(args: argparse.Namespace) -> Any:
    from edgestudio.execution import envs

    if args.action == "create":
        if not args.name:
            raise UsageError(None, "envs create NAME REQUIREMENT...")
        show = sys.stderr.isatty() and not args.json
        info = envs.create_env(args.name, list(args.requirements or []), progress=lambda f, m="": show and print(
            f"\r[{f:4.0%}] {m[:70]:<70}", end="", file=sys.stderr, flush=True))
        if show:
            print("\r" + " " * 80 + "\r", end="", file=sys.stderr)
        data: Any = info.to_dict()
        _emit(args, data, lambda d: f"{d['name']}: ready at {d['path']} (python {d['python_version']}; "
                                    f"{', '.join(d['requirements'])})")
        return data
    if args.action == "remove":
        if not args.name:
            raise UsageError(None, "envs remove NAME")
        envs.remove_env(args.name)
        _emit(args, {"removed": args.name}, lambda d: f"removed {d['removed']}")
        return None
    if args.action == "check":
        data = envs.health_check(args.name).to_dict()
        _emit(args, data, lambda d: f"{d['name']}: {'healthy' if d['healthy'] else 'BROKEN'} ({d['health']})")
        return data
    data = [e.to_dict() for e in envs.list_envs()]
    _emit(args, data, lambda es: "\n".join(
        f"{e['name']:<16} {'ok' if e['healthy'] else 'broken' if e['healthy'] is False else '?':<7} "
        f"{e['size_bytes'] / 1e6:7.0f} MB  {', '.join(e['requirements'])}" for e in es)
        or "no environments yet (create one: edgestudio envs create NAME REQUIREMENT...)")
    return data


def _when(ts: float | None) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def cmd_jobs(args: argparse.Namespace) -> Any:
    with _open_workspace(args) as ws:
        jobs = [j.to_dict() for j in ws.jobs(args.limit)]
    for j in jobs:
        j.pop("spec", None)
        if not args.json and j["result"] is not None:
            j["result"] = "..."
    _emit(args, jobs, lambda js: "\n".join(
        f"{j['id']}  {j['kind']:<8} {j['status']:<10} {_when(j['created_at'])}  {Path(j['model'] or '-').name}"
        + (f"\n    {j['error']}" if j["error"] else "") for j in js) or "no jobs yet")
    return jobs


def cmd_models(args: argparse.Namespace) -> Any:
    with _open_workspace(args) as ws:
        models = [m.to_dict() for m in ws.models()]

    def text(ms: list[dict[str, Any]]) -> str:
        kids: dict[Any, list[dict[str, Any]]] = {}
        for m in ms:
            kids.setdefault(m["parent_id"], []).append(m)
        lines: list[str] = []

        def walk(parent: Any, depth: int) -> None:
            for m in kids.get(parent, []):
                how = "" if m["made_by"] == "import" else f"  <- {m['made_by']} {m['job_id']}"
                lines.append(f"{'  ' * depth}#{m['id']} {m['name']}  [{m['format']}, {m['size_bytes']:,} B]{how}")
                walk(m["id"], depth + 1)

        walk(None, 0)
        return "\n".join(lines) or "no models yet"

    _emit(args, models, text)
    return models


def cmd_import(args: argparse.Namespace) -> Any:
    with _open_workspace(args) as ws:
        entries = [ws.import_model(m, copy=not args.reference).to_dict() for m in args.models]
    _emit(args, entries, lambda es: "\n".join(f"#{e['id']} {e['name']} ({e['format']}) -> {e['path']}" for e in es))
    return entries


# ----------------------------------------------------------------------------------------------- main
def _option_fields(target: str) -> list[Any]:
    """The fields of an options dataclass named ``module:Class``, read from its source without importing the
    module (the parser must not import backends: the CLI starts fast)."""
    import ast

    module, _, cls_name = target.partition(":")
    parts = module.split(".")
    assert parts[0] == "edgestudio"
    tree = ast.parse(Path(__file__).parent.joinpath(*parts[1:]).with_suffix(".py").read_text("utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls_name)
    out = []
    for node in cls.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None):
            continue
        default: Any = None
        meta: dict[str, Any] = {}
        if isinstance(node.value, ast.Call) and getattr(node.value.func, "id", "") == "field":
            for kw in node.value.keywords:
                if kw.arg == "default":
                    default = ast.literal_eval(kw.value)
                elif kw.arg == "metadata":
                    meta = ast.literal_eval(kw.value)
        else:
            default = ast.literal_eval(node.value)
        out.append((node.target.id, ast.unparse(node.annotation), default, meta))
    return out


def _add_option_args(p: argparse.ArgumentParser, target: str, skip: tuple[str, ...] = ()) -> None:
    """One flag per field of an options dataclass, from its declared schema (type, choices, help). Every flag
    defaults to None, so the command knows which options the user gave (and can refuse those that do not apply)."""
    for name, typ, default, meta in _option_fields(target):
        if name in skip:
            continue
        flag = meta.get("flag", "--" + name.replace("_", "-"))
        text = meta.get("flag_help", meta.get("help", ""))
        if typ == "bool":
            p.add_argument(flag, dest=name, action="store_false" if default else "store_true", default=None, help=text)
        elif typ.startswith("list"):
            p.add_argument(flag, dest=name, metavar="NAMES", type=lambda v: _names(v) or [], default=None,
                           help=text + " (comma-separated)")
        else:
            conv = int if typ.startswith("int") else float if typ.startswith("float") else str
            p.add_argument(flag, dest=name, type=conv, choices=meta.get("choices"), default=None,
                           metavar=None if meta.get("choices") else meta.get("metavar", name.split("_")[-1].upper()),
                           help=text + (f" (default {default})" if default not in (None, "", []) else ""))


def build_parser() -> argparse.ArgumentParser:
    from edgestudio.core import catalog  # plain data: the choices below come from the backend catalog

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    common.add_argument("--workspace", metavar="DIR", help="record the job, its artifacts and results in this "
                                                           "workspace (run through the worker pool)")
    common.add_argument("--verbose", action="store_true", help="let the libraries' own log lines through to "
                                                                "stderr (kept in a log file by default)")
    common.add_argument("--timeout", type=_bounded("timeout", float), metavar="SECONDS",
                        help="stop the job (its worker) after this many seconds; default: no limit")
    common.add_argument("--overwrite", action="store_true", help="let -o replace an existing file (refused by "
                                                                  "default; a folder is never replaced)")
    common.add_argument("--trust-model", action="store_true", help="run a TensorFlow model even though its graph "
                                                                    "holds ops that reach the file system or run "
                                                                    "Python (refused by default)")
    target = argparse.ArgumentParser(add_help=False)
    target.add_argument("--env", "--target", dest="env", metavar="NAME",
                        help="run on this execution target: a Python environment (`edgestudio envs`; env:NAME or "
                             "NAME), a remote device (agent:NAME, `edgestudio devices`) or local (default); "
                             "`edgestudio targets` lists them")
    ap = _Parser(prog="edgestudio", description="EdgeStudio: take a trained model to an edge device. "
                                                "Without a command, the studio opens.")
    ap.add_argument("--version", action="version", version=f"edgestudio {__version__}")
    sub = ap.add_subparsers(dest="command", parser_class=_Parser)

    p = sub.add_parser("inspect", parents=[common, target], help="describe a model: I/O, ops, parameters, MACs")
    p.add_argument("model", help="model file or folder (format detected from content)")
    p.add_argument("--shape", action="append", metavar="NAME=1,3,224,224",
                   help="fix a dynamic input's shape for the MACs count (repeatable)")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("devices", parents=[common], help="every device the installed runtimes (and the remote "
                                                        "devices) see; add|list|remove remote devices (agents)")
    p.add_argument("action", nargs="?", choices=["add", "list", "remove", "missing"],
                   help="missing: the runtimes this installation cannot use yet and the command that adds each")
    p.add_argument("name", nargs="?", help="the device's name (its target: agent:NAME)")
    p.add_argument("--host", help="add: the agent's host name or address")
    p.add_argument("--port", type=_bounded("port"), default=8765, help="add: the agent's port (default 8765)")
    p.add_argument("--token", help="add: the token the agent printed at its first start")
    p.add_argument("--tls", action="store_true", help="add: the agent serves TLS (wss://)")
    p.add_argument("--no-check", action="store_true", help="add: do not connect to check it now")
    p.set_defaults(func=cmd_devices)

    p = sub.add_parser("agent", parents=[common], help="run on an edge device: serve EdgeStudio's bench, eval, "
                                                      "inspect and parity jobs to the studio")
    p.add_argument("action", choices=["serve"])
    from edgestudio.agent.server import add_serve_args

    add_serve_args(p)
    p.set_defaults(func=cmd_agent)

    p = sub.add_parser("bench", parents=[common, target], help="measure latency, throughput, load time and memory")
    p.add_argument("model")
    p.add_argument("--runtime", choices=catalog.runtime_names(),
                   help="default: the natural runtime for the model's format")
    p.add_argument("--device", default="CPU")
    p.add_argument("--iterations", type=_bounded("iterations"), default=100)
    p.add_argument("--warmup", type=_bounded("warmup"), default=10)
    p.add_argument("--duration", type=_bounded("duration", float), help="run for this many seconds instead of a fixed count")
    p.add_argument("--threads", type=_bounded("threads"), help="intra-op threads (default: the runtime's choice)")
    p.add_argument("--precision", help="inference precision hint where supported (OpenVINO: f32, bf16, f16)")
    p.add_argument("--browser", choices=["chromium", "qtwebengine"],
                   help="browser runtimes (ort-web, tfjs): the browser to run in (default: Chromium/Chrome when "
                        "installed, else QtWebEngine)")
    p.add_argument("--throughput", action="store_true", help="throughput mode: overlapping requests, a batch x "
                                                            "streams grid of samples/s and request latency")
    p.add_argument("--batch", metavar="1,4,8", help="--throughput: batch sizes (default 1)")
    p.add_argument("--streams", metavar="1,2", help="--throughput: parallel requests (OpenVINO streams; ONNX "
                                                   "Runtime/LiteRT threads), default 1,2")
    _add_input_args(p, "the benchmark")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("convert", parents=[common, target], help="convert to another format, checking every hop's numbers")
    p.add_argument("model")
    p.add_argument("--to", required=True, help="onnx, tflite, openvino, ort, savedmodel, tfjs")
    p.add_argument("-o", "--output", help="output path (default: beside the model, never overwriting)")
    p.add_argument("--via", action="append", metavar="FORMAT", help="go through this format (repeatable)")
    p.add_argument("--simplify", action="store_true", help="simplify the ONNX hop with onnxslim")
    p.add_argument("--opset", type=_bounded("opset"), help="ONNX opset to produce")
    _add_input_args(p, "the parity checks (and --shape: converters that can fix a shape)")
    p.add_argument("--layout", choices=["auto", "nchw", "nhwc"], default="auto",
                   help="NCHW/NHWC handling where the converter offers it")
    p.add_argument("--input-names", help="comma-separated new input names (ONNX results)")
    p.add_argument("--output-names", help="comma-separated new output names (ONNX results)")
    p.add_argument("--fp16", action="store_true", help="OpenVINO IR: FP16 weights")
    p.add_argument("--tfjs-quantization", choices=["none", "float16", "uint8"], default="none",
                   help="TF.js: float16 or uint8 weights (smaller download; checked with a cosine floor)")
    p.add_argument("--allow-tf-ops", action="store_true", help="TFLite: allow TensorFlow ops (Flex delegate)")
    p.add_argument("--executorch-delegate", choices=["xnnpack", "none"], default="xnnpack",
                   help="ExecuTorch: lower to XNNPACK (default), or none: portable ops only, compared op by op by debug")
    p.add_argument("--tvm-trials", type=_bounded("tvm_trials"), default=0, help="TVM: MetaSchedule tuning trials (0: untuned)")
    p.add_argument("--tvm-minutes", type=_bounded("tvm_minutes", float), help="TVM: stop tuning after this many minutes (keeps what was measured)")
    p.add_argument("--tolerance", type=float, help="max abs diff accepted by the parity check")
    p.add_argument("--no-validate", action="store_true", help="skip the parity check")
    p.add_argument("--plan", action="store_true", help="only show the conversion path")
    p.add_argument("--int8", action="store_true", help="with --to tflite: a full-integer TFLite model (what TFLite "
                                                       "Micro runs), calibrated on --calibration")
    p.add_argument("--calibration", metavar="DATA", help="--int8: calibration samples (.npz/.npy, image folder)")
    p.add_argument("--io-type", choices=["float", "int8", "uint8"], help="--int8: the model's input/output type "
                                                                         "(default float; int8 for a microcontroller)")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("optimize", parents=[common, target], help="quantize / compress / prune for a runtime, with an "
                                                          "accuracy guard; --auto picks the fastest variant")
    p.add_argument("model")
    p.add_argument("--method", choices=catalog.methods())
    p.add_argument("--auto", action="store_true", help="try the sensible variants, measure, return the fastest")
    p.add_argument("--runtime", help=f"{', '.join(catalog.runtime_names(optimizing=True))} (auto: also 'any'); "
                                     "default from the format")
    _add_option_args(p, "edgestudio.backends.optimizers.base:OptimizeOptions", skip=("inputs",))
    p.add_argument("--iterations", type=_bounded("iterations"), default=200, help="auto: benchmark iterations per candidate")
    p.add_argument("-o", "--output", help="output path (default: beside the model)")
    _add_input_args(p, "calibration (other inputs) and the drift check")
    p.set_defaults(func=cmd_optimize)

    p = sub.add_parser("eval", parents=[common, target], help="top-1/top-5 accuracy on a labeled dataset")
    p.add_argument("model")
    p.add_argument("--dataset", required=True, metavar="DATA")
    p.add_argument("--runtime")
    p.add_argument("--device", default="CPU")
    p.add_argument("--limit", type=_bounded("limit"), help="evaluate the first N samples only")
    _add_input_args(p, "the model's other inputs (the dataset feeds the first)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("compare", parents=[common, target], help="benchmark variants x runtimes side by side (Pareto front)")
    p.add_argument("models", nargs="+")
    p.add_argument("--runtime", action="append", help="repeatable; default: each model's own runtime")
    p.add_argument("--dataset", metavar="DATA", help="labeled data: adds top-1 and the accuracy/latency Pareto front")
    p.add_argument("--device", action="append", help="repeatable: e.g. CPU and CPU@agent:pi side by side "
                                                     "(default CPU; `edgestudio devices` lists them)")
    p.add_argument("--iterations", type=_bounded("iterations"), default=100)
    p.add_argument("--threads", metavar="N[,N..]|all", help="a thread sweep: each variant at each count (default: the "
                                                             "same count on every runtime, this machine's cores)")
    p.add_argument("--browser", choices=["chromium", "qtwebengine"], help="the browser of the browser runtimes")
    p.add_argument("--no-paired", action="store_true", help="skip the final paired round (all local variants "
                                                           "loaded once, timed in alternating blocks, ranked with CIs)")
    _add_input_args(p, "every benchmark")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("sweep", parents=[common, target], help="models x runtimes x devices x threads from a YAML "
                                                                "file, on the local pool or a Ray cluster")
    p.add_argument("config", help="the sweep file (YAML or JSON: models, runtimes, devices, threads, iterations, "
                                  "dataset)")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="ray: each job a Ray task (a local cluster, or --address); benchmarks get a node alone")
    p.add_argument("--address", help="a running Ray cluster (ray://host:10001 or host:6379)")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("debug", parents=[common], help="per-layer comparison of a converted or quantized model "
                                                      "with its parent: the first layer where they part")
    p.add_argument("child", help="the converted or quantized model (ONNX, OpenVINO IR, TFLite)")
    p.add_argument("--parent", help="the model it was made from")
    p.add_argument("--chain", action="store_true", help="every hop of the child's lineage in --workspace, and the "
                                                        "whole chain: the hop where accuracy left")
    p.add_argument("--samples", type=_bounded("samples"), default=4, help="input samples to run (from --input when given)")
    _add_input_args(p, "both models (real data: a verdict that means something)")
    p.set_defaults(func=cmd_debug)

    p = sub.add_parser("profile", parents=[common], help="time per layer and per op type, from the runtime's own "
                                                        "profiler (ONNX Runtime, OpenVINO)")
    p.add_argument("model")
    p.add_argument("--runtime", choices=catalog.runtime_names(), help="default: the format's own")
    p.add_argument("--runs", type=_bounded("runs"), default=50, help="profiled runs (after 5 warm-up runs)")
    p.add_argument("--threads", type=_bounded("threads"))
    _add_input_args(p, "the profiled runs")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("explore", parents=[common], help="the graph in Google's Model Explorer on localhost (offline), "
                                                        "or a parent and its child side by side with debug's and "
                                                        "profile's figures on their nodes; Ctrl-C stops it")
    p.add_argument("models", nargs="+", metavar="MODEL", help="an ONNX or TFLite model; with a second, the parent "
                                                              "first and then the child made from it")
    p.add_argument("--debug", action="store_true", help="paint each node's cosine to its twin and each layer's own "
                                                        "error (the per-layer comparison of `debug`)")
    p.add_argument("--profile", action="store_true", help="paint each node's time (`profile`, where the runtime has "
                                                          "a profiler)")
    p.add_argument("--samples", type=_bounded("samples"), default=4, help="--debug: input samples to run")
    p.add_argument("--runs", type=_bounded("runs"), default=50, help="--profile: profiled runs")
    p.add_argument("--port", type=int, default=0, help="serve on this loopback port (default: a free one)")
    p.add_argument("--no-browser", action="store_true", help="print the URL only; do not open the web browser")
    p.add_argument("--save-node-data", metavar="DIR", help="write Model Explorer's node-data files in DIR and stop "
                                                           "(no server; load them in any Model Explorer)")
    _add_input_args(p, "--debug and --profile")
    p.set_defaults(func=cmd_explore)

    p = sub.add_parser("rescue", parents=[common], help="INT8 with the fewest layers kept in float so the accuracy "
                                                       "guard passes (searched with the per-layer comparison)")
    p.add_argument("model", help="the float model: ONNX (onnxruntime, openvino), OpenVINO IR (openvino), Keras or "
                                 "SavedModel (litert)")
    p.add_argument("--runtime", default="onnxruntime", help="whose INT8, among the runtimes that can keep layers in "
                   "float (onnxruntime: nodes_to_exclude, openvino: NNCF ignored_scope, litert: the TFLite debugger's "
                   "denylist; default onnxruntime)")
    p.add_argument("--max-steps", type=_bounded("max_steps"), default=8, help="at most this many attempts after plain "
                                                                              "INT8 (each keeps one more blamed layer)")
    p.add_argument("--budget", type=_bounded("duration", float), default=600.0,
                   help="seconds: no attempt is started that would end past it (default 600)")
    _add_option_args(p, "edgestudio.backends.optimizers.base:OptimizeOptions", skip=("inputs",))
    p.add_argument("-o", "--output", help="the rescued model (default: beside the model)")
    _add_input_args(p, "the per-layer comparison")
    p.set_defaults(func=cmd_rescue)

    p = sub.add_parser("run", parents=[common], help="replay a recipe (steps with their options, input spec and "
                                                    "quality gates); exit code 1 when a gate fails")
    p.add_argument("recipe", help="a recipe YAML (File ▸ Export recipe in the studio, or written by hand)")
    p.add_argument("-o", "--out", "--output", dest="output", help="folder for the artifacts (default: RECIPE_out "
                                                                  "beside the recipe); every step writes under it; "
                                                                  "with --workspace they join its lineage instead")
    p.add_argument("--plan", action="store_true", help="show what the recipe reads, writes and runs; run nothing")
    p.add_argument("--allow-outside", action="store_true", help="let the recipe read files outside its own folder "
                                                                "(absolute or '..' paths: refused by default)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("distill", parents=[common], help="knowledge distillation: train a smaller Keras student to "
                                                        "match the teacher's soft outputs on unlabeled inputs")
    p.add_argument("model", help="the Keras teacher (.keras, .h5)")
    p.add_argument("--data", required=True, help="unlabeled inputs: .npz with an 'x' array (or .npy)")
    p.add_argument("--student", help="a Keras student model (default: the teacher's architecture at --width)")
    p.add_argument("--width", type=float, default=0.5, help="the student's width multiplier (filters and units)")
    p.add_argument("--temperature", type=float, default=4.0, help="softens both models' outputs")
    p.add_argument("--epochs", type=_bounded("epochs"), default=30)
    p.add_argument("--batch-size", type=_bounded("batch_size"), default=64)
    p.add_argument("--dataset", metavar="DATA", help="labeled data: top-1 of teacher and student afterwards")
    p.add_argument("-o", "--output", help="the student (.keras; default: beside the teacher)")
    p.set_defaults(func=cmd_distill)

    p = sub.add_parser("package", parents=[common, target], help="a deployment zip: model, standalone runner, pinned "
                                                         "requirements, reports, lineage (and TFLite Micro sources)")
    p.add_argument("model")
    p.add_argument("--runtime", choices=catalog.runtime_names(packaged=True), help="default: from the format")
    p.add_argument("-o", "--output", help="the zip (default: beside the model)")
    p.add_argument("--dataset", metavar="DATA", help="labeled data: adds accuracy to the report")
    p.add_argument("--iterations", type=_bounded("iterations"), default=100, help="benchmark iterations for the report")
    p.add_argument("--tflm", action="store_true", help="add TensorFlow Lite Micro C sources (TFLite models)")
    _add_input_args(p, "the package's sample input and benchmark")
    p.set_defaults(func=cmd_package)

    p = sub.add_parser("envs", parents=[common], help="Python environments jobs can run in: list, create NAME "
                                                     "REQUIREMENT..., check NAME, remove NAME")
    p.add_argument("action", nargs="?", choices=["list", "create", "check", "remove"], default="list")
    p.add_argument("name", nargs="?")
    p.add_argument("requirements", nargs="*", help="pinned requirements (pip), e.g. onnxruntime==1.23.2")
    p.set_defaults(func=cmd_envs)

    p = sub.add_parser("targets", parents=[common], help="where jobs can run: this Python (local), each "
                                                        "Python environment, each remote device")
    p.set_defaults(func=cmd_targets)

    p = sub.add_parser("jobs", parents=[common], help="job history of a workspace (default: the user's)")
    p.add_argument("--limit", type=_bounded("limit"), default=None)
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("models", parents=[common], help="models and derived artifacts of a workspace, as a tree")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("import", parents=[common], help="add models to a workspace (copied unless --reference)")
    p.add_argument("models", nargs="+")
    p.add_argument("--reference", action="store_true", help="record where the file is instead of copying it")
    p.set_defaults(func=cmd_import)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--self-test"]:
        from edgestudio.gui.selftest import run_self_test

        return run_self_test(argv[1:] or None)
    if not argv or (argv[0] in ("--workspace", "gui") and len(argv) <= 3):
        # the studio (`edgestudio`, `edgestudio --workspace DIR`, `edgestudio gui [--workspace DIR]`)
        rest = argv[1:] if argv and argv[0] == "gui" else argv
        if rest and (rest[0] != "--workspace" or len(rest) != 2):
            print("usage: edgestudio [gui] [--workspace DIR]", file=sys.stderr)
            return 2
        from edgestudio.gui import launch  # imports Qt, never tensorflow/openvino/onnxruntime

        return launch(workspace=rest[1] if rest else None)
    try:
        parser = build_parser()  # its choices come from the backend catalog (which may name a bad extra file)
    except EdgeStudioError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return 1
    try:
        args = parser.parse_args(argv)
    except _ArgError as exc:
        model = next((a for a in argv[1:] if not a.startswith("-") and Path(a).exists()), None)
        print(f"error: {display(f'{model}: ' if model else '')}{display(str(exc))}", file=sys.stderr)
        return 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if getattr(args, "trust_model", False):
        from edgestudio.core.safety import trust

        for key in ("model", "child", "parent", "teacher"):
            value = getattr(args, key, None)
            for path in value if isinstance(value, list) else [value]:
                if isinstance(path, str) and Path(path).exists():
                    trust(path)
    from edgestudio.core.loaders import quiet_tensorflow

    quiet_tensorflow()
    native = None if getattr(args, "verbose", False) else _NativeLog.start()
    _watch_memory(args, native)
    rc = 0
    try:
        args.func(args)
    except UsageError as exc:
        model = _subject(args)
        if exc.path is None and isinstance(model, str):
            exc.path = model  # every error names the file it is about
        _error(exc.one_line(), native)
        rc = 2
    except EdgeStudioError as exc:
        model = _subject(args)
        if exc.path is None and isinstance(model, str) and not getattr(exc, "named", False) \
                and Path(model).name not in exc.cause:
            exc.path = model  # every error names the file it is about
        _error(exc.one_line(), native)
        rc = 1
    except KeyboardInterrupt:
        _error("interrupted", native)
        rc = 130
    except BrokenPipeError:  # `edgestudio ... | head`: the reader left, nothing to report
        sys.stderr.close()
        rc = 0
    except Exception as exc:  # anything a library raised: still one line, naming the file
        _error(describe_exception(exc, getattr(args, "model", None)), native)
        rc = 1
    finally:
        if native is not None:
            native.stop(keep=rc not in (0, 2))
    return rc


def _subject(args: argparse.Namespace) -> str | None:
    """The file a command is about (its model, the child of a debug, the first variant, the recipe, the sweep)."""
    for key in ("model", "child", "models", "variants", "recipe", "config"):
        value = getattr(args, key, None)
        value = value[0] if isinstance(value, list) and value else value
        if isinstance(value, str):
            return value
    return None


def _watch_memory(args: argparse.Namespace, native: _NativeLog | None) -> None:
    """What runs in this process (a per-layer comparison, a rescue, a profile) is held to the memory budget like
    the pool's workers: past it, one line and exit code 1, before the machine runs out."""
    import os

    from edgestudio.core.safety import human, watch_memory

    def exceeded(rss: int, budget: int) -> None:
        model = _subject(args)
        where = f"{display(str(model))}: " if isinstance(model, str) else ""
        _error(f"{where}out of memory: this command used {human(rss)}, over the memory budget of {human(budget)} "
               "(EDGESTUDIO_MEMORY_BUDGET raises it)", native)
        if native is not None:
            native.stop(keep=True)
        sys.stderr.flush()
        os._exit(1)

    watch_memory(exceeded)


def _error(line: str, native: _NativeLog | None) -> None:
    if native is not None and native.has_content():
        line += f" [native log: {native.path}]"
    print(f"error: {line}", file=sys.stderr)


def _native_log_dir() -> str:
    """The user's log folder for EdgeStudio (the last 20 native logs are kept)."""
    import os

    from platformdirs import user_log_dir

    folder = user_log_dir("edgestudio", appauthor=False)
    os.makedirs(folder, exist_ok=True)
    logs = sorted((e for e in os.scandir(folder) if e.name.startswith("native-")), key=lambda e: e.stat().st_mtime)
    for old in logs[:-20]:
        try:
            os.unlink(old.path)
        except OSError:
            pass
    return folder


class _NativeLog:
    """Native libraries (OpenVINO, ONNX Runtime, XNNPACK, TensorFlow) and crashing workers write to file
    descriptor 2; the command line keeps that in a log file, so stderr carries only EdgeStudio's own lines.
    The log is kept (and named in the error) only when the command failed."""

    def __init__(self, path: str, saved_fd: int, saved_stderr: Any) -> None:
        self.path, self._saved_fd, self._saved_stderr = path, saved_fd, saved_stderr

    @classmethod
    def start(cls) -> _NativeLog | None:
        import os
        import tempfile
        import warnings

        try:
            sys.stderr.flush()
            saved = os.dup(2)
            folder = _native_log_dir()
            fd, path = tempfile.mkstemp(prefix="native-", suffix=".log", dir=folder)
            os.dup2(fd, 2)
            os.close(fd)
        except (OSError, ValueError):
            return None
        log = cls(path, saved, sys.stderr)
        sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="backslashreplace")
        import logging

        # Python-level library logging (absl/TensorFlow tracebacks, NNCF, ORT quantization) goes to the log too
        handler = logging.StreamHandler(log._saved_stderr)
        for name in ("", "absl", "tensorflow"):
            logger = logging.getLogger(name)
            logger.handlers = [handler]
            logger.propagate = name == ""
        warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: os.write(
            2, f"{category.__name__}: {message} ({filename}:{lineno})\n".encode("utf-8", "replace"))
        return log

    def has_content(self) -> bool:
        import os

        try:
            return os.path.getsize(self.path) > 0
        except OSError:
            return False

    def stop(self, keep: bool) -> None:
        import os

        ours = sys.stderr
        try:
            ours.flush()
            if ours is not self._saved_stderr:
                ours.close()  # the stream made in start() holds a copy of the real stderr's descriptor
        except (OSError, ValueError):
            pass
        os.dup2(self._saved_fd, 2)
        os.close(self._saved_fd)
        sys.stderr = self._saved_stderr
        if not (keep and self.has_content()):
            try:
                os.unlink(self.path)
            except OSError:
                pass


if __name__ == "__main__":
    raise SystemExit(main())
