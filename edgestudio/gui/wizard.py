"""The conversion wizard: source -> target formats -> options (generated from the converters' option schema)
-> the plan as a chain of hops -> run with progress and log -> parity report per hop."""

from __future__ import annotations

import html

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWizard,
    QWizardPage,
)

from edgestudio.backends.converters.base import CONVERTERS, ConversionError, ConvertOptions
from edgestudio.conversion.engine import default_output
from edgestudio.conversion.planner import plan_conversion
from edgestudio.core.formats import ModelFormat
from edgestudio.core.jobs import JobKind, JobSpec
from edgestudio.core.workspace import ModelEntry
from edgestudio.gui.forms import OptionsForm
from edgestudio.gui.icons import format_icon

TARGETS = (ModelFormat.ONNX, ModelFormat.TFLITE, ModelFormat.OPENVINO, ModelFormat.ORT, ModelFormat.SAVED_MODEL,
           ModelFormat.TFJS, ModelFormat.TVM, ModelFormat.PTE)


def quick_conversion(src: ModelEntry, target: ModelFormat, simplify: bool) -> bool:
    """Seconds of work (e.g. a small ONNX to OpenVINO IR): it may run beside a long conversion, not behind it."""
    from edgestudio.conversion.planner import is_quick

    return is_quick(src.format, target, simplify=simplify, model_bytes=src.size_bytes)  # the size the workspace keeps


class ConversionWizard(QWizard):
    def __init__(self, bridge: Any, models: list[ModelEntry], selected: int | None, parent: Any = None,
                 inputs_for: Any = None) -> None:
        super().__init__(parent)
        self.inputs_for = inputs_for  # model id -> the input specification its parity checks run on
        self.setWindowTitle("Convert a model")
        self.setOption(QWizard.WizardOption.NoBackButtonOnLastPage, True)
        self.resize(720, 560)
        self.bridge = bridge
        self.models = {m.id: m for m in models}
        self.jobs: dict[str, str] = {}  # job id -> target
        self.results: dict[str, dict[str, Any]] = {}
        self.errors: dict[str, str] = {}
        self.source_page = SourcePage(self, models, selected)
        self.target_page = TargetPage(self)
        self.options_page = OptionsPage(self)
        self.plan_page = PlanPage(self)
        self.run_page = RunPage(self)
        for page in (self.source_page, self.target_page, self.options_page, self.plan_page, self.run_page):
            self.addPage(page)

    def source(self) -> ModelEntry:
        return self.models[self.source_page.combo.currentData()]

    def targets(self) -> list[ModelFormat]:
        return [f for f, box in self.target_page.boxes.items() if box.isChecked()]

    def microcontroller(self) -> bool:
        return self.target_page.mcu.isChecked()

    def options(self) -> ConvertOptions:
        opts = ConvertOptions.from_dict(self.options_page.form.values() if self.options_page.form else {})
        if self.inputs_for is not None:
            opts.inputs = dict(self.inputs_for(self.source().id))
        return opts


class SourcePage(QWizardPage):
    def __init__(self, wizard: ConversionWizard, models: list[ModelEntry], selected: int | None) -> None:
        super().__init__()
        self.setTitle("Source")
        self.setSubTitle("The model to convert.")
        lay = QVBoxLayout(self)
        self.combo = QComboBox()
        for m in models:
            self.combo.addItem(f"{m.name}  ({m.format.label})", m.id)
        if selected is not None:
            self.combo.setCurrentIndex(max(0, self.combo.findData(selected)))
        lay.addWidget(self.combo)


