"""The optimization panel: target runtime and device, method, options generated from the optimizer's
schema, calibration / evaluation data (drop a folder or .npz), presets and an accuracy guard."""

from __future__ import annotations

import html

from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from edgestudio.backends.optimizers.base import OPTIMIZERS, OptimizeOptions
from edgestudio.core.jobs import REMOTE_DEVICE, JobKind, JobSpec
from edgestudio.core.workspace import ModelEntry
from edgestudio.gui.forms import OptionsForm

PRESETS = ("max speed", "balanced", "max accuracy")  # each runtime's (method, options) is in the catalog


class DataPicker(QWidget):
    """A path field that takes a dropped folder or file, or a browse dialog. ``changed`` carries what the user put
    there (typed, dropped or browsed; never a value set by the program)."""

    changed = Signal(str)

    def __init__(self, placeholder: str) -> None:
        super().__init__()
        self.setAcceptDrops(True)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.edit = QLineEdit()
        self.edit.setPlaceholderText(placeholder)
        self.edit.setAcceptDrops(False)
        self.edit.editingFinished.connect(lambda: self.changed.emit(self.edit.text().strip()))
        lay.addWidget(self.edit, 1)
        file_btn = QPushButton("File…")
        file_btn.clicked.connect(self._pick_file)
        dir_btn = QPushButton("Folder…")
        dir_btn.clicked.connect(self._pick_dir)
        lay.addWidget(file_btn)
        lay.addWidget(dir_btn)

    def text(self) -> str | None:
        return self.edit.text().strip() or None

    def set_text(self, text: str) -> None:
        self.edit.setText(text)

    def dragEnterEvent(self, e: QDragEnterEvent) -> None:  # noqa: N802
        if e.mimeData().hasUrls():
            e.acceptProposedAction()

    def dropEvent(self, e: QDropEvent) -> None:  # noqa: N802
        urls = [u.toLocalFile() for u in e.mimeData().urls() if u.isLocalFile()]
        if urls:
            self.edit.setText(urls[0])
            self.changed.emit(urls[0])
            e.acceptProposedAction()

    def _pick_file(self) -> None:
        from edgestudio.gui.paths import ask_open

        path = ask_open(self, "Dataset", "Arrays (*.npz *.npy)")
        if path:
            self.edit.setText(path)
            self.changed.emit(path)

    def _pick_dir(self) -> None:
        from edgestudio.gui.paths import ask_folder

        path = ask_folder(self, "Image folder")
        if path:
            self.edit.setText(path)
            self.changed.emit(path)


class _Message(QTextBrowser):
    """The panel's last word (rich text); ``text()`` is what it says, as plain text."""

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("opt_message")
        self.setFrameShape(QTextBrowser.Shape.NoFrame)
        self.setMinimumHeight(96)
        self.setOpenLinks(False)
        self.viewport().setAutoFillBackground(False)

    def setText(self, text: str) -> None:  # noqa: N802 (QLabel's name: callers need not know)
        self.setHtml(text)

    def text(self) -> str:
        return self.toPlainText()


