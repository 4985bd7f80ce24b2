"""The main window: model browser (left), details (centre), jobs (bottom), charts and the optimization
panel (right). Docks can be rearranged; the layout is remembered. Every action is a job in the pool.

The menus and their dialogs are in :mod:`~edgestudio.gui.actions`, the actions on models in
:mod:`~edgestudio.gui.model_actions` (both mixed in), what reacts to each job in :mod:`~edgestudio.gui.job_router`,
comparisons in :mod:`~edgestudio.gui.compare_controller`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QMessageBox, QTabWidget, QWidget

from edgestudio import __version__
from edgestudio.core.errors import EdgeStudioError
from edgestudio.core.jobs import JobKind, JobSpec
from edgestudio.core.workspace import Workspace
from edgestudio.gui.actions import WindowActions
from edgestudio.gui.bridge import JobBridge
from edgestudio.gui.browser import ModelBrowser
from edgestudio.gui.compare_controller import CompareController
from edgestudio.gui.details import DetailsView
from edgestudio.gui.job_router import JobRouter
from edgestudio.gui.jobs_panel import JobsPanel, kind_text
from edgestudio.gui.model_actions import ModelActions
from edgestudio.gui.optimize_panel import OptimizePanel

if TYPE_CHECKING:
    from edgestudio.gui.charts import LiveLatencyChart
    from edgestudio.gui.comparison_view import ComparisonView


def _job_label(spec: Any) -> str:
    """``bench digits.onnx``, ``convert → TFLite model.keras`` (the jobs panel's words), or a call's function name."""
    if spec.kind is JobKind.CALL:
        return str((spec.options or {}).get("function", "call")).rsplit(":", 1)[-1].replace("_", " ")
    return f"{kind_text(spec.to_dict())} {Path(spec.model or '').name}".strip()


WARM_UP_DELAY_MS = 150  # after the first paint of the window


WATCH_MS = 1000  # how often the workspace is checked for other processes' writes


class MainWindow(WindowActions, ModelActions, QMainWindow):
    _imported = Signal(object, object, object)  # ids, errors, then: from the import thread to the GUI thread

    def __init__(self, workspace: Workspace, bridge: JobBridge | None = None, *, use_webengine: bool = True,
                 settings: QSettings | None = None) -> None:
        super().__init__()
        self.workspace = workspace
        self.use_webengine = use_webengine
        self.bridge = bridge or JobBridge(workspace)
        self.settings = settings or QSettings("EdgeStudio", "EdgeStudio")
        self.setWindowTitle(f"EdgeStudio {__version__} — {workspace.root}")
        self.resize(1400, 860)
        self.setDockNestingEnabled(True)
        self._info: dict[str, dict[str, Any]] = {}  # model path -> what inspecting it found
        self.router = JobRouter(self)  # what reacts to each job this window started
        self.compare_controller = CompareController(self)
        from PySide6.QtGui import QGuiApplication

        # closing with jobs running asks first (not offscreen: nobody could answer)
        self.confirm_quit = QGuiApplication.platformName() != "offscreen"
        self.recipe_results: dict[str, dict[str, Any]] = {}
        self.devices: list[dict[str, str]] = []

        self.details = DetailsView(use_webengine)
        self.details.inputs.saved.connect(self._save_inputs)
        self.setCentralWidget(self.details)
        self.browser = ModelBrowser()
        self.jobs = JobsPanel()
        self.optimize = OptimizePanel(self.bridge)
        self.optimize.data_changed.connect(self._save_data)
        from edgestudio.gui.devices_panel import DevicesPanel

        self.devices_panel = DevicesPanel(self.bridge)
        self.devices_panel.changed.connect(self.detect_devices)
        # The charts (pyqtgraph + superqt: ~0.4 s of imports) are built just after the window is shown, or on
        # first use, whichever comes first: until then the tabs hold placeholders.
        self._live: LiveLatencyChart | None = None
        self._comparison: ComparisonView | None = None
        self.chart_tabs = QTabWidget()
        for name in ("Live benchmark", "Comparison"):
            placeholder = QLabel("Loading charts…")
            placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self.chart_tabs.addTab(placeholder, name)
        self.docks = {
            "models": self._dock("Models", self.browser, Qt.DockWidgetArea.LeftDockWidgetArea),
            "jobs": self._dock("Jobs", self.jobs, Qt.DockWidgetArea.BottomDockWidgetArea),
            "charts": self._dock("Charts", self.chart_tabs, Qt.DockWidgetArea.RightDockWidgetArea),
            "optimize": self._dock("Optimize", self.optimize, Qt.DockWidgetArea.RightDockWidgetArea),
            "devices": self._dock("Devices", self.devices_panel, Qt.DockWidgetArea.RightDockWidgetArea),
        }
        self.tabifyDockWidget(self.docks["charts"], self.docks["optimize"])
        self.tabifyDockWidget(self.docks["optimize"], self.docks["devices"])
        self.docks["charts"].raise_()
        self.resizeDocks([self.docks["models"], self.docks["charts"]], [400, 560], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["jobs"]], [210], Qt.Orientation.Vertical)
        self._build_actions()
        self.status_workspace = QLabel(str(workspace.root))
        self.statusBar().addPermanentWidget(self.status_workspace)

        self.browser.import_requested.connect(self.import_paths_async)
        self._imports_running = 0
        self._untrusted: list[tuple[Path, str]] = []  # models an import set aside: the window asks about them
        self._imported.connect(self._on_imported)
        self.browser.selected.connect(self.show_model)
        self.browser.action.connect(self.model_action)
        self.browser.convert_dropped.connect(self.convert_dropped)
        self.jobs.cancel_requested.connect(self.bridge.cancel)
        self.jobs.fix_requested.connect(self.fix)
        self.details.link_clicked.connect(self.fix)
        self.optimize.fix_requested.connect(self.fix)
        b = self.bridge
        b.queued.connect(self.jobs.on_queued)
        b.started.connect(self.jobs.on_started)
        b.started.connect(self._job_started)
        b.progress.connect(self.jobs.on_progress)
        b.log.connect(self.jobs.on_log)
        b.samples.connect(self._samples)
        b.finished.connect(self._job_finished)

        self.jobs.load_history(workspace.jobs(limit=200))
        self.refresh()
        self._restore_layout()
        self.detect_devices()
        # another process (a CLI, a second studio) writing to this workspace shows up here within a second
        self._change_seq = workspace.last_change()
        self._watch_timer = QTimer(self)
        self._watch_timer.timeout.connect(self._check_workspace)
        self._watch_timer.start(WATCH_MS)
        self._warm_timer = QTimer(self)  # a child: it dies with the window, never fires on a deleted one
        self._warm_timer.setSingleShot(True)
        self._warm_timer.timeout.connect(self._warm_up)
        self._warm_timer.start(WARM_UP_DELAY_MS)

    def _warm_up(self) -> None:
        """After the window is up: build the charts, import the engines' light modules (no heavy runtime),
        so that the first click does not wait for them."""
        if self.bridge.closed:  # the window went away before its warm-up (a workspace switch)
            return
        self._ensure_charts()
        import edgestudio.bench.compare  # noqa: F401
        import edgestudio.conversion.engine  # noqa: F401
        from edgestudio.backends.converters import CONVERTERS

        CONVERTERS.all()
        if not self._compare and not self.comparison.rows:
            self.reopen_comparison()  # the last comparison of this workspace, as it was recorded
        if self.live.job_id is None:
            self.show_last_benchmark()

    def show_last_benchmark(self) -> bool:
        """The workspace's last benchmark on the live chart (a restored session's chart is not left empty)."""
        import time

        recorded = self.workspace.results(kind="bench")
        if not recorded:
            return False
        r = recorded[-1]
        d = r["data"]
        try:
            name = self.workspace.model(r["model_id"]).name if r["model_id"] is not None else Path(d["model"]).name
        except (KeyError, TypeError):
            name = Path(str(d.get("model", "?"))).name
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created_at"]))
        self.live.show_recorded(d, f"{name} on {d.get('runtime')}/{d.get('device', 'CPU')}, {when}")
        return True

    def _ensure_charts(self) -> None:
        if self._live is not None:
            return
        from edgestudio.gui.charts import LiveLatencyChart
        from edgestudio.gui.comparison_view import ComparisonView

        self._live = LiveLatencyChart()
        self._comparison = ComparisonView()
        self._comparison.point_clicked.connect(self._select_path)
        current = self.chart_tabs.currentIndex()
        for i, (widget, name) in enumerate(((self._live, "Live benchmark"), (self._comparison, "Comparison"))):
            old = self.chart_tabs.widget(i)
            self.chart_tabs.removeTab(i)
            old.deleteLater()
            self.chart_tabs.insertTab(i, widget, name)
        self.chart_tabs.setCurrentIndex(current)

    @property
    def live(self) -> LiveLatencyChart:
        self._ensure_charts()
        assert self._live is not None
        return self._live

    @property
    def comparison(self) -> ComparisonView:
        self._ensure_charts()
        assert self._comparison is not None
        return self._comparison

    def detect_devices(self) -> str:
        """List every device the runtimes here and on the registered remote devices see (a job: remote ones are
        asked over the network)."""
        job = self.bridge.submit(JobSpec(JobKind.CALL, quick=True, options={
            "function": "edgestudio.execution.remote:all_device_dicts"}))
        return self.router.add(job, "devices", self.router.devices_listed, only=True)

    def _samples(self, job_id: str, samples: list[tuple[int, float]]) -> None:
        if self._live is not None:  # a benchmark started from this window has built the charts
            self._live.add_samples(job_id, samples)

    # ------------------------------------------------------------------------------------------ building
    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower()}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock


    def _restore_layout(self) -> None:
        self._default_state = self.saveState()
        geometry, state = self.settings.value("geometry"), self.settings.value("state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)

    def _reset_layout(self) -> None:
        self.restoreState(self._default_state)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        ask = self.confirm_quit and not getattr(self, "_switching", False)
        running = self.running_jobs() if ask else []
        if running and QMessageBox.question(
                self, "Quit", f"{len(running)} job(s) are still running (" + ", ".join(
                    _job_label(r.spec) for r in running[:3]) +
                "). Quit and cancel them? Finished results are kept.") != QMessageBox.StandardButton.Yes:
            event.ignore()
            return
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("state", self.saveState())
        if not getattr(self, "_switching", False):
            self.settings.setValue("workspace", str(self.workspace.root))
        self.details.graph.stop()
        super().closeEvent(event)

    # -------------------------------------------------------------------------------------------- models
    def _check_workspace(self) -> None:
        if self.bridge.closed:
            return
        try:
            self.sync()
        except Exception:  # closed or unreadable for a moment: look again next time
            return

    def sync(self) -> None:
        """Apply what changed in the workspace since the last look, written by this window or another process
        (a CLI, a second studio): only the rows that changed are touched."""
        seq, changes = self.workspace.changes_since(self._change_seq)
        self._change_seq = seq
        if not changes:
            return
        if changes.everything:
            self.refresh()
        else:
            entries = []
            for model_id in changes.models | (changes.results - changes.removed_models):
                try:
                    entries.append(self.workspace.model(model_id))
                except KeyError:
                    changes.removed_models.add(model_id)
            if not self.browser.apply_changes(entries, changes.removed_models):
                self.refresh()
            current = self.browser.current_id()
            if current is not None and current in {e.id for e in entries}:
                self.show_model(current)
        # other processes' jobs, finished ones (this window's own rows follow their live events)
        others = []
        for job_id in changes.jobs - set(self.jobs._items):
            try:
                rec = self.workspace.job(job_id)
            except KeyError:
                continue
            if rec.status.finished:
                others.append(rec)
        if others:
            self.jobs.load_history(others)

    def refresh(self) -> None:
        """Rebuild the model tree from the workspace."""
        self._change_seq = self.workspace.last_change()
        models = self.workspace.models()
        self.browser.set_models(models)
        self.statusBar().showMessage(f"{len(models)} models in the workspace", 5000)

    def _is_sample(self, entry: Any) -> bool:
        """Made from one of the bundled sample models (their labeled split is then the obvious evaluation data)."""
        from edgestudio.samples import samples_dir

        try:
            root = self.workspace.lineage(entry.id)[0]
        except KeyError:
            return False
        origin = Path((root.options or {}).get("imported_from") or root.path)
        return origin.parent.resolve() == samples_dir().resolve()

    def show_model(self, model_id: int) -> None:
        try:
            entry = self.workspace.model(model_id)
        except KeyError:
            return
        self.details.show_entry(entry, self.workspace.lineage(model_id), self.workspace.inputs_for(model_id))
        self.enable_for(entry)
        self.details.show_measurements(self.workspace.results(model_id))
        self.optimize.set_model(entry, sample=self._is_sample(entry), data=self.workspace.data_for(model_id))
        self.optimize.set_inputs(self.workspace.inputs_for(model_id))
        info = self._info.get(entry.path)
        if info is not None:
            self.details.show_info(info)
        elif entry.path not in self.router.jobs("inspect").values():
            job = self.bridge.submit(JobSpec(JobKind.INSPECT, model=entry.path))
            self.router.add(job, "inspect", self.router.inspected, entry.path)

    def inputs_for(self, model_id: int) -> dict[str, Any]:
        """The input specification the user saved for this model (or an ancestor): every job uses it."""
        return self.workspace.inputs_for(model_id)

    def data_for(self, model_id: int) -> dict[str, str]:
        """The model's data files (``calibration``, ``evaluation``), its own or its lineage's; a sample model's
        evaluation defaults to the samples' labeled split. Never another model's."""
        data = self.workspace.data_for(model_id)
        sample_eval = getattr(self.optimize, "_sample_dataset", None)
        if "evaluation" not in data and sample_eval:
            try:
                if self._is_sample(self.workspace.model(model_id)):
                    data["evaluation"] = sample_eval
            except KeyError:
                pass
        return data

    def common_data(self, model_ids: list[int], kind: str = "evaluation") -> str | None:
        """The ``kind`` data file the models share (each one's own or its lineage's), None when any has another or
        none: a batch of several models is never fed one model's data."""
        found = {self.data_for(i).get(kind) for i in model_ids}
        return found.pop() if len(found) == 1 else None

    def _save_data(self, model_id: int, data: dict[str, Any]) -> None:
        try:
            self.workspace.set_data(model_id, data)
        except KeyError:  # the model went away meanwhile
            pass

    def _save_inputs(self, spec: dict[str, Any]) -> None:
        entry = self.details._entry
        if entry is None:
            return
        self.workspace.set_inputs(entry.id, spec)
        self.optimize.set_inputs(spec)
        self.statusBar().showMessage(f"Inputs for {entry.name} saved: used by every check and benchmark", 5000)

    def _select_path(self, path: str) -> None:
        entry = self.workspace.model_by_path(path)
        if entry is not None:
            self.browser.select(entry.id)

    # ---------------------------------------------------------------------------------------------- jobs
    def shutdown(self) -> None:
        """Stop the jobs; call before closing the workspace (no slot touches it afterwards)."""
        self.details.graph.stop()
        if getattr(self, "explorer_window", None) is not None:
            self.explorer_window.view.stop()
        self.bridge.shutdown()
        self.compare_controller.shutdown()

    def _job_started(self, job: str) -> None:
        if not self.bridge.closed:
            self.router.started(job)

    def _job_finished(self, job: str, status: str, error: Any, result: Any) -> None:
        if not self.bridge.closed:  # delivered after shutdown: the workspace may be closed already
            self.router.finished(job, status, error, result)

    # ------------------------------------------------------------------------------------------ comparisons
    def compare(self, model_ids: list[int], *args: Any, **kwargs: Any) -> list[str]:
        """Benchmark (and evaluate) the variants as one batch: :meth:`CompareController.compare`."""
        return self.compare_controller.compare(model_ids, *args, **kwargs)

    def compare_dialog(self, model_ids: list[int]) -> Any:
        return self.compare_controller.compare_dialog(model_ids)

    def comparisons(self) -> list[dict[str, Any]]:
        """The comparisons recorded in this workspace."""
        return self.compare_controller.recorded()

    def reopen_comparison(self, result_id: int | None = None) -> bool:
        return self.compare_controller.reopen(result_id)

    # the jobs still running for each purpose (read by the tests and the screenshots script)
    @property
    def _compare(self) -> dict[str, Any]:
        return self.router.jobs("compare")  # job -> its comparison step (app.comparison.Step: the row, the job)

    @property
    def _paired_job(self) -> str | None:
        return next(iter(self.router.jobs("paired")), None)

    @property
    def _agree_jobs(self) -> set[str]:
        return set(self.router.jobs("agree"))

    @property
    def _bench_jobs(self) -> dict[str, int]:
        return self.router.jobs("bench")  # job -> model id

    @property
    def _recipe_jobs(self) -> dict[str, str]:
        return self.router.jobs("recipe")  # job -> recipe file name

    def running_jobs(self, *, housekeeping: bool = False) -> list[Any]:
        """Jobs not finished yet; without ``housekeeping``, only the user's work (not the device listing, an
        inspection of the selected model and the like)."""
        if self.bridge.closed:
            return []
        from edgestudio.gui.jobs_panel import is_housekeeping

        return [r for r in self.bridge.manager.pool.jobs() if not r.status.finished
                and (housekeeping or not is_housekeeping(r.spec.to_dict()))]

    def switch_workspace(self, folder: str | Path, *, confirm: bool = True) -> MainWindow | None:
        """Open another workspace now: a window on it replaces this one (jobs of this one are stopped first, after
        asking when some are running). A folder that is not a workspace yet becomes one."""
        from PySide6.QtWidgets import QApplication

        from edgestudio.core.workspace import Workspace

        running = self.running_jobs()
        if confirm and running and QMessageBox.question(
                self, "Open workspace", f"{len(running)} job(s) are running in this workspace; stop them and switch?"
        ) != QMessageBox.StandardButton.Yes:
            return None
        try:
            ws = Workspace(folder)
        except EdgeStudioError as exc:
            QMessageBox.warning(self, "Open workspace", exc.one_line())
            return None
        win = MainWindow(ws, use_webengine=self.use_webengine, settings=self.settings)
        app = QApplication.instance()
        if app is not None:  # the app closes the new workspace when it quits
            app.aboutToQuit.connect(win.shutdown)
            app.aboutToQuit.connect(ws.close)
        self.settings.setValue("workspace", str(ws.root))
        win.show()
        self._switching = True
        self.shutdown()
        self.close()
        self.workspace.close()
        return win