class TargetPage(QWizardPage):
    MCU_TIP = ("PyTorch/Keras/ONNX -> INT8 TFLite (calibrated, drift-guarded) -> a package with the C model array, "
               "main.cc and the arena TFLM needed")

    def __init__(self, wizard: ConversionWizard) -> None:
        super().__init__()
        self.w = wizard
        self.setTitle("Target formats")
        self.setSubTitle("One conversion job per target; each hop is checked numerically against its parent.")
        lay = QVBoxLayout(self)
        self.boxes: dict[ModelFormat, QCheckBox] = {}
        for fmt in TARGETS:
            box = QCheckBox(fmt.label)
            box.setIcon(format_icon(fmt))
            box.setObjectName(f"target_{fmt.value}")
            box.toggled.connect(self.completeChanged)
            self.boxes[fmt] = box
            lay.addWidget(box)
        self.mcu = QCheckBox("Microcontroller: full-INT8 TFLite + TensorFlow Lite Micro sources "
                             "(arena measured in the TFLM interpreter)")
        self.mcu.setObjectName("target_microcontroller")
        self.mcu.setToolTip(self.MCU_TIP)
        self.mcu.toggled.connect(self.completeChanged)
        lay.addWidget(self.mcu)
        self.simplify = QCheckBox("Simplify the ONNX hop (onnxslim)")
        lay.addWidget(self.simplify)
        lay.addStretch(1)

    def initializePage(self) -> None:  # noqa: N802
        src = self.w.source().format
        for fmt, box in self.boxes.items():
            try:
                plan_conversion(src, fmt)
                box.setEnabled(True)
                box.setToolTip("")
            except ConversionError as exc:
                box.setChecked(False)
                box.setEnabled(False)
                box.setToolTip(exc.cause)
        try:
            mcu_route(src)
            self.mcu.setEnabled(True)
            self.mcu.setToolTip(self.MCU_TIP)
        except ConversionError as exc:  # offered only where the run has a path: the plan and the run agree
            self.mcu.setChecked(False)
            self.mcu.setEnabled(False)
            self.mcu.setToolTip(exc.cause)

    def isComplete(self) -> bool:  # noqa: N802
        return any(b.isChecked() for b in self.boxes.values()) or self.mcu.isChecked()


class OptionsPage(QWizardPage):
    def __init__(self, wizard: ConversionWizard) -> None:
        super().__init__()
        self.w = wizard
        self.setTitle("Options")
        self.setSubTitle("Only the options the planned converters honour; hover for a description.")
        self.lay = QVBoxLayout(self)
        self.form: OptionsForm | None = None
        from edgestudio.gui.optimize_panel import DataPicker

        self.mcu_box = QGroupBox("Microcontroller")
        mcu = QFormLayout(self.mcu_box)
        self.calibration = DataPicker("calibration samples: .npz/.npy or an image folder (real data)")
        self.calibration.setObjectName("mcu_calibration")
        self.calibration.edit.textChanged.connect(lambda _text: self.completeChanged.emit())
        mcu.addRow("calibration", self.calibration)
        self.io_type = QComboBox()
        self.io_type.addItems(["int8", "uint8", "float"])
        self.io_type.setToolTip("the INT8 model's input/output type: int8 is what a microcontroller feeds it")
        mcu.addRow("input/output type", self.io_type)
        self.lay.addWidget(self.mcu_box)
        self.mcu_box.hide()

    def isComplete(self) -> bool:  # noqa: N802
        return not self.w.microcontroller() or bool(self.calibration.text())

    def initializePage(self) -> None:  # noqa: N802
        if self.form is not None:
            self.lay.removeWidget(self.form)
            self.form.deleteLater()
        used = {"tolerance", "validate"}
        src = self.w.source().format
        for fmt in self.w.targets():
            for hop in plan_conversion(src, fmt, simplify=self.w.target_page.simplify.isChecked()).hops:
                used |= set(CONVERTERS.get(hop.converter).uses)
        self.form = OptionsForm(ConvertOptions, tuple(sorted(used)))
        self.lay.addWidget(self.form)
        self.mcu_box.setVisible(self.w.microcontroller())


class PlanPage(QWizardPage):
    def __init__(self, wizard: ConversionWizard) -> None:
        super().__init__()
        self.w = wizard
        self.setTitle("Plan")
        self.setSubTitle("The path each conversion takes (fewest hops, then the preferred converters).")
        lay = QVBoxLayout(self)
        self.text = QLabel()
        self.text.setObjectName("plan_text")
        self.text.setWordWrap(True)
        lay.addWidget(self.text)
        lay.addStretch(1)

    def initializePage(self) -> None:  # noqa: N802
        from edgestudio.gui.layers_view import inputs_used_text

        src = self.w.source().format
        lines = []
        unavailable: dict[str, list[str]] = {}
        for fmt in self.w.targets():
            plan = plan_conversion(src, fmt, simplify=self.w.target_page.simplify.isChecked())
            chain = " → ".join([src.value] + [f"<b>{h.converter}</b> → {h.target.value}" for h in plan.hops])
            lines.append(f"<p><b>{fmt.label}</b>: {chain}</p>")
            unavailable.update(plan.unavailable)
        if self.w.microcontroller():
            route = " → ".join([src.value] + [f"<b>{c}</b> → {t}" for c, t in mcu_route(src)])
            lines.append(f"<p><b>Microcontroller</b>: {route} ({self.w.options_page.io_type.currentText()} I/O) → "
                         "<b>TFLite Micro</b>: arena measured, C sources</p>")
        if unavailable:  # once for the page, not under every target
            lines.append("<p style='color:gray'>not installed, so not considered: " + "; ".join(
                f"{name} (needs {', '.join(missing)})" for name, missing in unavailable.items()) + "</p>")
        inputs = self.w.inputs_for(self.w.source().id) if self.w.inputs_for is not None else {}
        lines.append(f"<p>{inputs_used_text(inputs)}: every hop is converted and checked on them.</p>")
        self.text.setText("".join(lines))


