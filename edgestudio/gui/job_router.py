"""Which callback reacts to each job the window started: one table (job id -> route) and one place that dispatches
a job's start and end. The jobs panel hears of every job's end first; a job nobody routed (a conversion from the
wizard or a dropped model, an optimization from the panel) ends in :meth:`JobRouter.made`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgestudio.core.jobs import JobKind
from edgestudio.gui.wording import ended_text, studio_text

if TYPE_CHECKING:
    from edgestudio.gui.main_window import MainWindow

Finished = Callable[[str, str, Any, Any, Any], None]  # job, status, error, result, the route's payload
Started = Callable[[str, Any], None]  # job, the route's payload


@dataclass
class Route:
    tag: str  # what the job is for: "devices", "inspect", "bench", "recipe", "compare", "paired", "agree"
    on_finished: Finished
    payload: Any = None  # what the callback needs besides the job's result (a model path, a comparison row, ...)
    on_started: Started | None = None


class JobRouter:
    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self._routes: dict[str, Route] = {}

    def add(self, job: str, tag: str, on_finished: Finished, payload: Any = None, *,
            on_started: Started | None = None, only: bool = False) -> str:
        """Route ``job``'s end to ``on_finished`` (its start to ``on_started``). ``only``: it replaces the jobs of
        the same tag (their ends go unheard: the latest device listing or paired round is the one that counts)."""
        if only:
            self.forget(tag)
        self._routes[job] = Route(tag, on_finished, payload, on_started)
        return job

    def jobs(self, tag: str) -> dict[str, Any]:
        """The routed jobs of ``tag`` not finished yet, each with its payload."""
        return {job: route.payload for job, route in self._routes.items() if route.tag == tag}

    def forget(self, tag: str) -> None:
        for job in self.jobs(tag):
            del self._routes[job]

    def started(self, job: str) -> None:
        route = self._routes.get(job)
        if route is not None and route.on_started is not None:
            route.on_started(job, route.payload)

    def finished(self, job: str, status: str, error: Any, result: Any) -> None:
        self.window.jobs.on_finished(job, status, error, result)
        route = self._routes.pop(job, None)
        if route is None:
            self.made(job, status, error, result)
        else:
            route.on_finished(job, status, error, result, route.payload)

    # --------------------------------------------------------------------------------- what each job's end does
    def devices_listed(self, job: str, status: str, error: Any, result: Any, _: Any) -> None:
        w = self.window
        if status == "succeeded":
            w.devices = result["value"]
            w.optimize.set_devices(w.devices)
            w.status_workspace.setText(f"{w.workspace.root} · {len(w.devices)} devices")

    def inspected(self, job: str, status: str, error: Any, result: Any, path: str) -> None:
        w = self.window
        current = w.browser.current_id()
        entry = w.workspace.model(current) if current is not None else None
        if status == "succeeded":
            w._info[path] = result
            if entry is not None and entry.path == path:
                w.details.show_info(result)
        elif entry is not None and entry.path == path:
            w.details.show_error(error or status)

    def recipe_finished(self, job: str, status: str, error: Any, result: Any, name: str) -> None:
        w = self.window
        w.sync()
        if status == "succeeded":
            w.recipe_results[job] = result
            w.jobs.add_steps(job, result)  # a row per step under the recipe's: verdict, time, artifact
            failed = [f"step {r['step']} {g['gate']}" for r in result["steps"] for g in r["gates"] if not g["passed"]]
            w.statusBar().showMessage(f"Recipe {name}: {result['completed']} of {result['of']} steps, " + (
                "all gates passed" if result["passed"] else "FAILED: " + studio_text(", ".join(failed)))
                + " (each step in Jobs)", 30000)
            made = [a["path"] for a in result.get("artifacts") or []]
            last = w.workspace.model_by_path(made[-1]) if made else None
            if last is not None:
                w.browser.reveal(last.id)
        else:
            w.statusBar().showMessage(f"Recipe {name} {ended_text(status, error)}", 30000)

    def bench_finished(self, job: str, status: str, error: Any, result: Any, model_id: int) -> None:
        w = self.window
        ok = status == "succeeded"
        w.live.finish(job, result if ok else None)
        if ok and w.browser.current_id() == model_id:
            w.details.show_measurements(w.workspace.results(model_id))
        if not ok:
            w.statusBar().showMessage(f"Benchmark {ended_text(status, error)}", 10000)

    def made(self, job: str, status: str, error: Any, result: Any) -> None:
        """A conversion or optimization ended: its artifact is shown under its parent, the panel follows."""
        w = self.window
        try:
            kind = w.bridge.get(job).spec.kind
        except KeyError:
            return
        if kind not in (JobKind.CONVERT, JobKind.OPTIMIZE):
            return
        from edgestudio.gui.details import growth_text

        ok = status == "succeeded"
        w.sync()
        source = w.optimize.entry
        spec_model = w.bridge.get(job).spec.model
        parent_ops = (w._info.get(spec_model or "") or {}).get("ops")
        mine = w.optimize.job_finished(job, ok, result, error, status=status, parent_ops=parent_ops)
        if ok:
            from edgestudio.jobs.results import OptimizeResult, ResultError, typed_result

            try:
                typed = typed_result(w.bridge.get(job).spec, result or {})
            except ResultError as exc:
                w.statusBar().showMessage(f"{kind.value} finished, but its result could not be read: {exc}", 15000)
                return
            ids = typed.envelope.model_ids or []
            if ids:  # shown, not selected: the selection and the panel stay on what the user works on (a
                w.browser.reveal(ids[-1])  # second click must never quantize the quantized model)
            if mine and source is not None:
                w.optimize.set_model(source, sample=w._is_sample(source), data=w.data_for(source.id))
            body = typed.body  # ConvertResult, OptimizeResult, or auto-optimize's table (a mapping)
            output = body.get("output") if isinstance(body, dict) else body.output
            grew = (growth_text(body.size_bytes.before, body.size_bytes.after, parent_ops)
                    if isinstance(body, OptimizeResult) else None)
            name = Path(output).name if output else "no variant kept"
            if grew:  # an INT8 model larger than its FP32 parent: said where the user looks, with the cause
                w.jobs.on_log(job, f"note: {name} is {grew}")
            w.statusBar().showMessage(f"{kind.value} finished: {name}" + (" (in Models, under its parent)" if output
                                                                           else "") + (f" — ⚠ {grew}" if grew else ""),
                                      20000 if grew else 8000)
        else:
            w.statusBar().showMessage(f"{kind.value} {ended_text(status, error)}", 15000)
