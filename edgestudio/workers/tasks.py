"""Job functions, one per kind: plain functions ``run_<kind>(spec, ctx) -> dict`` with no Qt.

They run inside worker processes (of any execution target), but nothing ties them to one: tests call them
directly with a :class:`JobContext`. Each reads its kind's typed request, ``spec.request``
(:mod:`edgestudio.core.requests`); a new kind registers its task here and its request type there.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from edgestudio.core.errors import UsageError
from edgestudio.core.jobs import JobKind, JobSpec
from edgestudio.workers.context import JobContext

TaskFn = Callable[[JobSpec, JobContext], dict[str, Any]]

# kind -> "module:function", imported when a job of that kind first runs
TASKS: dict[JobKind, str] = {
    JobKind.INSPECT: "edgestudio.workers.tasks:run_inspect",
    JobKind.BENCH: "edgestudio.workers.tasks:run_bench",
    JobKind.CONVERT: "edgestudio.workers.tasks:run_convert",
    JobKind.OPTIMIZE: "edgestudio.workers.tasks:run_optimize",
    JobKind.EVAL: "edgestudio.workers.tasks:run_eval",
    JobKind.PACKAGE: "edgestudio.workers.tasks:run_package",
    JobKind.CALL: "edgestudio.workers.tasks:run_call",
}


def _resolve(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[no-any-return]


def run_job(spec: JobSpec, ctx: JobContext) -> dict[str, Any]:
    from edgestudio.core.catalog import current_env

    target = TASKS.get(spec.kind)
    if target is None:
        raise UsageError(spec.model, f"job kind {spec.kind.value!r} is not available in this version")
    spec.validate()
    if spec.device and "@agent:" in spec.device:  # a remote device: the agent runs it, this worker relays
        from edgestudio.execution.remote import forward_to_agent

        if spec.kind not in (JobKind.BENCH, JobKind.EVAL, JobKind.INSPECT):
            raise UsageError(spec.model, f"a {spec.kind.value} job runs here, not on {spec.device}: make the "
                                         "variant here, then bench or compare it on the device")

        return forward_to_agent(spec.device, spec, ctx)
    own = _optimizer_env(spec) if spec.kind is JobKind.OPTIMIZE else None
    env = (None if own == current_env() else own) if own else _model_env(spec)
    if env is not None and spec.kind is not JobKind.CONVERT:
        return forward_to_env(env, spec, ctx)  # e.g. inspecting or benchmarking a PyTorch model
    return _resolve(target)(spec, ctx)  # type: ignore[no-any-return]


def _optimizer_env(spec: JobSpec) -> str | None:
    """The environment an optimizer of its own environment lives in (ExecuTorch's INT8: ``executorch``); None for
    the app's own optimizers. The job runs there whatever the model's format environment is."""
    from edgestudio.core.catalog import optimizer

    req = spec.request
    decl = optimizer(spec.runtime or "", req.method or "") if not req.auto else None
    return decl.env if decl is not None and decl.env != "default" else None


#: CALL jobs whose function reads the job's model with its format's runtime: they run in its environment too
MODEL_CALLS = frozenset({"edgestudio.bench.profile:profile_model", "edgestudio.bench.layers:compare_layers",
                         "edgestudio.bench.layers:compare_chain"})


def _model_env(spec: JobSpec) -> str | None:
    """The environment a job's model must be read in, when it is not this process's (None: here)."""
    if not spec.model or (spec.kind is JobKind.CALL and spec.request.function not in MODEL_CALLS):
        return None
    from edgestudio.core.catalog import current_env, format_env
    from edgestudio.core.formats import detect_format

    try:
        env = format_env(detect_format(spec.model).value)
    except Exception:  # noqa: BLE001 - an unreadable model fails in the task, with its own message
        return None
    return env if env not in ("default", current_env()) else None


def _other_hop_env(spec: JobSpec) -> str | None:
    """The environment of a hop whose converter does not run in this process (ONNX -> TVM: ``tvm``), or None."""
    from edgestudio.conversion.planner import plan_conversion
    from edgestudio.core.catalog import converter_env, current_env
    from edgestudio.core.formats import ModelFormat, detect_format

    req = spec.request
    try:
        plan = plan_conversion(detect_format(spec.model or ""), ModelFormat.parse(req.to),
                               via=[ModelFormat.parse(v) for v in req.via], simplify=bool(req.simplify))
    except Exception:  # noqa: BLE001 - no plan: the conversion itself says why, with its own message
        return None
    others = [converter_env(h.converter) for h in plan.hops]
    return next((e for e in others if e not in ("default", current_env())), None)


def forward_to_env(env: str, spec: JobSpec, ctx: JobContext) -> dict[str, Any]:
    """Run ``spec`` in environment ``env``: its progress, log and samples are relayed; its artifacts land in
    this job's staging folder (published with it)."""
    from pathlib import Path

    from edgestudio.core.catalog import env_ready
    from edgestudio.execution.envs import EnvError, run_in_env

    if not env_ready(env):
        from edgestudio.core.catalog import environment_requirements

        reqs = environment_requirements(env) or []
        raise EnvError(spec.model, f"this model runs in the '{env}' Python environment, which does not exist yet",
                       hint=f"edgestudio envs create {env}" + (f" (installs {', '.join(reqs)})" if reqs else ""))
    sub = JobSpec.from_dict(spec.to_dict())
    if spec.output and ctx.staging is not None:
        sub.output = str(ctx.staged(Path(spec.output).name))

    rec = run_in_env(env, sub, on_message=ctx.relay(env), cancel=ctx.cancel)
    return ctx.finish_forwarded(rec, EnvError)


def run_inspect(spec: JobSpec, ctx: JobContext) -> dict[str, Any]:
    from edgestudio.core.inspection import inspect_model

    ctx.progress(0.1, "reading model")
    info = inspect_model(spec.model or "", shapes=spec.request.shapes or None)
    ctx.progress(1.0, "done")
    return info.to_dict()


def run_bench(spec: JobSpec, ctx: JobContext) -> dict[str, Any]:
    from edgestudio.backends.runtimes import runtime_for_format
    from edgestudio.bench.latency import BenchConfig, run_benchmark
    from edgestudio.core.formats import detect_format

    req = spec.request
    runtime = spec.runtime or runtime_for_format(detect_format(spec.model or ""))
    config = BenchConfig(runtime=runtime, device=spec.device or "CPU", iterations=int(req.iterations),
                         warmup=int(req.warmup), duration_s=req.duration_s, threads=req.threads,
                         shapes=dict(req.shapes), precision=req.precision, inputs=req.inputs)
    ctx.log(f"benchmark {spec.model} on {runtime}/{config.device}")
    result = run_benchmark(spec.model or "", config, on_sample=ctx.sample, progress=ctx.progress, cancel=ctx.cancel)
    return result.to_dict(with_samples=bool(req.keep_samples))


def run_call(spec: JobSpec, ctx: JobContext) -> dict[str, Any]:
    """Call ``module:function`` with ``kwargs``; the job context is passed as ``ctx`` only to functions that
    take it (the start-up device listing once failed here with a TypeError, leaving every runtime at CPU)."""
    import inspect
    from pathlib import Path

    req = spec.request
    fn = _resolve(req.function)
    kwargs = dict(req.kwargs)
    try:
        params = inspect.signature(fn).parameters
        takes_ctx = "ctx" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
        # a function that writes a model: its output goes to the job's staging folder (published with the job);
        # one that reports progress or can stop: the job's own
        if spec.output and ctx.staging is not None and "output" in params and "output" not in kwargs:
            kwargs["output"] = str(ctx.staged(Path(spec.output).name))
        if "progress" in params:
            kwargs.setdefault("progress", ctx.progress)
        if "cancel" in params:
            kwargs.setdefault("cancel", ctx.cancel)
        if "on_sample" in params:  # a live series: latencies for a benchmark, the loss per epoch for training
            kwargs.setdefault("on_sample", ctx.sample)
        if "log" in params:
            kwargs.setdefault("log", ctx.log)
    except (TypeError, ValueError):  # builtins without a signature
        takes_ctx = False
    result = fn(ctx=ctx, **kwargs) if takes_ctx else fn(**kwargs)
    return result if isinstance(result, dict) else {"value": result}


def run_convert(spec: JobSpec, ctx: JobContext) -> dict[str, Any]:
    """Options: ``to``, ``via`` (list), ``simplify``, ``keep_intermediate``, ``convert`` (ConvertOptions)."""
    if not spec.output:
        raise UsageError(spec.model, "a conversion job needs an output path")
    env = _model_env(spec) or _other_hop_env(spec)
    if env is not None:
        return _convert_across_envs(spec, ctx, env)
    return _convert_here(spec, ctx)


def _convert_here(spec: JobSpec, ctx: JobContext) -> dict[str, Any]:
    """Every hop of the plan runs in this process."""
    from pathlib import Path

    from edgestudio.backends.converters.base import ConvertOptions
    from edgestudio.conversion.engine import convert_model
    from edgestudio.core.formats import ModelFormat

    req = spec.request
    keep = bool(req.keep_intermediate)
    report = convert_model(
        spec.model or "", ModelFormat.parse(req.to), output=ctx.staged(Path(spec.output).name),
        options=ConvertOptions.from_dict(req.convert), via=[ModelFormat.parse(v) for v in req.via],
        simplify=bool(req.simplify), intermediate_dir=ctx.staging if keep else None,
        progress=ctx.progress, cancel=ctx.cancel)
    for step in report.steps:
        parity = step.parity or {}
        ctx.log(f"{step.source} -> {step.target} with {step.converter} in {step.seconds:.2f} s; parity "
                + (parity.get("summary") or "not checked (the result was run once)"))
    for w in report.warnings:
        ctx.log(f"warning: {w}")
    result = report.to_dict()
    steps = report.steps if keep else report.steps[-1:]
    result["artifacts"] = [{"path": s.output, "parent": (i - 1 if i else None),
                            "options": {"converter": s.converter, "from": s.source, "to": s.target,
                                        "versions": s.versions, "parity": s.parity, **req.convert}}
                           for i, s in enumerate(steps)]
    return result


def run_optimize(spec: JobSpec, ctx: JobContext) -> dict[str, Any]:
    """Options: ``method``, ``options`` (OptimizeOptions), ``keep_reference``; or ``auto`` for auto-optimize."""
    from pathlib import Path

    from edgestudio.backends.optimizers.base import OptimizeOptions

    req = spec.request
    opts = OptimizeOptions.from_dict(req.options)
    if req.auto:
        from edgestudio.optimization.auto import auto_optimize

        bench, bench_runtimes = None, None
        if req.bench_device:  # candidates made here, measured on the device (a remote agent)
            from edgestudio.execution.remote import remote_bench

            bench, bench_runtimes = remote_bench(req.bench_device, ctx.log)
        table = auto_optimize(spec.model or "", runtime=spec.runtime or "any", options=opts, folder=ctx.staging,
                              iterations=int(req.iterations), progress=ctx.progress,
                              cancel=ctx.cancel, log=ctx.log, bench=bench, bench_runtimes=bench_runtimes)
        if req.bench_device:
            table["bench_device"] = req.bench_device
        best = table.get("best")
        result = dict(table)
        if best:
            result["output"] = best["path"]
            result["artifacts"] = [{"path": r["path"], "options": {"method": r["method"], "runtime": r["runtime"],
                                                                   "label": r["label"]}}
                                   for r in table["candidates"] if r.get("path") and r.get("kept")]
        return result
    from edgestudio.optimization.engine import optimize_model

    if not spec.output:
        raise UsageError(spec.model, "an optimization job needs an output path")
    keep = bool(req.keep_reference) and ctx.staging is not None
    report = optimize_model(spec.model or "", str(req.method), runtime=spec.runtime,
                            output=ctx.staged(Path(spec.output).name), options=opts,
                            keep_dir=(ctx.staging / "reference") if keep and ctx.staging else None,
                            progress=ctx.progress, cancel=ctx.cancel)
    drift = report.details.get("drift") or {}
    if drift:
        ctx.log(f"drift vs FP32: {drift.get('verdict')} on {drift.get('samples')} {drift.get('data')}: " + ", ".join(
            f"{o['name']} cosine {o['cosine']}" for o in drift.get("outputs", [])[:4]))
    for w in report.warnings:
        ctx.log(f"warning: {w}")
    result = report.to_dict()
    opt_info = {"method": report.method, "runtime": report.runtime, "accuracy": report.accuracy,
                **{k: v for k, v in req.options.items() if v not in (None, [], "", {})},
                "drift": report.details.get("drift")}
    if report.reference and keep:
        result["artifacts"] = [{"path": report.reference, "options": {"converted_for": report.method, "steps": report.steps}},
                               {"path": report.output, "parent": 0, "options": opt_info}]
    else:
        result["artifacts"] = [{"path": report.output, "options": opt_info}]
    return result


def run_eval(spec: JobSpec, ctx: JobContext) -> dict[str, Any]:
    from edgestudio.bench.accuracy import evaluate

    req = spec.request
    res = evaluate(spec.model or "", req.dataset, runtime=spec.runtime, device=spec.device or "CPU",
                   limit=req.limit, inputs=req.inputs, progress=ctx.progress,
                   cancel=ctx.cancel)
    return {**res.to_dict(), "dataset": str(req.dataset)}  # which data: a recipe replays it


def run_package(spec: JobSpec, ctx: JobContext) -> dict[str, Any]:
    """Options: ``dataset``, ``input``, ``iterations``, ``tflm``, ``lineage`` (from the workspace)."""
    from pathlib import Path

    from edgestudio.backends.runtimes import runtime_for_format
    from edgestudio.core.formats import detect_format
    from edgestudio.packaging.deploy import build_package
    from edgestudio.packaging.web import build_web_package, web_runtimes

    if not spec.output:
        raise UsageError(spec.model, "a packaging job needs an output path")
    req = spec.request
    if spec.runtime in web_runtimes():  # a static web folder, checked in the browser
        result = build_web_package(spec.model or "", ctx.staged(Path(spec.output).name), runtime=spec.runtime,
                                   inputs=req.inputs,
                                   iterations=int(req.iterations), progress=ctx.progress, cancel=ctx.cancel)
        result["package"] = result.pop("output")
        return result
    runtime = spec.runtime or runtime_for_format(detect_format(spec.model or ""))  # the model's own runtime
    result = build_package(spec.model or "", runtime, ctx.staged(Path(spec.output).name),
                           input_npy=req.input, inputs=req.inputs, dataset=req.dataset,
                           iterations=int(req.iterations), tflm=bool(req.tflm),
                           lineage=req.lineage, progress=ctx.progress, cancel=ctx.cancel)
    result["package"] = result.pop("output")  # a zip, not a model: not registered as an artifact
    return result


def _convert_across_envs(spec: JobSpec, ctx: JobContext, env: str) -> dict[str, Any]:
    """A conversion whose hops need different environments (PyTorch -> ONNX in ``torch``, then TFLite here; Keras ->
    ONNX here, then TVM in ``tvm``): the plan is cut where the environment changes, each segment runs where its
    converters live (forwarded, or here), and the reports become one chain (lineage, parity per hop)."""
    from pathlib import Path

    from edgestudio.conversion.planner import plan_conversion
    from edgestudio.core.catalog import converter_env, current_env
    from edgestudio.core.formats import ModelFormat, detect_format, output_name

    req = spec.request
    target = ModelFormat.parse(req.to)
    plan = plan_conversion(detect_format(spec.model or ""), target, via=[ModelFormat.parse(v) for v in req.via],
                           simplify=bool(req.simplify))
    here = current_env()

    def where(hop: Any) -> str:
        e = converter_env(hop.converter)
        return here if e in ("default", here) else e

    segments: list[list[Any]] = []
    for hop in plan.hops:
        if segments and where(segments[-1][-1]) == where(hop):
            segments[-1].append(hop)
        else:
            segments.append([hop])
    if len(segments) == 1 and where(segments[0][0]) == here:  # e.g. PyTorch -> TFLite in litert-torch's own env
        return _convert_here(spec, ctx)
    out = Path(spec.output or "")
    model = spec.model
    steps: list[dict[str, Any]] = []
    arts: list[dict[str, Any]] = []
    warnings: list[str] = []
    seconds, verdicts, result, executed_by = 0.0, [], {}, None
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        fmt = ModelFormat(seg[-1].target)
        seg_out = out if last else out.with_name(output_name(Path(spec.model or "model").stem, fmt))
        sub = JobSpec(spec.kind, model=str(model), options={**spec.options, "to": fmt.value,
                                                            "via": [h.target for h in seg[:-1]]}, output=str(seg_out))
        seg_env = where(seg[0])
        chain = " -> ".join([seg[0].source] + [h.target for h in seg])
        if seg_env != here:
            ctx.log(f"{chain} in environment {seg_env}")
            result = forward_to_env(seg_env, sub, ctx)
        else:
            result = run_convert(sub, ctx)
        k = len(arts)
        seg_arts = result.get("artifacts") or [{"path": result["output"], "parent": None}]
        arts += [{**a, "parent": (a["parent"] + k if a.get("parent") is not None else (k - 1 if k else None))}
                 for a in seg_arts]
        steps += result.get("steps", [])
        warnings += result.get("warnings", [])
        seconds += float(result.get("seconds", 0))
        verdicts.append(result.get("verdict"))
        executed_by = result.get("executed_by") or executed_by
        model = result["output"]
    if not req.keep_intermediate:
        arts = arts[-1:]
        arts[0] = {**arts[0], "parent": None}
    return {**result, "steps": steps, "artifacts": arts, "warnings": warnings, "seconds": seconds,
            "verdict": next((v for v in ("failed", "inconclusive") if v in verdicts), result.get("verdict")),
            "source": spec.model, "executed_by": executed_by}


def run_microcontroller(ctx: JobContext, model: str, calibration: str, io_type: str = "int8",
                        inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The microcontroller path in one job (the studio's "Microcontroller" target): a PyTorch model goes to ONNX
    first (in its environment, checked against PyTorch); then full-INT8 TFLite calibrated on ``calibration``
    (drift-guarded); then a deployment package with TFLite Micro sources whose arena is measured in the TFLM
    interpreter. Artifacts: the ONNX (when made), the FP32 TFLite reference and the INT8 TFLite, in one lineage."""
    from pathlib import Path

    from edgestudio.backends.converters.base import ConvertOptions
    from edgestudio.backends.optimizers.base import OptimizeOptions
    from edgestudio.backends.runtimes import runtime_for_format
    from edgestudio.core.formats import ModelFormat
    from edgestudio.core.inputspec import InputSpec
    from edgestudio.packaging.deploy import build_package

    if ctx.staging is None:
        raise UsageError(model, "the microcontroller job needs an output folder")
    src = Path(model)
    spec = InputSpec.from_dict(inputs)
    artifacts: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    current = src
    if _model_env(JobSpec(JobKind.INSPECT, model=model)) is not None:
        ctx.progress(0.02, "PyTorch -> ONNX (in its environment)")
        conv = run_convert(JobSpec(JobKind.CONVERT, model=model, output=str(ctx.staged(f"{src.stem}.onnx")), options={
            "to": "onnx", "convert": ConvertOptions(inputs=spec.to_dict()).to_dict()}), ctx)
        current = Path(conv["output"])
        steps += conv.get("steps", [])
        artifacts.append({"path": str(current), "options": {"converter": "torch.onnx", "from": "pytorch", "to": "onnx",
                                                            "parity": (conv["steps"][-1] or {}).get("parity")}})
        spec = InputSpec(data=spec.data, values=spec.values)  # the ONNX model has its shapes now
    ctx.progress(0.3, "full INT8 TFLite (calibrating)")
    opts = OptimizeOptions(calibration=calibration, io_type=io_type, inputs=spec.to_dict())
    int8_name = f"{src.stem}_int8.tflite"
    tflite = runtime_for_format(ModelFormat.TFLITE)  # TFLite Micro runs what the TFLite runtime's quantizer writes
    opt = run_optimize(JobSpec(JobKind.OPTIMIZE, model=str(current), runtime=tflite, output=str(ctx.staged(int8_name)),
                               options={"method": "int8-static", "options": opts.to_dict(), "keep_reference": True}), ctx)
    base = len(artifacts)
    for a in opt.get("artifacts") or []:
        parent = a.get("parent")
        artifacts.append({**a, "parent": (parent + base) if parent is not None else (base - 1 if base else None)})
    ctx.progress(0.75, "TensorFlow Lite Micro: measuring the arena in the interpreter")
    manifest = build_package(opt["output"], tflite, ctx.staged(f"{src.stem}_mcu.zip"), inputs=spec, iterations=50,
                             tflm=True, cancel=ctx.cancel)
    return {"output": opt["output"], "artifacts": artifacts, "steps": steps + opt.get("steps", []),
            "drift": (opt.get("details") or {}).get("drift"), "warnings": opt.get("warnings", []),
            "package": manifest["output"], "tflm": manifest["tflm"], "size_bytes": opt.get("size_bytes")}