def mcu_route(src: ModelFormat) -> list[tuple[str, str]]:
    """The microcontroller job's hops from ``src``, as it will run them: (step, what it gives); ConversionError when
    it has none. PyTorch goes to ONNX first; then to a format LiteRT's INT8 quantizer takes; then INT8 TFLite."""
    from edgestudio.backends.optimizers.base import find_optimizer
    from edgestudio.backends.runtimes import runtime_for_format
    from edgestudio.optimization.engine import planned_source

    hops: list[tuple[str, str]] = []
    if src in (ModelFormat.PT2, ModelFormat.TORCHSCRIPT):
        hops += [(h.converter, h.target.value) for h in plan_conversion(src, ModelFormat.ONNX).hops]
        src = ModelFormat.ONNX
    cls = find_optimizer("int8-static", runtime_for_format(ModelFormat.TFLITE))
    _, plan = planned_source(src, cls.sources)
    hops += [(h.converter, h.target.value) for h in (plan.hops if plan is not None else [])]
    hops.append(("int8-static (LiteRT)", "INT8 tflite"))
    return hops


class RunPage(QWizardPage):
    def __init__(self, wizard: ConversionWizard) -> None:
        super().__init__()
        self.w = wizard
        self.setTitle("Converting")
        self.setSubTitle("Jobs run in the background; you can close the wizard, they go on in the Jobs panel.")
        lay = QVBoxLayout(self)
        self.bars: dict[str, QProgressBar] = {}
        self.routes: dict[str, list[tuple[str, str, str]]] = {}  # job -> its planned hops (from, to, converter)
        self.bar_box = QGroupBox("Progress")
        self.bar_lay = QVBoxLayout(self.bar_box)
        lay.addWidget(self.bar_box)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumHeight(120)
        lay.addWidget(self.log)
        self.report = QTableWidget(0, 7)
        self.report.setObjectName("parity_report")
        self.report.setHorizontalHeaderLabels(["target", "hop", "converter", "seconds", "max abs diff", "cosine",
                                               "parity"])
        self.report.verticalHeader().setVisible(False)
        lay.addWidget(self.report, 1)
        self.mcu_summary = QLabel()
        self.mcu_summary.setObjectName("mcu_summary")
        self.mcu_summary.setWordWrap(True)
        self.mcu_summary.setTextInteractionFlags(self.mcu_summary.textInteractionFlags()
                                                 | Qt.TextInteractionFlag.TextSelectableByMouse)
        self.mcu_summary.hide()
        lay.addWidget(self.mcu_summary)
        wizard.bridge.progress.connect(self._progress)
        wizard.bridge.log.connect(self._log)
        wizard.bridge.finished.connect(self._finished)
        wizard.customButtonClicked.connect(self._custom)

    def initializePage(self) -> None:  # noqa: N802
        w = self.w
        src = w.source()
        opts = w.options()
        for fmt in w.targets():
            simplify = w.target_page.simplify.isChecked()
            spec = JobSpec(JobKind.CONVERT, model=src.path, quick=quick_conversion(src, fmt, simplify), options={
                "to": fmt.value, "via": [], "simplify": simplify, "keep_intermediate": True,
                "convert": opts.to_dict()})
            name = default_output(Path(src.path), fmt, folder=Path("/nonexistent")).name
            job = w.bridge.submit(spec, output_name=name)
            w.jobs[job] = fmt.value
            self.routes[job] = _route(src.format, fmt, simplify)
            self._bar(job, fmt.label)
        if w.microcontroller():
            inputs = dict(w.inputs_for(src.id)) if w.inputs_for is not None else {}
            job = w.bridge.submit(JobSpec(JobKind.CALL, model=src.path, options={
                "function": "edgestudio.app.pipelines:run_microcontroller",
                "kwargs": {"model": src.path, "calibration": w.options_page.calibration.text(),
                           "io_type": w.options_page.io_type.currentText(), "inputs": inputs}}),
                output_name=f"{Path(src.path).stem}_mcu")
            w.jobs[job] = "microcontroller"
            self._bar(job, "Microcontroller")
        # on this page the wizard's Cancel closes it and the jobs go on (said so); stopping them is its own button
        w.setButtonText(QWizard.WizardButton.CancelButton, "Close (jobs go on)")
        w.setButtonText(QWizard.WizardButton.CustomButton1, "Cancel the conversions")
        w.setOption(QWizard.WizardOption.HaveCustomButton1, True)
        w.button(QWizard.WizardButton.CustomButton1).setObjectName("cancel_conversions")

    def _custom(self, which: int) -> None:
        if which == int(QWizard.WizardButton.CustomButton1.value):
            self.cancel_jobs()

    def cancel_jobs(self) -> list[str]:
        """Cancel the conversions still running or queued (finished ones keep their artifacts)."""
        left = [j for j in self.w.jobs if j not in self.w.results and j not in self.w.errors]
        for job in left:
            self.w.bridge.cancel(job)
        return left

    def _bar(self, job: str, label: str) -> None:
        bar = QProgressBar()
        bar.setRange(0, 1000)
        bar.setFormat(f"{label}: queued")
        self.bar_lay.addWidget(bar)
        self.bars[job] = bar

    def _progress(self, job: str, fraction: float, message: str) -> None:
        if job in self.bars:
            self.bars[job].setValue(int(fraction * 1000))
            self.bars[job].setFormat(f"{self.w.jobs[job]}: {message[:70]}")

    def _log(self, job: str, line: str) -> None:
        if job in self.w.jobs and not line.startswith(("W0000", "I0000")):
            self.log.appendPlainText(f"[{self.w.jobs[job]}] {line}")

    def _finished(self, job: str, status: str, error: Any, result: Any) -> None:
        if job not in self.w.jobs:
            return
        target = self.w.jobs[job]
        bar = self.bars[job]
        if status == "succeeded":
            bar.setValue(1000)
            bar.setFormat(f"{target}: done")
            self.w.results[job] = result
            for step in result["steps"]:
                p = step.get("parity") or {}
                row = self.report.rowCount()
                self.report.insertRow(row)
                verdict = p.get("verdict") or "not checked"
                marks = {"passed": "✓ passed", "failed": "✗ failed", "inconclusive": "? inconclusive"}
                # the result also run where it will be deployed (TF.js in a real browser): its own verdict
                also = "".join(f" · in {rt}: {marks.get((a or {}).get('verdict'), 'not run')}"
                               for rt, a in (p.get("also") or {}).items())
                sliced = [o for o in p.get("outputs") or [] if o.get("worst_slice_cosine") is not None]
                if sliced:  # an output packing several quantities: its worst channel slice, which a whole cosine hides
                    o = min(sliced, key=lambda o: o["worst_slice_cosine"])
                    also += f" · worst slice {o['name']}{o['worst_slice'].split(' ')[0]} {o['worst_slice_cosine']:.4f}"
                for o in [o for o in p.get("outputs") or [] if o.get("task")][:2]:  # the task metrics
                    also += " · " + ", ".join(_task_text(m) for m in o["task"])
                if step.get("route"):  # the converter's second route, after its first failed
                    also += f" · {step['route']}"
                values = [target, f"{step['from']} → {step['to']}", step["converter"], f"{step['seconds']:.2f}",
                          str(p.get("max_abs_diff", "-")), str(p.get("cosine", "-")),
                          marks.get(verdict, "not checked") + (" (random inputs)" if (p.get("inputs") or {}).get("random")
                                                               else "") + also]
                for c, v in enumerate(values):
                    item = QTableWidgetItem(v)
                    item.setToolTip(str(p.get("summary") or ""))
                    self.report.setItem(row, c, item)
            if target == "microcontroller":
                self._show_microcontroller(result)
            self.report.resizeColumnsToContents()
        else:
            from edgestudio.gui.wording import ended_text, studio_text

            bar.setFormat(f"{target}: {ended_text(status, error) if status == 'cancelled' else status}")
            self.w.errors[job] = error or status
            self.log.appendPlainText(f"[{target}] {ended_text(status, error)}")
            self._report_failure(target, self.routes.get(job) or [],
                                 ended_text(status, error) if status == "cancelled" else studio_text(str(error)))
            if target == "microcontroller":
                self.mcu_summary.setText("<span style='color:#c0392b'><b>Microcontroller</b>: "
                                         f"{html.escape(ended_text(status, error))}</span>")
                self.mcu_summary.show()
        if self.isComplete():  # nothing left to cancel or to go on: the buttons say so
            self.w.setOption(QWizard.WizardOption.HaveCustomButton1, False)
            self.w.setButtonText(QWizard.WizardButton.CancelButton, "Close")
        self.completeChanged.emit()

    def _report_failure(self, target: str, route: list[tuple[str, str, str]], error: str) -> None:
        """A failed target in the report too: the route it took (the hop it failed at, when the error names one) and
        the error, which names the op and the next thing to try."""
        import re

        if target == "microcontroller":
            return
        m = re.search(r"step (\d+)/\d+", error)
        at = int(m.group(1)) - 1 if m else (0 if len(route) == 1 else None)
        hop = route[at] if at is not None and at < len(route) else None
        row = self.report.rowCount()
        self.report.insertRow(row)
        path = " → ".join([route[0][0]] + [t for _, t, _ in route]) if route else "-"
        cause = error.removeprefix("error: ")
        src = self.w.source()
        for prefix in (src.path, Path(src.path).name):  # the row is the model's: its cause first, not its path
            cause = cause.removeprefix(f"{prefix}: ")
        values = [target, f"{hop[0]} → {hop[1]}" if hop else path, hop[2] if hop else "-", "-", "-", "-", "✗ " + cause]
        for c, v in enumerate(values):
            item = QTableWidgetItem(v)
            item.setToolTip(f"route: {path}\n{error}")
            self.report.setItem(row, c, item)
        self.report.resizeColumnsToContents()

    def _show_microcontroller(self, result: dict[str, Any]) -> None:
        t = result.get("tflm") or {}
        drift = result.get("drift") or {}
        par = t.get("parity") or {}
        parts = t.get("arena_parts") or {}
        rows = [("microcontroller", "FP32 → INT8 tflite", "int8-static", "", "",
                 str((drift.get("worst") or {}).get("cosine", "-")), f"drift {drift.get('verdict', 'not checked')}"),
                ("microcontroller", "tflite → TFLite Micro", "tflite-micro", "", str(par.get("max_abs_diff", "-")),
                 str(par.get("cosine", "-")), f"TFLM vs LiteRT {par.get('verdict', '-')}")]
        for values in rows:
            row = self.report.rowCount()
            self.report.insertRow(row)
            for c, v in enumerate(values):
                self.report.setItem(row, c, QTableWidgetItem(v))
        measured = "measured in the TFLM interpreter" if t.get("arena_measured") else "ESTIMATED (TFLM not run)"
        self.mcu_summary.setText(
            f"<b>Microcontroller</b>: tensor arena <b>{t.get('arena_bytes', 0):,} bytes</b> {measured} "
            f"(activations {parts.get('head', 0):,} + persistent {parts.get('tail', 0):,}; 64-bit host, a 32-bit MCU "
            f"needs a little less) · flash {t.get('flash_bytes', t.get('model_bytes', 0)):,} bytes · ops "
            f"{', '.join(t.get('ops', []))} · unsupported: none<br>package: {result.get('package')}")
        self.mcu_summary.show()

    def isComplete(self) -> bool:  # noqa: N802
        return len(self.w.results) + len(self.w.errors) == len(self.w.jobs) and bool(self.w.jobs)


def _task_text(m: dict[str, Any]) -> str:
    from edgestudio.bench.tasks import TaskMetric

    return TaskMetric(**m).text()


def _route(source: Any, target: Any, simplify: bool) -> list[tuple[str, str, str]]:
    """The hops a conversion will take (what the job's own planner picks), for the report of a failure."""
    from edgestudio.conversion.planner import plan_conversion

    try:
        plan = plan_conversion(source, target, simplify=simplify)
    except Exception:  # noqa: BLE001 - the job itself says why there is no path
        return []
    return [(h.source.value, h.target.value, h.converter) for h in plan.hops]
