"""The main window: model browser (left), details (centre), jobs (bottom), charts and the optimization
panel (right). Docks can be rearranged; the layout is remembered. Every action is a job in the pool."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSettings, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QKeySequence
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QMessageBox, QTabWidget, QWidget

from edgestudio import __version__
from edgestudio.core.errors import EdgeStudioError
from edgestudio.core.formats import ModelFormat, detect_format
from edgestudio.core.jobs import JobKind, JobSpec
from edgestudio.core.workspace import Workspace
from edgestudio.gui.bridge import JobBridge
from edgestudio.gui.browser import ModelBrowser
from edgestudio.gui.details import DetailsView
from edgestudio.gui.jobs_panel import JobsPanel, kind_text
from edgestudio.gui.optimize_panel import OptimizePanel
from edgestudio.gui.paths import ask_folder, ask_open, ask_open_many, ask_save
from edgestudio.gui.wording import ended_text, studio_text

if TYPE_CHECKING:
    from edgestudio.gui.charts import ComparisonView, LiveLatencyChart


def _job_label(spec: Any) -> str:
    """``bench digits.onnx``, ``convert → TFLite model.keras`` (the jobs panel's words), or a call's function name."""
    if spec.kind is JobKind.CALL:
        return str((spec.options or {}).get("function", "call")).rsplit(":", 1)[-1].replace("_", " ")
    return f"{kind_text(spec.to_dict())} {Path(spec.model or '').name}".strip()


def _comparison_title(rows: list[dict[str, Any]]) -> str:
    """``Comparison of 3 variants on 2 runtimes/devices``, with the numbers' grammar right."""
    n = len({r["model"] for r in rows})
    t = len({(r["runtime"], r.get("device")) for r in rows})
    return (f"Comparison of {n} variant{'s' if n != 1 else ''} on {t} runtime{'s' if t != 1 else ''}"
            f"/device{'s' if t != 1 else ''}")


def _runtimes_for(fmt: Any) -> list[str]:
    from edgestudio.backends.runtimes import runtimes_for_format

    return runtimes_for_format(fmt) or ["onnxruntime"]


WARM_UP_DELAY_MS = 150  # after the first paint of the window


WATCH_MS = 1000  # how often the workspace is checked for other processes' writes


def package_runtimes_for(fmt: str) -> list[tuple[str, str]]:
    """(runtime, label) of each runtime a model of format ``fmt`` can be packaged for, the default first."""
    from edgestudio.core.catalog import runtime as decl
    from edgestudio.core.formats import ModelFormat
    from edgestudio.packaging.deploy import default_package_runtime, package_runtimes

    default = default_package_runtime(ModelFormat(fmt))
    names = [r for r in package_runtimes() if fmt in decl(r).formats]
    names.sort(key=lambda r: r != default)
    return [(r, decl(r).label) for r in names]


class MainWindow(QMainWindow):
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
        self._info: dict[str, dict[str, Any]] = {}
        self._inspect_jobs: dict[str, str] = {}  # job -> model path
        self._bench_jobs: dict[str, int] = {}
        self._recipe_jobs: dict[str, str] = {}  # job -> recipe file name
        from PySide6.QtGui import QGuiApplication

        # closing with jobs running asks first (not offscreen: nobody could answer)
        self.confirm_quit = QGuiApplication.platformName() != "offscreen"
        self.recipe_results: dict[str, dict[str, Any]] = {}
        self._compare: dict[str, tuple[dict[str, Any], str]] = {}  # job -> (row, kind)
        self._compare_rows: list[dict[str, Any]] = []
        self._paired_job: str | None = None  # a comparison's final paired round
        self._agree_jobs: set[str] = set()  # its checks that runtimes agree on an artifact's outputs
        self._paired_status: str | None = None
        self.devices: list[dict[str, str]] = []
        self._devices_job: str | None = None
        self.compare_setup: Any = None

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
        from edgestudio.gui.charts import ComparisonView, LiveLatencyChart

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
        self._devices_job = self.bridge.submit(JobSpec(JobKind.CALL, quick=True, options={
            "function": "edgestudio.execution.remote:all_device_dicts"}))
        return self._devices_job

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

    def _build_actions(self) -> None:
        def act(text: str, slot: Any, shortcut: Any = None, tip: str = "") -> QAction:
            a = QAction(text, self)
            a.triggered.connect(slot)
            if shortcut is not None:
                a.setShortcut(QKeySequence(shortcut))
            a.setStatusTip(tip)
            return a

        self.actions_ = {
            "import": act("&Import…", self._import_dialog, QKeySequence.StandardKey.Open, "Add models to the workspace"),
            "import_folder": act("Import &folder…", self._import_folder_dialog, "Ctrl+Shift+I",
                                 "Add a SavedModel or TF.js folder to the workspace"),
            "envs": act("Python &environments…", self.environments_dialog, None,
                        "Create environments jobs can run in; benchmark a model in one"),
            "workspace": act("Open or new &workspace…", self._open_workspace_dialog, None,
                             "Switch to another workspace now (an empty folder becomes a new one)"),
            "export_recipe": act("E&xport recipe…", self._export_recipe_dialog, None,
                                 "Write how the selected model was made (every step, option, input and gate) as a "
                                 "YAML recipe that `edgestudio run` replays headless"),
            "open_recipe": act("&Run a recipe…", self._open_recipe_dialog, None,
                               "Replay a recipe here: its artifacts join this workspace's lineage"),
            "quit": act("&Quit", self.close, QKeySequence.StandardKey.Quit),
            "convert": act("&Convert…", lambda: self.model_action("convert", self.browser.current_id()), "Ctrl+Shift+C",
                           "Convert the selected model to other formats"),
            "optimize": act("&Optimize…", lambda: self.model_action("optimize", self.browser.current_id()),
                            "Ctrl+Shift+O", "Quantize, compress or prune the selected model"),
            "benchmark": act("&Benchmark", lambda: self.model_action("benchmark", self.browser.current_id()), "Ctrl+B",
                             "Measure latency live (300 runs, the format's runtime, equal threads)"),
            "bench_settings": act("Benchmark with &settings…",
                                  lambda: self.model_action("bench_settings", self.browser.current_id()),
                                  "Ctrl+Shift+Alt+B", "Pick the runtime, device, threads, iterations or duration"),
            "compare": act("Co&mpare selected", lambda: self.model_action("compare", self.browser.current_id()),
                           "Ctrl+Shift+B", "Benchmark the selected variants on every runtime that runs them"),
            "why": act("&Why did accuracy drop?…", lambda: self.model_action("why", self.browser.current_id()), None,
                       "Compare the selected variant with its parent layer by layer: where they part"),
            "profile": act("&Profile layers…", lambda: self.model_action("profile", self.browser.current_id()), None,
                           "Time per layer and per op type, from the runtime's profiler"),
            "explore": act("Open in Model E&xplorer", lambda: self.model_action("explore", self.browser.current_id()),
                           None, "The selected model's graph in Google's Model Explorer (ONNX, TFLite)"),
            "explore_parent": act("Compare with parent in Model Explorer",
                                  lambda: self.model_action("explore_parent", self.browser.current_id()), None,
                                  "The selected variant and its parent side by side in Model Explorer, each node "
                                  "painted with its cosine to its twin and its time"),
            "distill": act("Di&still a smaller student…", lambda: self.model_action("distill", self.browser.current_id()),
                           None, "Knowledge distillation: train a smaller Keras student on unlabeled inputs"),
            "package": act("Deployment &package…", lambda: self.model_action("package", self.browser.current_id()),
                           None, "A zip to run the selected model where it will be deployed: runner, report, sources"),
            "reveal": act("&Reveal in folder", lambda: self.model_action("reveal", self.browser.current_id())),
            "delete": act("&Delete", lambda: self.model_action("delete", self.browser.current_id()),
                          QKeySequence.StandardKey.Delete),
            "graph_window": act("&Graph in its own window", lambda: self.details.toggle_graph_window(), "Ctrl+G",
                                "Give the selected model's graph (Netron) a window of its own; again to put it back"),
            "reset": act("Reset &layout", self._reset_layout),
            "about": act("&About EdgeStudio", self._about),
            "shortcuts": act("&Keyboard shortcuts", self.show_shortcuts, "F1"),
        }
        a = self.actions_
        menu = self.menuBar().addMenu("&File")
        for key in ("import", "import_folder", "workspace", "envs"):
            menu.addAction(a[key])
        menu.addSeparator()
        for key in ("export_recipe", "open_recipe"):
            menu.addAction(a[key])
        menu.addSeparator()
        menu.addAction(a["quit"])
        menu = self.menuBar().addMenu("&Model")
        for key in ("convert", "optimize", "benchmark", "bench_settings", "compare", "why", "profile", "explore",
                    "explore_parent", "distill", "package", "reveal", "delete"):
            menu.addAction(a[key])
        menu = self.menuBar().addMenu("&View")
        for dock in self.docks.values():
            menu.addAction(dock.toggleViewAction())
        menu.addSeparator()
        menu.addAction(a["graph_window"])
        self.comparisons_menu = menu.addMenu("Reopen a &comparison")
        self.comparisons_menu.aboutToShow.connect(self._fill_comparisons_menu)
        menu.addSeparator()
        menu.addAction(a["reset"])
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(a["shortcuts"])
        help_menu.addAction(a["about"])
        tb = self.addToolBar("Main")
        tb.setObjectName("toolbar_main")
        for key in ("import", "convert", "optimize", "benchmark", "compare"):
            tb.addAction(a[key])

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

    def _import_all(self, paths: list[Path]) -> tuple[list[int], list[str]]:
        """Hash and copy ``paths`` into the workspace (any thread: the workspace is thread-safe). A model whose
        graph reaches the file system or runs Python is set aside: the window asks whether to trust it."""
        from edgestudio.core.errors import UntrustedModelError

        ids, errors = [], []
        for path in paths:
            try:
                detect_format(path)
                ids.append(self.workspace.import_model(path).id)
            except UntrustedModelError as exc:
                self._untrusted.append((Path(path), exc.cause))
            except EdgeStudioError as exc:
                errors.append(exc.one_line())
            except OSError as exc:
                errors.append(f"{path}: {exc.strerror or exc}")
        return ids, errors

    def _ask_trust(self) -> None:
        """For each model set aside by an import: say what its graph would do, and import it only if the user
        trusts it (remembered for that graph: every later job on it may run it)."""
        from edgestudio.core.safety import trust

        pending, self._untrusted = self._untrusted, []
        again = []
        for path, cause in pending:
            answer = QMessageBox.question(
                self, "Trust this model?",
                f"{path.name}: {cause}.\n\nSuch a model can read or write files or run code on this machine when "
                "it is loaded or run. Import it only if you trust where it came from.\n\nTrust and import it?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
            if answer == QMessageBox.StandardButton.Yes:
                trust(path, remember=True)
                again.append(path)
            else:
                self.statusBar().showMessage(f"Not imported: {path.name} (not trusted)", 10000)
        if again:
            self._show_imported(*self._import_all(again))

    def import_paths_async(self, paths: list[Path], then: Callable[[list[int]], Any] | None = None) -> None:
        """Import dropped / chosen files without blocking the window: a large model takes seconds to hash and
        copy. The browser updates when it is done; ``then(ids)`` runs on the GUI thread afterwards."""
        paths = list(paths)
        self.statusBar().showMessage(f"Importing {', '.join(p.name for p in paths[:3])}"
                                     + (f" and {len(paths) - 3} more" if len(paths) > 3 else "") + "…")
        self._imports_running += 1

        def work() -> None:
            ids, errors = self._import_all(paths)
            if not self.bridge.closed:
                self._imported.emit(ids, errors, then)

        threading.Thread(target=work, name="edgestudio-import", daemon=True).start()

    def _on_imported(self, ids: list[int], errors: list[str], then: Any) -> None:
        self._imports_running -= 1
        if self.bridge.closed:
            return
        self._show_imported(ids, errors)
        if self._untrusted:
            self._ask_trust()
        if then is not None and ids:
            then(ids)

    def import_paths(self, paths: list[Path]) -> list[int]:
        """Import files now (scripts, tests); drops and File ▸ Import use :meth:`import_paths_async`.
        A file that is not a model shows one line and changes nothing."""
        ids, errors = self._import_all(paths)
        self._show_imported(ids, errors)
        if self._untrusted:
            self._ask_trust()
        return ids

    def _show_imported(self, ids: list[int], errors: list[str]) -> None:
        if errors:
            self.browser.show_error("Not imported: " + "\n".join(errors))
            self.statusBar().showMessage(errors[0], 10000)
        else:
            self.browser.clear_error()
        if ids:
            self.sync()
            self.browser.select(ids[-1])
            if not errors:
                self.statusBar().showMessage(f"Imported {len(ids)} model{'s' if len(ids) > 1 else ''}", 5000)

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
        for key in ("why", "explore_parent"):  # they compare a variant with its parent: an imported model has none
            action = self.actions_[key]
            action.setEnabled(entry.parent_id is not None)
            action.setToolTip(action.statusTip() if entry.parent_id is not None else
                              f"{entry.name} has no parent in the workspace: pick a converted or optimized variant")
        self.details.show_measurements(self.workspace.results(model_id))
        self.optimize.set_model(entry, sample=self._is_sample(entry), data=self.workspace.data_for(model_id))
        self.optimize.set_inputs(self.workspace.inputs_for(model_id))
        info = self._info.get(entry.path)
        if info is not None:
            self.details.show_info(info)
        elif entry.path not in self._inspect_jobs.values():
            job = self.bridge.submit(JobSpec(JobKind.INSPECT, model=entry.path))
            self._inspect_jobs[job] = entry.path

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

    def model_action(self, name: str, model_id: int | None) -> Any:
        if model_id is None:
            self.statusBar().showMessage("Select a model first.", 5000)
            return None
        entry = self.workspace.model(model_id)
        if name == "convert":
            from edgestudio.gui.wizard import ConversionWizard

            self.wizard = ConversionWizard(self.bridge, self.workspace.models(), model_id, self,
                                           inputs_for=self.inputs_for)
            self.wizard.show()
            return self.wizard
        if name == "optimize":
            self.optimize.set_model(entry, sample=self._is_sample(entry), data=self.data_for(model_id))
            self.docks["optimize"].show()
            self.docks["optimize"].raise_()
            return None
        if name == "benchmark":
            return self.benchmark(model_id)
        if name == "bench_settings":
            return self.benchmark_dialog(model_id)
        if name == "compare":
            return self.compare_dialog(self.browser.selected_ids() or [model_id])
        if name == "why":
            return self.layer_debug(model_id)
        if name == "distill":
            if entry.format.value not in ("keras", "h5"):
                self.statusBar().showMessage(f"Distill: {entry.name} is not a Keras model; distillation trains a Keras "
                                             "student from a Keras teacher (import the .keras or .h5).", 10000)
                return None
            from edgestudio.gui.distill_view import DistillDialog

            self.distill_dialog = DistillDialog(self, model_id)
            self.distill_dialog.show()
            return self.distill_dialog
        if name == "throughput":
            from edgestudio.gui.throughput_view import ThroughputDialog

            runs = [rt for rt in ("onnxruntime", "openvino", "litert") if rt in _runtimes_for(entry.format)]
            self.throughput_dialog = ThroughputDialog(self, entry.path, runs or ["onnxruntime"],
                                                     inputs=self.inputs_for(model_id))
            self.throughput_dialog.show()
            if runs:
                self.throughput_dialog.run()
            return self.throughput_dialog
        if name == "profile":
            from edgestudio.gui.layers_view import ProfileDialog

            self.profile_dialog = ProfileDialog(self, entry.path, self.inputs_for(model_id))
            self.profile_dialog.show()
            self.profile_dialog.run()
            return self.profile_dialog
        if name in ("explore", "explore_parent"):
            from edgestudio.gui.explorer_view import open_in_model_explorer

            return open_in_model_explorer(self, model_id, with_parent=name == "explore_parent")
        if name == "package":
            return self.package_dialog(model_id)
        if name == "reveal":
            from edgestudio.gui.paths import show_or_copy

            folder = Path(entry.path).parent
            opened = QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))
            self.statusBar().showMessage(show_or_copy(self, str(folder), opened), 15000)
            return None
        if name == "delete":
            return self.delete_model(model_id)
        return None

    def fix(self, action: str, job_id: str | None = None) -> None:
        """Show the control that fixes what a message asked for (``action``: wording.Fix.action), on the model the
        failed job ran on: Details ▸ Inputs to use, or the Optimize panel's runtime, calibration or evaluation."""
        if job_id:
            try:
                entry = self.workspace.model_by_path(self.bridge.get(job_id).spec.model or "")
            except KeyError:
                entry = None
            if entry is None and job_id:
                try:
                    entry = self.workspace.model_by_path(self.workspace.job(job_id).spec.model or "")
                except KeyError:
                    entry = None
            if entry is not None and entry.id != self.browser.current_id():
                self.browser.select(entry.id)
        if action == "inputs":
            self.details.tabs.setCurrentWidget(self.details.inputs)
            self.details.inputs.table.setFocus()
            self.statusBar().showMessage("Set the shape (or the data) each input takes, then Save: every job on this "
                                         "model and its variants uses them.", 15000)
            return
        self.docks["optimize"].show()
        self.docks["optimize"].raise_()
        panel = self.optimize
        {"runtime": panel.runtime, "calibration": panel.calibration.edit,
         "evaluation": panel.dataset.edit}.get(action, panel.runtime).setFocus()

    def layer_debug(self, model_id: int, inputs: dict[str, Any] | None = None) -> Any:
        """A variant against its parent in the lineage, layer by layer (runs at once when inputs are known)."""
        from edgestudio.gui.layers_view import LayerDebugDialog

        entry = self.workspace.model(model_id)
        if entry.parent_id is None:
            QMessageBox.information(self, "Why did accuracy drop?", f"{entry.name} has no parent in the workspace: "
                                    "pick a converted or optimized variant.")
            return None
        parent = self.workspace.model(entry.parent_id)
        spec = inputs if inputs is not None else self.inputs_for(model_id)
        chain = [m.path for m in self.workspace.lineage(model_id)]
        self.debug_dialog = LayerDebugDialog(self, parent.path, entry.path, spec, chain=chain,
                                             child_options=entry.options)
        self.debug_dialog.show()
        if (spec or {}).get("data"):
            self.debug_dialog.run()
        return self.debug_dialog

    def delete_model(self, model_id: int, confirm: bool = True) -> None:
        entry = self.workspace.model(model_id)
        n = len(self.workspace.children(model_id))
        if confirm and QMessageBox.question(
                self, "Delete", f"Remove {entry.name}" + (" and the artifacts derived from it" if n else "") +
                " from the workspace? Files you imported by reference are left where they are.") \
                != QMessageBox.StandardButton.Yes:
            return
        self.workspace.remove_model(model_id)
        self.sync()

    def convert_dropped(self, what: Any, target: str) -> str | None:
        """A model dropped on a format zone: convert it, in one gesture."""
        if isinstance(what, Path):  # a file dropped on a format: import it (off this thread), then convert
            self.import_paths_async([what], then=lambda ids: self.convert_dropped(ids[0], target))
            return None
        entry = self.workspace.model(int(what))
        fmt = ModelFormat(target)
        from edgestudio.backends.converters.base import ConvertOptions
        from edgestudio.conversion.engine import default_output

        name = default_output(Path(entry.path), fmt, folder=Path("/nonexistent")).name
        from edgestudio.gui.wizard import quick_conversion

        job = self.bridge.submit(JobSpec(JobKind.CONVERT, model=entry.path, quick=quick_conversion(entry, fmt, False),
                                         options={"to": fmt.value, "keep_intermediate": True,
                                                  "convert": ConvertOptions(inputs=self.inputs_for(entry.id)).to_dict()}),
                                 output_name=name)
        self.statusBar().showMessage(f"Converting {entry.name} to {fmt.label}…", 5000)
        return job

    def package_dialog(self, model_id: int) -> Any:
        """Deployment package with its options: the runtime, TFLM sources, the model's own evaluation data, the zip."""
        from edgestudio.gui.package_dialog import PackageDialog
        from edgestudio.gui.paths import start_dir

        entry = self.workspace.model(model_id)
        dlg = PackageDialog(self, entry, package_runtimes_for(entry.format.value),
                            evaluation=self.data_for(model_id).get("evaluation"), inputs=self.inputs_for(model_id),
                            folder=start_dir())
        dlg.accepted.connect(lambda: self.package(model_id, **dlg.settings()))
        self.package_setup = dlg
        dlg.show()
        return dlg

    def package(self, model_id: int, out_zip: str | Path, runtime: str | None = None, tflm: bool = False,
                dataset: str | None = ...) -> str:  # type: ignore[assignment]
        """Build a deployment package for the model (a job); the zip lands at ``out_zip``. ``dataset``: the labeled
        data its report measures (default: the model's own evaluation data, never another model's)."""
        from edgestudio.packaging.deploy import default_package_runtime

        entry = self.workspace.model(model_id)
        if dataset is ...:
            dataset = self.data_for(model_id).get("evaluation")
        rt = runtime or default_package_runtime(entry.format) or "onnxruntime"
        job = self.bridge.submit(JobSpec(JobKind.PACKAGE, model=entry.path, runtime=rt, output=str(Path(out_zip).resolve()),
                                         options={"dataset": dataset, "tflm": tflm,
                                                  "inputs": self.inputs_for(model_id),
                                                  "lineage": self.workspace.lineage_records(entry.path)}))
        self.statusBar().showMessage(f"Packaging {entry.name} for {rt}…", 5000)
        return job

    def benchmark_dialog(self, model_id: int) -> Any:
        """Benchmark with settings: runtime, device, threads, iterations or duration, warm-up."""
        from edgestudio.gui.bench_dialog import BenchDialog

        entry = self.workspace.model(model_id)
        dlg = BenchDialog(self, model_id, _runtimes_for(entry.format), self.devices)
        dlg.accepted.connect(lambda: self.benchmark(model_id, **dlg.settings()))
        self.bench_setup = dlg
        dlg.show()
        return dlg

    def benchmark(self, model_id: int, runtime: str | None = None, iterations: int = 300,
                  env: str | None = None, *, device: str = "CPU", threads: int | None = None, warmup: int = 10,
                  duration_s: float | None = None) -> str:
        """A live benchmark; with ``env``, run in that Python environment (its samples stream here all the same)."""
        entry = self.workspace.model(model_id)
        if env:
            from edgestudio.core.catalog import native_runtime

            rt = runtime or native_runtime(entry.format.value) or "onnxruntime"
        else:
            rt = runtime or _runtimes_for(entry.format)[0]
        # keep_samples=False: the chart has them from the live stream; shipping 100k floats back through
        # the pool thread (and into SQLite) would hold the GIL long enough to stall the window.
        spec = JobSpec(JobKind.BENCH, model=entry.path, runtime=rt, device=device,
                       options={"iterations": iterations, "warmup": warmup, "keep_samples": False,
                                "threads": threads, "duration_s": duration_s, "inputs": self.inputs_for(model_id)})
        if env:
            spec = JobSpec(JobKind.CALL, model=entry.path, runtime=rt, exclusive=True, options={
                "function": "edgestudio.execution.envs:run_job_in_env", "kwargs": {"env": env, "spec": spec.to_dict()}})
        job = self.bridge.submit(spec)
        self._bench_jobs[job] = model_id
        self.live.start(job, f"{entry.name} on {rt}" + (f"/{device}" if device != "CPU" else "")
                        + (f" ×{threads} threads" if threads else "") + (f" in {env}" if env else ""))
        self.docks["charts"].show()
        self.docks["charts"].raise_()
        self.chart_tabs.setCurrentWidget(self.live)
        return job

    def compare_dialog(self, model_ids: list[int]) -> Any:
        """Pick variants x runtimes x devices, then run them as one batch."""
        from edgestudio.core.formats import ModelFormat
        from edgestudio.gui.compare_dialog import CompareDialog

        runs = {f.value: _runtimes_for(f) for f in ModelFormat}
        if self.compare_setup is not None:  # one set-up dialog at a time
            self.compare_setup.close()
            self.compare_setup.deleteLater()
        dlg = CompareDialog(self.workspace.models(), model_ids, self.devices, runs,
                            dataset="", parent=self, data_for=lambda i: self.data_for(i).get("evaluation"))
        dlg.accepted.connect(lambda: self.compare(dlg.model_ids(), dataset=dlg.dataset.text().strip(),
                                                  iterations=dlg.iterations.value(), targets=dlg.chosen_targets(),
                                                  executor=dlg.run_on.currentData(), threads=dlg.thread_counts()))
        self.compare_setup = dlg
        dlg.show()
        return dlg

    def _comparison_pending(self) -> str:
        """The comparison's title's tail once every row's own jobs ended: what still runs, or how it was ranked."""
        waiting = [what for what, on in (("paired round", getattr(self, "_paired_job", None) is not None),
                                         ("checking the runtimes agree", bool(getattr(self, "_agree_jobs", None))))
                   if on]
        if waiting:
            return " — " + " and ".join(waiting) + "…"
        flagged = sum(1 for r in self._compare_rows if r.get("flag"))
        ranked = any(r.get("paired_p50_ms") is not None for r in self._compare_rows)
        return (" — done" + (", ranked by a paired round (alternating blocks; p50 with its 95 % interval)" if ranked
                             else "")
                + (f" ({self._paired_status})" if getattr(self, "_paired_status", None) else "")
                + (f"; ⚠ {flagged} row{'s' if flagged != 1 else ''} with a wrong answer, not ranked" if flagged else ""))

    def _parent_path(self, path: str) -> str | None:
        """The artifact's parent in the workspace (None for an imported model)."""
        entry = self.workspace.model_by_path(path)
        if entry is None or entry.parent_id is None:
            return None
        try:
            return self.workspace.model(entry.parent_id).path
        except KeyError:
            return None

    def _keep_comparison(self, rows: list[dict[str, Any]]) -> None:
        """A finished comparison is recorded in the workspace: restored at the next start, reopened from the menu."""
        self.workspace.add_result(None, None, "comparison", {"rows": rows, "title": self.comparison.title.text()})

    def comparisons(self) -> list[dict[str, Any]]:
        return self.workspace.results(kind="comparison")

    def reopen_comparison(self, result_id: int | None = None) -> bool:
        """Show a recorded comparison (the last one by default) in the comparison view."""
        import time

        found = [r for r in self.comparisons() if result_id is None or r["id"] == result_id]
        if not found:
            return False
        r = found[-1]
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created_at"]))
        self.comparison.set_rows(r["data"]["rows"], f"{r['data'].get('title') or 'Comparison'} (recorded {when})")
        return True

    def _fill_comparisons_menu(self) -> None:
        import time

        self.comparisons_menu.clear()
        recorded = self.comparisons()[-15:]
        if not recorded:
            self.comparisons_menu.addAction("(none recorded yet)").setEnabled(False)
        for r in reversed(recorded):
            names = sorted({Path(x["model"]).name for x in r["data"]["rows"]})
            label = (f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(r['created_at']))} — "
                     f"{', '.join(names)[:60]} ({len(r['data']['rows'])} rows)")
            act = self.comparisons_menu.addAction(label)
            act.triggered.connect(lambda _=False, rid=r["id"]: self.reopen_comparison(rid))

    def ray_bridge(self) -> JobBridge:
        """Jobs on a local Ray cluster (started on first use), reported like the pool's: the jobs panel lists them,
        their results land in the workspace and fill the comparison as each task ends."""
        if getattr(self, "_ray_bridge", None) is None:
            from edgestudio.execution.ray_executor import RayExecutor

            rb = JobBridge(self.workspace, executor=RayExecutor())
            rb.queued.connect(self.jobs.on_queued)
            rb.started.connect(self.jobs.on_started)
            rb.started.connect(self._job_started)  # the live chart follows a Ray benchmark too: its samples
            rb.samples.connect(self._samples)      # come back through a Ray queue as it runs
            rb.progress.connect(self.jobs.on_progress)
            rb.log.connect(self.jobs.on_log)
            rb.finished.connect(self._job_finished)
            self._ray_bridge = rb
        return self._ray_bridge

    def compare(self, model_ids: list[int], dataset: str | None = None, iterations: int = 100,
                targets: list[tuple[str, str]] | None = None, executor: str = "local",
                threads: list[int] | None = None) -> list[str]:
        """Benchmark (and evaluate) the variants as one batch: on ``targets`` (runtime, device) pairs where the
        runtime runs the variant's format, by default on every runtime that runs it, on the CPU; ``executor``
        ``ray`` runs each job as a task on a local Ray cluster (the final paired round runs here); ``threads``: a
        thread sweep (each variant at each count; default: the same count on every runtime)."""
        from edgestudio.bench.compare import plan_matrix

        bridge = self.ray_bridge() if executor == "ray" else self.bridge

        dataset = (dataset or "").strip() or None
        entries = [self.workspace.model(i) for i in model_ids]
        if targets is None:
            targets = sorted({(rt, "CPU") for e in entries for rt in _runtimes_for(e.format)})
        by_path = {e.path: e.id for e in entries}
        # each variant is fed its own inputs and judged on its own (its lineage's) evaluation data, unless one file
        # was given for all
        planned, skipped = plan_matrix([e.path for e in entries], targets, dataset=dataset, iterations=iterations,
                                       inputs_for=lambda path: self.inputs_for(by_path[path]), threads=threads,
                                       dataset_for=lambda path: self.data_for(by_path[path]).get("evaluation"))
        self._compare.clear()
        self._compare_rows = []
        jobs = []
        for row, specs in planned:
            self._compare_rows.append(row)
            for spec in specs:
                job = bridge.submit(spec)
                self._compare[job] = (row, spec.kind.value)
                jobs.append(job)
        note = f"; {len(skipped)} pairs left out (runtime does not run that format)" if skipped else ""
        self.comparison.set_rows(list(self._compare_rows), f"Comparing {len(entries)} variants on "
                                 f"{len(targets)} runtimes/devices ({len(jobs)} jobs running{note})…")
        self.docks["charts"].show()
        self.docks["charts"].raise_()
        self.chart_tabs.setCurrentWidget(self.comparison)
        return jobs

    # ---------------------------------------------------------------------------------------------- jobs
    def shutdown(self) -> None:
        """Stop the jobs; call before closing the workspace (no slot touches it afterwards)."""
        self.details.graph.stop()
        if getattr(self, "explorer_window", None) is not None:
            self.explorer_window.view.stop()
        self.bridge.shutdown()
        if getattr(self, "_ray_bridge", None) is not None:
            self._ray_bridge.shutdown()

    def _job_started(self, job: str) -> None:
        """A comparison's benchmarks run one at a time: the live chart follows each as it runs."""
        if self.bridge.closed or job not in self._compare:
            return
        row, kind = self._compare[job]
        if kind == JobKind.BENCH.value:
            self.live.start(job, f"{Path(row['model']).name} on {row['runtime']}/{row['device']} (comparison)")

    def _job_finished(self, job: str, status: str, error: Any, result: Any) -> None:
        if self.bridge.closed:  # delivered after shutdown: the workspace may be closed already
            return
        self.jobs.on_finished(job, status, error, result)
        ok = status == "succeeded"
        if job == self._devices_job:
            if ok:
                self.devices = result["value"]
                self.optimize.set_devices(self.devices)
                self.status_workspace.setText(f"{self.workspace.root} · {len(self.devices)} devices")
            return
        if job in self._inspect_jobs:
            path = self._inspect_jobs.pop(job)
            current = self.browser.current_id()
            entry = self.workspace.model(current) if current is not None else None
            if ok:
                self._info[path] = result
                if entry is not None and entry.path == path:
                    self.details.show_info(result)
            elif entry is not None and entry.path == path:
                self.details.show_error(error or status)
            return
        if job in self._recipe_jobs:
            name = self._recipe_jobs.pop(job)
            self.sync()
            if ok:
                self.recipe_results[job] = result
                self.jobs.add_steps(job, result)  # a row per step under the recipe's: verdict, time, artifact
                failed = [f"step {r['step']} {g['gate']}" for r in result["steps"] for g in r["gates"] if not g["passed"]]
                self.statusBar().showMessage(f"Recipe {name}: {result['completed']} of {result['of']} steps, " + (
                    "all gates passed" if result["passed"] else "FAILED: " + studio_text(", ".join(failed)))
                    + " (each step in Jobs)", 30000)
                made = [a["path"] for a in result.get("artifacts") or []]
                last = self.workspace.model_by_path(made[-1]) if made else None
                if last is not None:
                    self.browser.reveal(last.id)
            else:
                self.statusBar().showMessage(f"Recipe {name} {ended_text(status, error)}", 30000)
            return
        if job in self._bench_jobs:
            model_id = self._bench_jobs.pop(job)
            self.live.finish(job, result if ok else None)
            if ok and self.browser.current_id() == model_id:
                self.details.show_measurements(self.workspace.results(model_id))
            if not ok:
                self.statusBar().showMessage(f"Benchmark {ended_text(status, error)}", 10000)
            return
        if job in self._compare:
            from edgestudio.bench.compare import agreement_specs, apply_result, finalize_rows
            from edgestudio.execution.block_server import paired_job

            row, kind = self._compare.pop(job)
            apply_result(row, kind, ok, result, error)
            if kind == JobKind.BENCH.value:
                self.live.finish(job, result if ok else None)
            rows = finalize_rows(self._compare_rows)
            left = len(self._compare)
            paired = paired_job(self._compare_rows) if not left else None
            if paired is not None:  # the final ranking: every local variant loaded once, alternating blocks
                self._paired_job = self.bridge.submit(paired)
            if not left:  # an artifact on several runtimes: do their answers agree (and which with its parent)?
                self._agree_jobs = {self.bridge.submit(s) for s in agreement_specs(self._compare_rows,
                                                                                    self._parent_path)}
            self._paired_status = None
            self.comparison.set_rows(rows, _comparison_title(rows) + (f" ({left} jobs left)" if left else
                                                                      self._comparison_pending()))
            if not left and paired is None and not self._agree_jobs:
                self._keep_comparison(rows)
            return
        if job == getattr(self, "_paired_job", None) or job in getattr(self, "_agree_jobs", set()):
            from edgestudio.bench.compare import apply_agreement, apply_paired, finalize_rows

            if job == self._paired_job:
                self._paired_job = None
                self._paired_status = None if ok else f"paired round {status}: {error}"
                if ok:
                    apply_paired(self._compare_rows, result)
            else:
                self._agree_jobs.discard(job)
                if ok:
                    apply_agreement(self._compare_rows, result)
            rows = finalize_rows(self._compare_rows)
            self.comparison.set_rows(rows, _comparison_title(rows) + self._comparison_pending())
            if self._paired_job is None and not self._agree_jobs:
                self._keep_comparison(rows)
            return
        try:
            kind = self.bridge.get(job).spec.kind
        except KeyError:
            return
        if kind in (JobKind.CONVERT, JobKind.OPTIMIZE):
            from edgestudio.gui.details import growth_text

            self.sync()
            source = self.optimize.entry
            spec_model = self.bridge.get(job).spec.model
            parent_ops = (self._info.get(spec_model or "") or {}).get("ops")
            mine = self.optimize.job_finished(job, ok, result, error, status=status, parent_ops=parent_ops)
            if ok:
                ids = (result or {}).get("model_ids") or []
                if ids:  # shown, not selected: the selection and the panel stay on what the user works on (a
                    self.browser.reveal(ids[-1])  # second click must never quantize the quantized model)
                if mine and source is not None:
                    self.optimize.set_model(source, sample=self._is_sample(source), data=self.data_for(source.id))
                size = (result or {}).get("size_bytes") or {}
                grew = growth_text(size.get("before"), size.get("after"), parent_ops) if kind is JobKind.OPTIMIZE \
                    else None
                if grew:  # an INT8 model larger than its FP32 parent: said where the user looks, with the cause
                    self.jobs.on_log(job, f"note: {Path(result['output']).name} is {grew}")
                self.statusBar().showMessage(f"{kind.value} finished: {Path(result['output']).name} (in Models, "
                                             "under its parent)" + (f" — ⚠ {grew}" if grew else ""),
                                             20000 if grew else 8000)
            else:
                self.statusBar().showMessage(f"{kind.value} {ended_text(status, error)}", 15000)

    # ------------------------------------------------------------------------------------------- dialogs
    def _import_dialog(self) -> None:
        files = ask_open_many(self, "Import models", "Models (*.onnx *.tflite *.keras *.h5 *.xml *.ort *.json *.pt "
                                                     "*.pt2);;All files (*)")
        if files:
            self.import_paths_async([Path(f) for f in files])

    def environments_dialog(self) -> Any:
        from edgestudio.gui.envs_dialog import EnvironmentsDialog

        self.envs_dialog = EnvironmentsDialog(self)
        self.envs_dialog.show()
        return self.envs_dialog

    def _import_folder_dialog(self) -> None:
        """A model that is a folder (SavedModel, TF.js): a file dialog cannot pick it, this one can."""
        folder = ask_folder(self, "Import a model folder (SavedModel, TF.js)")
        if folder:
            self.import_paths_async([Path(folder)])

    # ------------------------------------------------------------------------------------------- recipes
    def export_recipe(self, model_id: int, path: str | Path) -> dict[str, Any]:
        from edgestudio.workers.recipes import export_recipe

        recipe = export_recipe(self.workspace, model_id, path)
        self.statusBar().showMessage(f"Recipe written to {path} ({len(recipe['steps'])} steps): "
                                     f"edgestudio run {Path(path).name}", 15000)
        return recipe

    def _export_recipe_dialog(self) -> None:
        model_id = self.browser.current_id()
        if model_id is None:
            self.statusBar().showMessage("Select the model whose recipe to export.", 5000)
            return
        entry = self.workspace.model(model_id)
        path = ask_save(self, "Export recipe", f"{Path(entry.path).stem}_recipe.yaml", "Recipe (*.yaml *.yml)")
        if path:
            self.export_recipe(model_id, path)

    def open_recipe(self, path: str | Path) -> str:
        """Replay a recipe as a job: its artifacts join this workspace's lineage; the verdicts go to the job log and
        the status bar."""
        from edgestudio.core.errors import UsageError
        from edgestudio.workers.recipes import check_confined, load_recipe, recipe_paths

        recipe = Path(path).resolve()
        doc = load_recipe(recipe)
        allow_outside = False
        try:
            check_confined(recipe, doc)
        except UsageError:  # a recipe is a file someone else can hand you: say what it would read, and ask
            outside = [f"{what}: {p}" for what, p in recipe_paths(recipe, doc)
                       if not Path(p).resolve().is_relative_to(recipe.parent)]
            answer = QMessageBox.question(
                self, "Run this recipe?",
                f"{recipe.name} reads files outside its own folder:\n\n" + "\n".join(outside[:8])
                + ("\n…" if len(outside) > 8 else "") + "\n\nA recipe can be written by anyone. Run it and let it read "
                "these files?", QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                self.statusBar().showMessage(f"Recipe {recipe.name} not run", 10000)
                return ""
            allow_outside = True
        model = doc["model"] if Path(doc["model"]).is_absolute() else str((recipe.parent / doc["model"]).resolve())
        job = self.bridge.submit(JobSpec(JobKind.CALL, model=model, options={
            "function": "edgestudio.workers.recipes:run_recipe",
            "kwargs": {"recipe": str(recipe), "allow_outside": allow_outside}}), output_name=recipe.stem)
        self._recipe_jobs[job] = recipe.name
        self.docks["jobs"].show()
        return job

    def _open_recipe_dialog(self) -> None:
        path = ask_open(self, "Run a recipe", "Recipe (*.yaml *.yml)")
        if not path:
            return
        try:
            self.open_recipe(path)
        except EdgeStudioError as exc:
            QMessageBox.warning(self, "Recipe", exc.one_line())

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

    def _open_workspace_dialog(self) -> None:
        folder = ask_folder(self, "Open or create a workspace (an empty folder makes a new one)",
                            default=self.workspace.root.parent)
        if folder:
            self.next_window = self.switch_workspace(folder)

    def shortcuts_text(self) -> str:
        rows = [(a.text().replace("&", ""), a.shortcut().toString()) for a in self.actions_.values()
                if not a.shortcut().isEmpty()]
        return "<table>" + "".join(f"<tr><td><b>{k}</b>&nbsp;&nbsp;</td><td>{name}</td></tr>" for name, k in rows) + \
            "</table><p>Right-click a model for everything else; drop model files or folders on the browser.</p>"

    def show_shortcuts(self) -> None:
        box = QMessageBox(self)
        box.setWindowTitle("Keyboard shortcuts")
        box.setText(self.shortcuts_text())
        box.setModal(False)
        box.show()
        self.shortcuts_box = box

    def _about(self) -> None:
        QMessageBox.about(self, "About EdgeStudio", f"EdgeStudio {__version__}\nTake a trained model to an edge device.")
