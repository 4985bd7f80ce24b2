"""Compare variants: one row per (model variant, runtime, device) with latency, throughput, size and
accuracy, sorted by p50, the accuracy-vs-latency Pareto front marked.

The pieces are separate so the CLI (which waits) and the GUI (which fills rows as jobs finish) share them:
:func:`plan_rows` -> submit the specs -> :func:`apply_result` per finished job -> :func:`finalize_rows`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgestudio.core.errors import EdgeStudioError
from edgestudio.core.formats import ModelFormat, detect_format
from edgestudio.core.jobs import JobKind, JobSpec
from edgestudio.core.modelinfo import model_size_bytes


def runs_format(runtime: str, fmt: ModelFormat) -> bool:
    from edgestudio.backends.runtimes import RUNTIMES

    cls = RUNTIMES.all().get(runtime)
    return cls is not None and fmt in cls.formats


def _plan(model: str, fmt: ModelFormat, runtime: str, device: str, dataset: str | None, iterations: int,
          warmup: int, inputs: dict[str, Any] | None = None, threads: int | None = None
          ) -> tuple[dict[str, Any], list[JobSpec]]:
    row: dict[str, Any] = {"model": str(model), "format": fmt.value, "runtime": runtime, "device": device,
                           "threads": threads, "threads_asked": threads is not None,
                           "size_bytes": model_size_bytes(Path(model), fmt), "error": None,
                           "inputs": dict(inputs or {})}
    if not runs_format(runtime, fmt):
        row["error"] = f"{runtime} does not run {fmt.label} models"
        return row, []
    specs = [JobSpec(JobKind.BENCH, model=str(model), runtime=runtime, device=device,
                     options={"iterations": iterations, "warmup": warmup, "keep_samples": False,
                              "inputs": dict(inputs or {}), "threads": threads})]
    if dataset:
        specs.append(JobSpec(JobKind.EVAL, model=str(model), runtime=runtime, device=device,
                             options={"dataset": dataset, "inputs": dict(inputs or {})}))
    return row, specs


def _thread_list(threads: list[int] | None) -> list[int | None]:
    """A thread sweep (each count once, in order), or [None]: the engine's default (equal on every runtime)."""
    return list(dict.fromkeys(int(t) for t in threads)) if threads else [None]


def plan_rows(models: list[str], runtimes: list[str] | None, *, dataset: str | None = None,
              device: str | list[str] = "CPU",
              iterations: int = 100, warmup: int = 10, inputs: dict[str, Any] | None = None,
              browser: str | None = None, threads: list[int] | None = None
              ) -> list[tuple[dict[str, Any], list[JobSpec]]]:
    """A row per model x runtime (x thread count, for a thread sweep), with the jobs that fill it (none, and an
    error, where it cannot run). ``browser`` picks the browser of the browser runtimes (chromium, qtwebengine).
    Accuracy is evaluated once per model and runtime (at the sweep's first thread count)."""
    from edgestudio.backends.runtimes import RUNTIMES, runtime_for_format
    from edgestudio.backends.runtimes.ort_web import browser_device

    out = []
    for model in models:
        fmt = detect_format(model)
        for rt in runtimes or [runtime_for_format(fmt)]:
            for one in ([device] if isinstance(device, str) else device):  # e.g. CPU and CPU@agent:pi side by side
                in_browser = browser and getattr(RUNTIMES.all().get(rt), "in_browser", False)
                dev = browser_device(rt, one, browser) if in_browser else one
                counts = _thread_list(threads) if runs_format(rt, fmt) else [None]  # one row says it cannot run
                for i, t in enumerate(counts):
                    out.append(_plan(model, fmt, rt, dev, dataset if i == 0 else None, iterations, warmup, inputs, t))
    return out


def plan_matrix(models: list[str], targets: list[tuple[str, str]], *, dataset: str | None = None,
                iterations: int = 100, warmup: int = 10, inputs: dict[str, Any] | None = None,
                inputs_for: Callable[[str], dict[str, Any]] | None = None, threads: list[int] | None = None
                ) -> tuple[list[tuple[dict[str, Any], list[JobSpec]]], list[tuple[str, str, str]]]:
    """Variants x (runtime, device) targets, as one batch: a row for each pair whose runtime runs the variant's
    format. Returns the planned rows and the pairs left out, as (model, runtime, device). Each variant is fed
    ``inputs_for(path)`` (its own input specification) when given, else ``inputs``."""
    out, skipped = [], []
    for model in models:
        fmt = detect_format(model)
        for rt, device in targets:
            if runs_format(rt, fmt):
                spec = inputs_for(str(model)) if inputs_for is not None else inputs
                for i, t in enumerate(_thread_list(threads)):  # accuracy once: it does not change with threads
                    out.append(_plan(model, fmt, rt, device, dataset if i == 0 else None, iterations, warmup, spec, t))
            else:
                skipped.append((str(model), rt, device))
    return out, skipped


def apply_result(row: dict[str, Any], kind: JobKind | str, succeeded: bool, result: dict[str, Any] | None,
                 error: str | None) -> None:
    if not succeeded:
        row["error"] = row.get("error") or error
        return
    assert result is not None
    if JobKind(kind) is JobKind.BENCH:
        lat = result["latency_ms"]
        row.update(p50_ms=lat["p50"], p90_ms=lat["p90"], p99_ms=lat["p99"], mean_ms=lat["mean"],
                   throughput_fps=result["throughput_fps"], load_ms=result["load_ms"], precision=result.get("precision"),
                   ci_ms=result.get("ci_ms"))
        if row.get("threads") is None:
            row["threads"] = result.get("threads")
        if result.get("executed_on"):
            row["executed_on"] = result["executed_on"]
    elif JobKind(kind) is JobKind.EVAL:
        row.update(accuracy=result["top1"], top5=result.get("top5"))