class OptimizePanel(QWidget):
    submitted = Signal(str)  # job id
    fix_requested = Signal(str)  # what the last message asks to set (wording.Fix.action): the window shows it
    data_changed = Signal(int, dict)  # model id, {"calibration": path, "evaluation": path}: the model's data files

    def __init__(self, bridge: Any) -> None:
        super().__init__()
        self.bridge = bridge
        self.entry: ModelEntry | None = None
        self._jobs: dict[str, str] = {}  # the jobs this panel started -> their model's name
        lay = QVBoxLayout(self)
        self.model_label = QLabel("Select a model in the browser.")
        self.model_label.setWordWrap(True)
        lay.addWidget(self.model_label)
        form = QFormLayout()
        self.runtime = QComboBox()
        self.runtime.setObjectName("opt_runtime")
        from edgestudio.core.catalog import runtime_names

        self.runtime.addItems([r for r in runtime_names(optimizing=True) if r != "any"])
        self.runtime.currentTextChanged.connect(self._runtime_changed)
        form.addRow("runtime", self.runtime)
        self.device = QComboBox()
        self.device.addItem("CPU")
        form.addRow("device", self.device)
        self.method = QComboBox()
        self.method.setObjectName("opt_method")
        self.method.currentTextChanged.connect(self._method_changed)
        form.addRow("method", self.method)
        presets = QHBoxLayout()
        for name in PRESETS:
            b = QPushButton(name)
            b.setObjectName(f"preset_{name.replace(' ', '_')}")
            b.clicked.connect(lambda _=False, n=name: self.apply_preset(n))
            presets.addWidget(b)
        form.addRow("presets", presets)
        self.calibration = DataPicker("calibration: .npz/.npy, image folder, or 'random'")
        form.addRow("calibration", self.calibration)
        self.dataset = DataPicker("labeled data for the accuracy guard (.npz x,y or class folders)")
        form.addRow("evaluation", self.dataset)
        # what is given here is the model's (and its variants'): remembered with it, never carried to another model
        self.calibration.changed.connect(lambda text: self._data_edited("calibration", text))
        self.dataset.changed.connect(lambda text: self._data_edited("evaluation", text))
        self.max_drop = QDoubleSpinBox()
        self.max_drop.setObjectName("opt_max_drop")
        self.max_drop.setDecimals(3)
        self.max_drop.setRange(0.0, 1.0)
        self.max_drop.setSingleStep(0.005)
        self.max_drop.setValue(0.01)
        self.max_drop.setToolTip("accuracy guard: the largest top-1 loss accepted (0.01 = one point)")
        form.addRow("max top-1 drop", self.max_drop)
        lay.addLayout(form)
        self.description = QLabel()
        self.description.setWordWrap(True)
        self.description.setStyleSheet("color: gray;")
        lay.addWidget(self.description)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        lay.addWidget(self.scroll, 1)
        self.form: OptionsForm | None = None
        self.run_button = QPushButton("Optimize")
        self.run_button.setObjectName("opt_run")
        self.run_button.clicked.connect(self.run)
        lay.addWidget(self.run_button)
        self.message = _Message()  # a verdict with its figures and reason is long: it scrolls, never clipped
        lay.addWidget(self.message)
        self.fix_button = QPushButton()  # what the last error asks for, one click away
        self.fix_button.setObjectName("opt_fix")
        self.fix_button.clicked.connect(self._fix_clicked)
        self.fix_button.hide()
        lay.addWidget(self.fix_button)
        self._fix: Any = None
        self._runtime_changed(self.runtime.currentText())

    def say_error(self, prefix: str, error: str | None) -> None:
        """An error in the studio's words, with the button that fixes it when there is one."""
        from edgestudio.gui.wording import fix_for, studio_text

        self.message.setText(prefix + html.escape(studio_text(error or "")))
        self._fix = fix_for(error)
        self.fix_button.setVisible(self._fix is not None)
        if self._fix is not None:
            self.fix_button.setText(self._fix.label)

    def _say(self, text: str) -> None:
        self.message.setText(text)
        self._fix = None
        self.fix_button.hide()

    def _fix_clicked(self) -> None:
        if self._fix is None:
            return
        if self._fix.action == "runtime":
            self.runtime.setFocus()
            self.runtime.showPopup()
        elif self._fix.action == "calibration":
            self.calibration.edit.setFocus()
        elif self._fix.action == "evaluation":
            self.dataset.edit.setFocus()
        self.fix_requested.emit(self._fix.action)

    def set_devices(self, devices: list[dict[str, str]]) -> None:
        self._devices = devices
        self._runtime_changed(self.runtime.currentText())

    def set_inputs(self, spec: dict[str, Any]) -> None:
        """The model's input specification (Details ▸ Inputs to use): calibration's other inputs, the drift check."""
        self._inputs = dict(spec or {})

    def set_model(self, entry: ModelEntry, *, sample: bool = False, data: dict[str, str] | None = None) -> None:
        """Show ``entry`` with its own data files (``data``: the workspace's, its lineage's); a field it has none for
        is empty, or, for a sample model's evaluation, the samples' labeled split."""
        changed = self.entry is None or self.entry.id != entry.id
        self.entry = entry
        if changed or data is not None:
            data = data or {}
            self.calibration.set_text(data.get("calibration") or "")
            default_eval = getattr(self, "_sample_dataset", None) if sample else None
            self.dataset.set_text(data.get("evaluation") or default_eval or "")
        self.model_label.setText(f"<b>{entry.name}</b> ({entry.format.label})")
        from edgestudio.core.catalog import optimize_runtime

        default = optimize_runtime(entry.format.value)
        if default:
            self.runtime.setCurrentText(default)

    def _runtime_changed(self, runtime: str) -> None:
        from edgestudio.core.catalog import optimizers

        methods = sorted({o.method for o in optimizers() if o.runtime in (runtime, "any")})
        current = self.method.currentText()
        self.method.blockSignals(True)
        self.method.clear()
        self.method.addItems(methods)
        self.method.blockSignals(False)
        self.method.setCurrentText(current if current in methods else methods[0])
        self._method_changed(self.method.currentText())
        self.device.clear()
        # optimizing runs here: a remote device (CPU@agent:pi) is for measuring the result, in compare/bench
        devices = [d["device"] for d in getattr(self, "_devices", [])
                   if d["runtime"] == runtime and REMOTE_DEVICE not in d["device"]] or ["CPU"]
        self.device.addItems(devices)

    def _method_changed(self, method: str) -> None:
        if not method:
            return
        cls = OPTIMIZERS.all().get(f"{self.runtime.currentText()}:{method}") or OPTIMIZERS.all().get(f"any:{method}")
        self.description.setText(cls.description if cls else "")
        from edgestudio.core.catalog import optimizer_options

        # only the options this method reads for this runtime (the catalog says which)
        self.form = OptionsForm(OptimizeOptions, optimizer_options(self.runtime.currentText(), method))
        self.scroll.setWidget(self.form)

    def apply_preset(self, name: str) -> None:
        from edgestudio.core.catalog import preset

        found = preset(name, self.runtime.currentText())
        if found is None:
            self._say(f"no '{name}' preset for {self.runtime.currentText()}")
            return
        method, values = found
        self.method.setCurrentText(method)
        for key, value in values.items():
            if self.form is not None and key in self.form._editors:
                self.form.set_value(key, value)

    def options(self) -> OptimizeOptions:
        values = self.form.values() if self.form else {}
        values.update(calibration=self.calibration.text(), dataset=self.dataset.text(), max_drop=self.max_drop.value())
        if values.get("ignored_scope") is None:
            values["ignored_scope"] = []
        values["inputs"] = dict(getattr(self, "_inputs", {}) or {})
        return OptimizeOptions.from_dict(values)

    def run(self) -> str | None:
        if self.entry is None:
            self.message.setText("Select a model first.")
            return None
        from edgestudio.backends.optimizers.base import find_optimizer
        from edgestudio.core.errors import EdgeStudioError
        from edgestudio.optimization.engine import optimized_name

        runtime, method = self.runtime.currentText(), self.method.currentText()
        try:
            cls = find_optimizer(method, runtime)
        except EdgeStudioError as exc:
            self.say_error("", exc.one_line())
            return None
        opts = self.options()
        if cls.needs_calibration and not (opts.calibration or opts.dataset):
            self.say_error("", f"{method} needs calibration data: drop an .npz or an image folder on the calibration "
                               "field above.")
            return None
        self.data_changed.emit(self.entry.id, {"calibration": self.calibration.text(), "evaluation": self.dataset.text()})
        src = Path(self.entry.path)
        fmt = self.entry.format
        out_fmt = cls.output_format(fmt if fmt in cls.sources else cls.sources[0])
        job = self.bridge.submit(JobSpec(JobKind.OPTIMIZE, model=str(src), runtime=runtime,
                                         device=self.device.currentText(),
                                         options={"method": method, "options": opts.to_dict(), "keep_reference": True}),
                                 output_name=optimized_name(src, method, runtime, out_fmt))
        self._say(html.escape(f"{method} for {runtime} on {src.name}: queued (see Jobs)…"))
        self._jobs[job] = src.name
        self.submitted.emit(job)
        return job

    def job_finished(self, job: str, ok: bool, result: dict[str, Any] | None, error: str | None,
                     status: str = "failed", parent_ops: dict[str, int] | None = None) -> bool:
        """Say how an optimization this panel started ended: accuracy before/after, drift, size (a result larger
        than its parent is said, with the likely cause: ``parent_ops``, the parent's op counts), where it is."""
        name = self._jobs.pop(job, None)
        if name is None:
            return False
        if not ok or not result:
            if status == "cancelled":
                self._say(f"<b>{html.escape(name)}: cancelled</b>")
            else:
                self.say_error(f"<b>{html.escape(name)}: {html.escape(status)}</b> — ", error or status)
            return True
        acc = result.get("accuracy") or {}
        drift = (result.get("details") or {}).get("drift") or {}
        size = result.get("size_bytes") or {}
        parts = [f"<b>{result['method']} for {result['runtime']} done</b> ({result['seconds']:.1f} s)"]
        if acc.get("after") is not None:
            parts.append(f"top-1 {acc.get('before', 0):.4f} → {acc['after']:.4f}")
        if drift:
            from edgestudio.gui.details import drift_outputs_text

            parts.append(f"drift {drift.get('verdict')}: " + html.escape(drift_outputs_text(drift)))
        if size.get("before") and size.get("after"):
            parts.append(f"size {size['before'] / 1024:.0f} → {size['after'] / 1024:.0f} KB "
                         f"({size['after'] / size['before']:.0%})")
            from edgestudio.gui.details import growth_text

            grew = growth_text(size["before"], size["after"], parent_ops)
            if grew:
                parts.append(f"<span style='color:#b35c00'>⚠ {html.escape(grew)}</span>")
        parts.append(f"<small>{html.escape(str(result['output']))}</small>")
        self._say("<br>".join(parts))
        return True

    def _data_edited(self, kind: str, text: str) -> None:
        if self.entry is not None:
            self.data_changed.emit(self.entry.id, {kind: text or None})

    def set_sample_dataset(self, path: str | None) -> None:
        """The samples' labeled split: offered for the sample models only (never pre-filled for a user's model)."""
        self._sample_dataset = path
