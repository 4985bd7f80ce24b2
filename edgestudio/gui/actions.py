"""The main window's actions, menus and toolbar, mixed into it: what each action does when it is a dialog of its
own (import, workspaces, environments, recipes, shortcuts, about), and which actions a selected model enables."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMessageBox

from edgestudio import __version__
from edgestudio.core.errors import EdgeStudioError
from edgestudio.core.jobs import JobKind, JobSpec
from edgestudio.gui.paths import ask_folder, ask_open, ask_open_many, ask_save


class WindowActions:
    """The window's actions (``self`` is the :class:`~edgestudio.gui.main_window.MainWindow`)."""

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

    def enable_for(self, entry: Any) -> None:
        """Enable the actions that fit the selected model."""
        for key in ("why", "explore_parent"):  # they compare a variant with its parent: an imported model has none
            action = self.actions_[key]
            action.setEnabled(entry.parent_id is not None)
            action.setToolTip(action.statusTip() if entry.parent_id is not None else
                              f"{entry.name} has no parent in the workspace: pick a converted or optimized variant")

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
        from edgestudio.app.recipes import export_recipe

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
        from edgestudio.app.recipes import check_confined, load_recipe, recipe_paths

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
            "function": "edgestudio.app.recipes:run_recipe",
            "kwargs": {"recipe": str(recipe), "allow_outside": allow_outside}}), output_name=recipe.stem)
        self.router.add(job, "recipe", self.router.recipe_finished, recipe.name)
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

    def _open_workspace_dialog(self) -> None:
        folder = ask_folder(self, "Open or create a workspace (an empty folder makes a new one)",
                            default=self.workspace.root.parent)
        if folder:
            self.next_window = self.switch_workspace(folder)

    def _fill_comparisons_menu(self) -> None:
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
