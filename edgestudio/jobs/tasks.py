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
from edgestudio.jobs.context import JobContext

TaskFn = Callable[[JobSpec, JobContext], dict[str, Any]]

# kind -> "module:function", imported when a job of that kind first runs
TASKS: dict[JobKind, str] = {
    JobKind.INSPECT: "edgestudio.jobs.tasks:run_inspect",
    JobKind.BENCH: "edgestudio.jobs.tasks:run_bench",
    JobKind.CONVERT: "edgestudio.jobs.tasks:run_convert",
    JobKind.OPTIMIZE: "edgestudio.jobs.tasks:run_optimize",
    JobKind.EVAL: "edgestudio.jobs.tasks:run_eval",
    JobKind.PACKAGE: "edgestudio.jobs.tasks:run_package",
    JobKind.CALL: "edgestudio.jobs.tasks:run_call",
}


def _resolve(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[no-any-return]


def run_job(spec: JobSpec, ctx: JobContext) -> dict[str, Any]:
    """Run ``spec`` in this process. Where a job should run (an environment, a device agent) is not decided here:
    :func:`edgestudio.execution.placement.run_placed` decides, then calls this."""
    target = TASKS.get(spec.kind)
    if target is None:
        raise UsageError(spec.model, f"job kind {spec.kind.value!r} is not available in this version")
    spec.validate()
    return _resolve(target)(spec, ctx)  # type: ignore[no-any-return]


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
    """Options: ``to``, ``via`` (list), ``simplify``, ``keep_intermediate``, ``convert`` (ConvertOptions). Every hop
    runs in this process (placement cuts a plan whose hops need other environments into segments first)."""
    from pathlib import Path

    from edgestudio.backends.converters.base import ConvertOptions
    from edgestudio.conversion.engine import convert_model
    from edgestudio.core.formats import ModelFormat

    if not spec.output:
        raise UsageError(spec.model, "a conversion job needs an output path")
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


def run_optimize(spec: JobSpec, ctx: JobContext, *, bench: Any = None, bench_runtimes: Any = None) -> dict[str, Any]:
    """Options: ``method``, ``options`` (OptimizeOptions), ``keep_reference``; or ``auto`` for auto-optimize.

    ``bench``/``bench_runtimes``: how auto-optimize measures its candidates when they are measured elsewhere
    (``bench_device``: placement hands in a device agent's)."""
    from pathlib import Path

    from edgestudio.backends.optimizers.base import OptimizeOptions

    req = spec.request
    opts = OptimizeOptions.from_dict(req.options)
    if req.auto:
        from edgestudio.optimization.auto import auto_optimize

        if req.bench_device and bench is None:
            raise UsageError(spec.model, f"measuring the candidates on {req.bench_device} needs its executor "
                                         "(run the job through a job manager or worker, not this function alone)")
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