def pareto_front(rows: list[dict[str, Any]], acc_key: str = "accuracy", lat_key: str = "p50_ms") -> set[int]:
    """Indices of rows no other row beats on both accuracy (higher) and latency (lower)."""
    front = set()
    for i, r in enumerate(rows):
        if r.get(acc_key) is None or r.get(lat_key) is None:
            continue
        dominated = any(
            o is not r and o.get(acc_key) is not None and o.get(lat_key) is not None
            and o[acc_key] >= r[acc_key] and o[lat_key] <= r[lat_key]
            and (o[acc_key] > r[acc_key] or o[lat_key] < r[lat_key])
            for o in rows)
        if not dominated:
            front.add(i)
    return front


def paired_spec(rows: list[dict[str, Any]], *, blocks: int = 6, block: int = 50) -> JobSpec | None:
    """The final round: every measured local row again, all loaded at once and timed in alternating blocks
    (None when fewer than two rows can take part)."""
    from edgestudio.bench.paired import pairable

    variants = [{"model": r["model"], "runtime": r["runtime"], "device": r.get("device") or "CPU",
                 "inputs": r.get("inputs") or {}, **({"threads": r["threads"]} if r.get("threads_asked") else {})}
                for r in rows
                if r.get("p50_ms") is not None and pairable(r["runtime"], r.get("device"))]
    if len(variants) < 2:
        return None
    return JobSpec(JobKind.CALL, exclusive=True, options={
        "function": "edgestudio.execution.block_server:paired_benchmark",  # other envs too
        "kwargs": {"variants": variants, "blocks": blocks, "block": block}})


def apply_paired(rows: list[dict[str, Any]], paired: dict[str, Any]) -> None:
    """Put the paired round's figures on the rows (matched by model, runtime, device)."""
    sweep = any(r.get("threads_asked") for r in rows)  # threads asked (a sweep): the count is part of the key

    def key(x: dict[str, Any]) -> tuple[Any, ...]:
        return (x["model"], x["runtime"], x.get("device") or "CPU", x.get("threads") if sweep else None)

    from edgestudio.bench.paired import not_pairable_because

    by_key = {key(v): v for v in paired.get("variants", [])}
    for r in rows:
        v = by_key.get(key(r))
        if v is None:
            why = not_pairable_because(r["runtime"], r.get("device")) if r.get("p50_ms") is not None else None
            if why:
                r["paired_note"] = f"not in the paired round ({why}): its own run's figures"
            continue
        if v.get("p50_ms") is not None:
            r.update(paired_p50_ms=v["p50_ms"], paired_ci_ms=v["ci_ms"], rank=v["rank"], tied=v["tied"],
                     threads=v.get("threads"))
        else:
            r["paired_note"] = v.get("error")


def ranked_p50(row: dict[str, Any]) -> float | None:
    """The p50 a row's rank stands on: the paired round's where it ran, else the row's own run (None: not measured).
    The charts show this one, so the #1 bar is the lowest; the table keeps the row's own run beside it."""
    return row.get("paired_p50_ms") if row.get("paired_p50_ms") is not None else row.get("p50_ms")


def finalize_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sort (by the paired round's p50 where there was one, else by p50) and mark the accuracy-vs-latency Pareto
    front (where accuracy was measured) on that same latency (``ranked_p50_ms``)."""
    rows = sorted(rows, key=lambda r: (r.get("p50_ms") is None, r.get("rank") is None, r.get("rank") or 0,
                                       r.get("p50_ms") or 0.0))
    for r in rows:
        r["ranked_p50_ms"] = ranked_p50(r)
    front = pareto_front(rows, lat_key="ranked_p50_ms")
    for i, r in enumerate(rows):
        r["pareto"] = i in front
    return rows


def comparison_rows(manager: Any, models: list[str], runtimes: list[str] | None, *, dataset: str | None = None,
                    device: str | list[str] = "CPU", iterations: int = 100, warmup: int = 10,
                    browser: str | None = None, inputs: dict[str, Any] | None = None,
                    paired: bool = True, threads: list[int] | None = None) -> list[dict[str, Any]]:
    """Submit every job through ``manager``, wait for all, return the finished table."""
    from edgestudio.core.jobs import JobStatus

    planned = plan_rows(models, runtimes, dataset=dataset, device=device, iterations=iterations, warmup=warmup,
                        inputs=inputs, browser=browser, threads=threads)
    submitted = [(row, [(spec.kind, manager.submit(spec)) for spec in specs]) for row, specs in planned]
    for row, jobs in submitted:
        for kind, job_id in jobs:
            rec = manager.wait(job_id)
            apply_result(row, kind, rec.status is JobStatus.SUCCEEDED, rec.result, rec.error)
    rows = [row for row, _ in submitted]
    spec = paired_spec(rows) if paired else None
    if spec is not None:
        rec = manager.wait(manager.submit(spec))
        if rec.status is JobStatus.SUCCEEDED and rec.result:
            apply_paired(rows, rec.result)
    rows = finalize_rows(rows)
    if not any(r.get("p50_ms") is not None for r in rows):
        raise EdgeStudioError(None, "no variant could be measured: " + "; ".join(r["error"] or "" for r in rows))
    return rows
