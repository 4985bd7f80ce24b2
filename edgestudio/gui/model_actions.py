"""What the user does with models, mixed into the main window: import them (off the GUI thread, asking before
trusting a model whose graph runs code), and the Model menu's and the browser's actions on the selected one:
convert, optimize, benchmark, compare, debug, profile, distill, package, reveal, delete."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QMessageBox

from edgestudio.core.errors import EdgeStudioError
from edgestudio.core.formats import ModelFormat, detect_format
from edgestudio.core.jobs import JobKind, JobSpec


def runtimes_for(fmt: Any) -> list[str]:
    from edgestudio.backends.runtimes import runtimes_for_format

    from edgestudio.core.catalog import native_runtime
    from edgestudio.core.formats import ModelFormat

    return runtimes_for_format(fmt) or [native_runtime(ModelFormat.ONNX.value) or "onnxruntime"]


def local_runtimes(fmt: Any) -> list[str]:
    """The runtimes of ``fmt`` that run in this app's own Python (not in a browser, not in another environment)."""
    from edgestudio.backends.runtimes import RUNTIMES

    return [n for n in runtimes_for(fmt) if not RUNTIMES.get(n).in_browser and RUNTIMES.get(n).env() == "default"]


def package_runtimes_for(fmt: str) -> list[tuple[str, str]]:
    """(runtime, label) of each runtime a model of format ``fmt`` can be packaged for, the default first."""
    from edgestudio.core.catalog import runtime as decl
    from edgestudio.packaging.deploy import default_package_runtime, package_runtimes

    default = default_package_runtime(ModelFormat(fmt))
    names = [r for r in package_runtimes() if fmt in decl(r).formats]
    names.sort(key=lambda r: r != default)
    return [(r, decl(r).label) for r in names]


class ModelActions:
    """The window's model actions (``self`` is the :class:`~edgestudio.gui.main_window.MainWindow`)."""

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

            runs = local_runtimes(entry.format)  # overlapping requests in this machine's own processes
            self.throughput_dialog = ThroughputDialog(self, entry.path, runs or runtimes_for(entry.format)[:1],
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
        rt = runtime or default_package_runtime(entry.format) or runtimes_for(entry.format)[0]
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
        dlg = BenchDialog(self, model_id, runtimes_for(entry.format), self.devices)
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

            rt = runtime or native_runtime(entry.format.value) or runtimes_for(entry.format)[0]
        else:
            rt = runtime or runtimes_for(entry.format)[0]
        # keep_samples=False: the chart has them from the live stream; shipping 100k floats back through
        # the pool thread (and into SQLite) would hold the GIL long enough to stall the window.
        spec = JobSpec(JobKind.BENCH, model=entry.path, runtime=rt, device=device, target=f"env:{env}" if env else None,
                       options={"iterations": iterations, "warmup": warmup, "keep_samples": False,
                                "threads": threads, "duration_s": duration_s, "inputs": self.inputs_for(model_id)})
        job = self.bridge.submit(spec)
        self.router.add(job, "bench", self.router.bench_finished, model_id)
        self.live.start(job, f"{entry.name} on {rt}" + (f"/{device}" if device != "CPU" else "")
                        + (f" ×{threads} threads" if threads else "") + (f" in {env}" if env else ""))
        self.docks["charts"].show()
        self.docks["charts"].raise_()
        self.chart_tabs.setCurrentWidget(self.live)
        return job

