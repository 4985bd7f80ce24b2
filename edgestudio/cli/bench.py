"""Measuring: ``bench`` (latency, or --throughput), ``eval`` (accuracy), ``compare`` (variants side by side)
and ``sweep`` (a grid from a file, on the local pool or Ray)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from edgestudio.cli.common import _check_inputs, _emit, _input_spec, _open_workspace, _other_env, run_job
from edgestudio.cli.render import _bench_text, _compare_text, _throughput_text
from edgestudio.core.errors import EdgeStudioError, UsageError, display


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
    from edgestudio.app.comparison import comparison_rows
    from edgestudio.execution.remote import on_agent
    from edgestudio.execution.targets import agent_name, executor_for
    from edgestudio.app.manager import JobManager

    executor = executor_for(args.env, max_workers=1)
    remote = agent_name(args.env)
    devices = args.device or ["CPU"]
    device = [on_agent(d, remote) if remote else d for d in devices]  # the rows name the remote device
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


def cmd_sweep(args: argparse.Namespace) -> Any:
    import time

    from edgestudio.bench.compare import apply_result, finalize_rows
    from edgestudio.bench.sweep import load_config, sweep_plan
    from edgestudio.core.jobs import JobStatus
    from edgestudio.execution.targets import executor_for
    from edgestudio.app.manager import JobManager

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

