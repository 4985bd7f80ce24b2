"""Comparing variants: a batch of benchmarks (and evaluations) of variants x runtimes x devices, then the paired round
that ranks them and the checks that runtimes agree on an artifact's outputs, each result fed to the window's
comparison view as it lands. A finished comparison is recorded in the workspace; it can be reopened."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgestudio.app.comparison import ComparisonSession, Step
from edgestudio.core.jobs import JobKind
from edgestudio.gui.bridge import JobBridge
from edgestudio.gui.model_actions import runtimes_for

if TYPE_CHECKING:
    from edgestudio.gui.main_window import MainWindow


def _comparison_title(rows: list[dict[str, Any]]) -> str:
    """``Comparison of 3 variants on 2 runtimes/devices``, with the numbers' grammar right."""
    n = len({r["model"] for r in rows})
    t = len({(r["runtime"], r.get("device")) for r in rows})
    return (f"Comparison of {n} variant{'s' if n != 1 else ''} on {t} runtime{'s' if t != 1 else ''}"
            f"/device{'s' if t != 1 else ''}")


class CompareController:
    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self.router = window.router
        self.session: ComparisonSession | None = None  # the comparison running (or the last one)
        self.rows: list[dict[str, Any]] = []  # its rows, filled as its jobs end
        self.setup: Any = None  # the set-up dialog
        self._ray_bridge: JobBridge | None = None

    def compare_dialog(self, model_ids: list[int]) -> Any:
        """Pick variants x runtimes x devices, then run them as one batch."""
        from edgestudio.core.formats import ModelFormat
        from edgestudio.gui.compare_dialog import CompareDialog

        w = self.window
        runs = {f.value: runtimes_for(f) for f in ModelFormat}
        if self.setup is not None:  # one set-up dialog at a time
            self.setup.close()
            self.setup.deleteLater()
        dlg = CompareDialog(w.workspace.models(), model_ids, w.devices, runs,
                            dataset="", parent=w, data_for=lambda i: w.data_for(i).get("evaluation"))
        dlg.accepted.connect(lambda: self.compare(dlg.model_ids(), dataset=dlg.dataset.text().strip(),
                                                  iterations=dlg.iterations.value(), targets=dlg.chosen_targets(),
                                                  executor=dlg.run_on.currentData(), threads=dlg.thread_counts()))
        self.setup = dlg
        dlg.show()
        return dlg

    def ray_bridge(self) -> JobBridge:
        """Jobs on a local Ray cluster (started on first use), reported like the pool's: the jobs panel lists them,
        their results land in the workspace and fill the comparison as each task ends."""
        if self._ray_bridge is None:
            from edgestudio.execution.ray_executor import RayExecutor

            w = self.window
            rb = JobBridge(w.workspace, executor=RayExecutor())
            rb.queued.connect(w.jobs.on_queued)
            rb.started.connect(w.jobs.on_started)
            rb.started.connect(w._job_started)  # the live chart follows a Ray benchmark too: its samples
            rb.samples.connect(w._samples)      # come back through a Ray queue as it runs
            rb.progress.connect(w.jobs.on_progress)
            rb.log.connect(w.jobs.on_log)
            rb.finished.connect(w._job_finished)
            self._ray_bridge = rb
        return self._ray_bridge

    def shutdown(self) -> None:
        if self._ray_bridge is not None:
            self._ray_bridge.shutdown()

    def compare(self, model_ids: list[int], dataset: str | None = None, iterations: int = 100,
                targets: list[tuple[str, str]] | None = None, executor: str = "local",
                threads: list[int] | None = None) -> list[str]:
        """Benchmark (and evaluate) the variants as one batch: on ``targets`` (runtime, device) pairs where the
        runtime runs the variant's format, by default on every runtime that runs it, on the CPU; ``executor``
        ``ray`` runs each job as a task on a local Ray cluster (the final paired round runs here); ``threads``: a
        thread sweep (each variant at each count; default: the same count on every runtime)."""
        from edgestudio.bench.compare import plan_matrix

        w = self.window
        bridge = self.ray_bridge() if executor == "ray" else w.bridge

        dataset = (dataset or "").strip() or None
        entries = [w.workspace.model(i) for i in model_ids]
        if targets is None:
            targets = sorted({(rt, "CPU") for e in entries for rt in runtimes_for(e.format)})
        by_path = {e.path: e.id for e in entries}
        # each variant is fed its own inputs and judged on its own (its lineage's) evaluation data, unless one file
        # was given for all
        planned, skipped = plan_matrix([e.path for e in entries], targets, dataset=dataset, iterations=iterations,
                                       inputs_for=lambda path: w.inputs_for(by_path[path]), threads=threads,
                                       dataset_for=lambda path: w.data_for(by_path[path]).get("evaluation"))
        for tag in ("compare", "paired", "agree"):  # a comparison still running is dropped for the new one
            self.router.forget(tag)
        self.session = ComparisonSession(planned, self._parent_path)
        self.rows = self.session.rows
        jobs = self._submit(self.session.start(), bridge)
        note = f"; {len(skipped)} pairs left out (runtime does not run that format)" if skipped else ""
        w.comparison.set_rows(list(self.rows), f"Comparing {len(entries)} variants on "
                              f"{len(targets)} runtimes/devices ({len(jobs)} jobs running{note})…")
        w.docks["charts"].show()
        w.docks["charts"].raise_()
        w.chart_tabs.setCurrentWidget(w.comparison)
        return jobs

    # ------------------------------------------------------------------------------------ as its jobs run
    def _submit(self, steps: list[Step], bridge: JobBridge | None = None) -> list[str]:
        """Submit the session's next jobs: a row's to ``bridge`` (Ray's for a Ray comparison), the paired round and
        the checks here."""
        w = self.window
        jobs = []
        for step in steps:
            if step.tag == "row":
                job = (bridge or w.bridge).submit(step.spec)
                self.router.add(job, "compare", self.row_finished, step, on_started=self.row_started)
            else:
                job = w.bridge.submit(step.spec)
                self.router.add(job, step.tag, self.check_finished, step, only=step.tag == "paired")
            jobs.append(job)
        return jobs

    def row_started(self, job: str, step: Step) -> None:
        """A comparison's benchmarks run one at a time: the live chart follows each as it runs."""
        row = step.row or {}
        if step.spec.kind is JobKind.BENCH:
            self.window.live.start(job, f"{Path(row['model']).name} on {row['runtime']}/{row['device']} (comparison)")

    def row_finished(self, job: str, status: str, error: Any, result: Any, step: Step) -> None:
        """One of a row's jobs ended; after the last one, the paired round and the agreement checks start."""
        w = self.window
        if step.spec.kind is JobKind.BENCH:
            w.live.finish(job, result if status == "succeeded" else None)
        assert self.session is not None
        self._submit(self.session.finished(step, status, result, error))
        rows = self.session.table()
        left = self.session.left["row"]
        w.comparison.set_rows(rows, _comparison_title(rows) + (f" ({left} jobs left)" if left else
                                                               self.session.pending_text()))
        if self.session.done:
            self.keep(rows)

    def check_finished(self, job: str, status: str, error: Any, result: Any, step: Step) -> None:
        """The paired round or a check that runtimes agree ended: its figures join the rows; after the last one the
        comparison is recorded."""
        assert self.session is not None
        self.session.finished(step, status, result, error)
        rows = self.session.table()
        self.window.comparison.set_rows(rows, _comparison_title(rows) + self.session.pending_text())
        if self.session.done:
            self.keep(rows)

    def pending_text(self) -> str:
        return self.session.pending_text() if self.session is not None else ""

    def _parent_path(self, path: str) -> str | None:
        """The artifact's parent in the workspace (None for an imported model)."""
        workspace = self.window.workspace
        entry = workspace.model_by_path(path)
        if entry is None or entry.parent_id is None:
            return None
        try:
            return workspace.model(entry.parent_id).path
        except KeyError:
            return None

    # ------------------------------------------------------------------------------------------ recorded
    def keep(self, rows: list[dict[str, Any]]) -> None:
        """A finished comparison is recorded in the workspace: restored at the next start, reopened from the menu."""
        self.window.workspace.add_result(None, None, "comparison",
                                         {"rows": rows, "title": self.window.comparison.title.text()})

    def recorded(self) -> list[dict[str, Any]]:
        return self.window.workspace.results(kind="comparison")

    def reopen(self, result_id: int | None = None) -> bool:
        """Show a recorded comparison (the last one by default) in the comparison view."""
        import time

        found = [r for r in self.recorded() if result_id is None or r["id"] == result_id]
        if not found:
            return False
        r = found[-1]
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created_at"]))
        self.window.comparison.set_rows(r["data"]["rows"],
                                        f"{r['data'].get('title') or 'Comparison'} (recorded {when})")
        return True
