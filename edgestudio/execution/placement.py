"""Placement: the one place that decides where a job runs. Every worker loop runs its jobs through
:func:`run_placed` (with the one runner, :mod:`edgestudio.jobs.runner`); the job functions never route.

- A job whose target is a device agent (``agent:NAME``; users name its devices ``CPU@agent:NAME``) goes to that
  agent; a job whose target is a Python environment (``env:NAME``) goes there. This process relays their messages.
- A job whose model is read in another Python environment (a PyTorch model: ``torch``), or whose optimizer lives in
  one (ExecuTorch's INT8: ``executorch``), goes to that environment.
- A conversion whose hops need different environments is cut into segments, each run where its converters live,
  and the reports joined into one chain.
- Everything else runs here, in this process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgestudio.core.errors import UsageError
from edgestudio.core.jobs import JobKind, JobSpec
from edgestudio.jobs import tasks
from edgestudio.jobs.context import JobContext

#: job kinds a remote device runs (the others make files: they run here, and the device measures the result)
REMOTE_KINDS = (JobKind.BENCH, JobKind.EVAL, JobKind.INSPECT)


def run_placed(spec: JobSpec, ctx: JobContext) -> dict[str, Any]:
    """Run ``spec`` where it belongs: on a device agent, in another environment, or here."""
    from edgestudio.core.catalog import current_env

    spec.validate()
    if spec.agent:  # a device agent runs it, this process relays
        if spec.kind not in REMOTE_KINDS:
            raise UsageError(spec.model, f"a {spec.kind.value} job runs here, not on {spec.where}: make the "
                                         "variant here, then bench or compare it on the device")
        from edgestudio.execution.remote import forward_to_agent

        return forward_to_agent(spec, ctx)
    if spec.env and spec.env != current_env():  # the environment the job was sent to
        return {**forward_to_env(spec.env, spec, ctx), "env": spec.env}
    own = optimizer_env(spec) if spec.kind is JobKind.OPTIMIZE else None
    env = (None if own == current_env() else own) if own else model_env(spec)
    if env is not None and spec.kind is not JobKind.CONVERT:
        return forward_to_env(env, spec, ctx)  # e.g. inspecting or benchmarking a PyTorch model
    if spec.kind is JobKind.CONVERT and spec.output:
        env = env or other_hop_env(spec)
        if env is not None:
            return convert_across_envs(spec, ctx, env)
    if spec.kind is JobKind.OPTIMIZE and spec.request.auto and spec.request.bench_device:
        from edgestudio.execution.remote import remote_bench

        # candidates made here, measured on the device (a remote agent)
        bench, bench_runtimes = remote_bench(spec.request.bench_device, ctx.log)
        return tasks.run_optimize(spec, ctx, bench=bench, bench_runtimes=bench_runtimes)
    return tasks.run_job(spec, ctx)


def optimizer_env(spec: JobSpec) -> str | None:
    """The environment an optimizer of its own environment lives in (ExecuTorch's INT8: ``executorch``); None for
    the app's own optimizers. The job runs there whatever the model's format environment is."""
    from edgestudio.core.catalog import optimizer

    req = spec.request
    decl = optimizer(spec.runtime or "", req.method or "") if not req.auto else None
    return decl.env if decl is not None and decl.env != "default" else None


#: CALL jobs whose function reads the job's model with its format's runtime: they run in its environment too
MODEL_CALLS = frozenset({"edgestudio.bench.profile:profile_model", "edgestudio.bench.layers:compare_layers",
                         "edgestudio.bench.layers:compare_chain"})


def model_env(spec: JobSpec) -> str | None:
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


def other_hop_env(spec: JobSpec) -> str | None:
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
    from edgestudio.core.catalog import env_ready
    from edgestudio.execution.envs import EnvError, run_in_env

    if not env_ready(env):
        from edgestudio.core.catalog import environment_requirements

        reqs = environment_requirements(env) or []
        raise EnvError(spec.model, f"this model runs in the '{env}' Python environment, which does not exist yet",
                       hint=f"edgestudio envs create {env}" + (f" (installs {', '.join(reqs)})" if reqs else ""))
    sub = JobSpec.from_dict({**spec.to_dict(), "target": None})  # there, it runs where it is
    if spec.output and ctx.staging is not None:
        sub.output = str(ctx.staged(Path(spec.output).name))

    rec = run_in_env(env, sub, on_message=ctx.relay(env), cancel=ctx.cancel)
    return ctx.finish_forwarded(rec, EnvError)


def convert_across_envs(spec: JobSpec, ctx: JobContext, env: str) -> dict[str, Any]:
    """A conversion whose hops need different environments (PyTorch -> ONNX in ``torch``, then TFLite here; Keras ->
    ONNX here, then TVM in ``tvm``): the plan is cut where the environment changes, each segment runs where its
    converters live (forwarded, or here), and the reports become one chain (lineage, parity per hop)."""
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
        return tasks.run_convert(spec, ctx)
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
            result = tasks.run_convert(sub, ctx)
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

