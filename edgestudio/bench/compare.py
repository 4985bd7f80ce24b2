"""Compare variants: one row per (model variant, runtime, device) with latency, throughput, size and
accuracy, sorted by p50, the accuracy-vs-latency Pareto front marked. Jobs run through a JobManager."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgestudio.core.errors import EdgeStudioError
from edgestudio.core.formats import detect_format
from edgestudio.core.modelinfo import model_size_bytes


def comparison_rows(manager: Any, models: list[str], runtimes: list[str] | None, *, dataset: str | None = None,
                    device: str = "CPU", iterations: int = 100, warmup: int = 10) -> list[dict[str, Any]]:
    """Submit a benchmark (and an evaluation, with ``dataset``) per model x runtime; wait; build the table."""
    from edgestudio.backends.runtimes import RUNTIMES, runtime_for_format
    from edgestudio.core.jobs import JobKind, JobSpec, JobStatus
    from edgestudio.optimization.auto import pareto_front

    pending: list[tuple[dict[str, Any], str, str | None]] = []
    rows: list[dict[str, Any]] = []
    for model in models:
        fmt = detect_format(model)
        for rt in runtimes or [runtime_for_format(fmt)]:
            row: dict[str, Any] = {"model": str(model), "format": fmt.value, "runtime": rt, "device": device,
                                   "size_bytes": model_size_bytes(Path(model), fmt), "error": None}
            rows.append(row)
            cls = RUNTIMES.all().get(rt)
            if cls is None or fmt not in cls.formats:
                row["error"] = f"{rt} does not run {fmt.label} models"
                continue
            bench = manager.submit(JobSpec(JobKind.BENCH, model=str(model), runtime=rt, device=device,
                                           options={"iterations": iterations, "warmup": warmup, "keep_samples": False}))
            ev = manager.submit(JobSpec(JobKind.EVAL, model=str(model), runtime=rt, device=device,
                                        options={"dataset": dataset})) if dataset else None
            pending.append((row, bench, ev))
    for row, bench, ev in pending:
        b = manager.wait(bench)
        if b.status is JobStatus.SUCCEEDED:
            lat = b.result["latency_ms"]
            row.update(p50_ms=lat["p50"], p90_ms=lat["p90"], p99_ms=lat["p99"], mean_ms=lat["mean"],
                       throughput_fps=b.result["throughput_fps"], load_ms=b.result["load_ms"],
                       precision=b.result.get("precision"))
        else:
            row["error"] = b.error
        if ev:
            e = manager.wait(ev)
            if e.status is JobStatus.SUCCEEDED:
                row.update(accuracy=e.result["top1"], top5=e.result.get("top5"))
            else:
                row["error"] = row["error"] or e.error
    rows.sort(key=lambda r: (r.get("p50_ms") is None, r.get("p50_ms") or 0.0))
    front = pareto_front(rows) if dataset else set()
    for i, r in enumerate(rows):
        r["pareto"] = i in front
    if not any(r.get("p50_ms") is not None for r in rows):
        raise EdgeStudioError(None, "no variant could be measured: " + "; ".join(r["error"] or "" for r in rows))
    return rows
