"""One comparison, written once for the CLI and the studio: the bench (and evaluation) rows, then the runtimes'
agreement checks and the paired final round, each result put on the rows as it arrives.

:class:`ComparisonSession` holds the state and says which jobs come next; it runs no job itself. The CLI's
`compare` drives it through a job manager and waits (:func:`comparison_rows`); the studio drives it from its event
loop, submitting what :meth:`ComparisonSession.finished` returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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
from edgestudio.core.jobs import JobSpec


@dataclass(frozen=True)
class Step:
    """A job of the comparison: ``tag`` is "row" (one of a row's bench/eval jobs), "paired" or "agree"."""

    tag: str
    spec: JobSpec
    row: dict[str, Any] | None = None


class ComparisonSession:
    """The rows of a comparison and what is still to run. ``planned``: (row, its jobs) pairs from
    :func:`~edgestudio.bench.compare.plan_rows` / ``plan_matrix``; ``parent_for``: an artifact's parent model (the
    agreement checks also compare with it)."""

    def __init__(self, planned: list[tuple[dict[str, Any], list[JobSpec]]],
                 parent_for: Callable[[str], str | None] | None = None, *, paired: bool = True) -> None:
        self.rows: list[dict[str, Any]] = [row for row, _ in planned]
        self._first = [Step("row", spec, row) for row, specs in planned for spec in specs]
        self._parent_for = parent_for
        self._paired = paired
        self.left = {"row": len(self._first), "paired": 0, "agree": 0}
        self.paired_status: str | None = None

    def start(self) -> list[Step]:
        """The first jobs: every row's."""
        return list(self._first) if self.left["row"] else self._after_rows()

    def finished(self, step: Step, status: str, result: dict[str, Any] | None, error: str | None) -> list[Step]:
        """``step``'s job ended (``status``: succeeded, failed or cancelled): its figures join the rows. Returns the
        jobs to submit next (after the last row's: the paired round and the agreement checks)."""
        self.left[step.tag] -= 1
        succeeded = status == "succeeded"
        if step.tag == "row":
            assert step.row is not None
            apply_result(step.row, step.spec.kind, succeeded, result, error)
            return [] if self.left["row"] else self._after_rows()
        if step.tag == "paired":
            self.paired_status = None if succeeded else f"paired round {status}: {error}"
            if succeeded and result:
                apply_paired(self.rows, result)
        elif succeeded and result:
            apply_agreement(self.rows, result)
        return []

    def _after_rows(self) -> list[Step]:
        from edgestudio.execution.block_server import paired_job

        steps = [Step("agree", spec) for spec in agreement_specs(self.rows, self._parent_for)]
        paired = paired_job(self.rows) if self._paired else None
        if paired is not None:  # the final ranking: every local variant loaded once, alternating blocks
            steps.append(Step("paired", paired))
        for s in steps:
            self.left[s.tag] += 1
        return steps

    @property
    def done(self) -> bool:
        return not any(self.left.values())

    def table(self) -> list[dict[str, Any]]:
        """The rows as they stand, sorted and marked (ranked by the paired round once it ran)."""
        return finalize_rows(self.rows)

    def pending_text(self) -> str:
        """A title's tail once every row's own jobs ended: what still runs, or how the rows were ranked."""
        waiting = [what for what, n in (("paired round", self.left["paired"]),
                                        ("checking the runtimes agree", self.left["agree"])) if n]
        if waiting:
            return " — " + " and ".join(waiting) + "…"
        flagged = sum(1 for r in self.rows if r.get("flag"))
        ranked = any(r.get("paired_p50_ms") is not None for r in self.rows)
        return (" — done" + (", ranked by a paired round (alternating blocks; p50 with its 95 % interval)" if ranked
                             else "")
                + (f" ({self.paired_status})" if self.paired_status else "")
                + (f"; ⚠ {flagged} row{'s' if flagged != 1 else ''} with a wrong answer, not ranked" if flagged else ""))

    def run(self, manager: Any) -> list[dict[str, Any]]:
        """Drive the whole comparison through ``manager`` (submit, wait), in the order the studio sees it: every
        row's jobs at once, then the checks and the paired round. Returns the finished table."""
        queue = self.start()
        while queue:
            submitted = [(step, manager.submit(step.spec)) for step in queue]
            queue = []
            for step, job_id in submitted:
                rec = manager.wait(job_id)
                queue += self.finished(step, rec.status.value, rec.result, rec.error)
        return self.table()


def comparison_rows(manager: Any, models: list[str], runtimes: list[str] | None, *, dataset: str | None = None,
                    device: str | list[str] = "CPU", iterations: int = 100, warmup: int = 10,
                    browser: str | None = None, inputs: dict[str, Any] | None = None,
                    paired: bool = True, threads: list[int] | None = None,
                    parent_for: Callable[[str], str | None] | None = None) -> list[dict[str, Any]]:
    """The CLI's `compare`: plan the rows, run the session through ``manager``, return the finished table."""
    planned = plan_rows(models, runtimes, dataset=dataset, device=device, iterations=iterations, warmup=warmup,
                        inputs=inputs, browser=browser, threads=threads)
    rows = ComparisonSession(planned, parent_for, paired=paired).run(manager)
    if not any(r.get("p50_ms") is not None for r in rows):
        raise EdgeStudioError(None, "no variant could be measured: " + "; ".join(r["error"] or "" for r in rows))
    return rows
