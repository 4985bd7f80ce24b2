"""A comparison, run through a job manager: the bench rows, the runtimes' agreement checks and the paired final
round (the CLI's `compare`; the studio runs the same steps from its event loop)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgestudio.bench.compare import (
    agreement_specs,
    apply_agreement,
    apply_paired,
    apply_result,
    finalize_rows,
    plan_rows,
)
from edgestudio.core.errors import EdgeStudioError


def comparison_rows(manager: Any, models: list[str], runtimes: list[str] | None, *, dataset: str | None = None,
                    device: str | list[str] = "CPU", iterations: int = 100, warmup: int = 10,
                    browser: str | None = None, inputs: dict[str, Any] | None = None,
                    paired: bool = True, threads: list[int] | None = None,
                    parent_for: Callable[[str], str | None] | None = None) -> list[dict[str, Any]]:
    """Submit every job through ``manager``, wait for all, return the finished table."""
    from edgestudio.core.jobs import JobStatus
    from edgestudio.execution.block_server import paired_job

    planned = plan_rows(models, runtimes, dataset=dataset, device=device, iterations=iterations, warmup=warmup,
                        inputs=inputs, browser=browser, threads=threads)
    submitted = [(row, [(spec.kind, manager.submit(spec)) for spec in specs]) for row, specs in planned]
    for row, jobs in submitted:
        for kind, job_id in jobs:
            rec = manager.wait(job_id)
            apply_result(row, kind, rec.status is JobStatus.SUCCEEDED, rec.result, rec.error)
    rows = [row for row, _ in submitted]
    for check in agreement_specs(rows, parent_for):
        rec = manager.wait(manager.submit(check))
        if rec.status is JobStatus.SUCCEEDED and rec.result:
            apply_agreement(rows, rec.result)
    spec = paired_job(rows) if paired else None
    if spec is not None:
        rec = manager.wait(manager.submit(spec))
        if rec.status is JobStatus.SUCCEEDED and rec.result:
            apply_paired(rows, rec.result)
    rows = finalize_rows(rows)
    if not any(r.get("p50_ms") is not None for r in rows):
        raise EdgeStudioError(None, "no variant could be measured: " + "; ".join(r["error"] or "" for r in rows))
    return rows
