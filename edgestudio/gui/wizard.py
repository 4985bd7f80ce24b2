"""The conversion wizard: source -> target formats -> options (generated from the converters' option schema)
-> the plan as a chain of hops -> run with progress and log -> parity report per hop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
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

TARGETS = (ModelFormat.ONNX, ModelFormat.TFLITE, ModelFormat.OPENVINO, ModelFormat.ORT, ModelFormat.SAVED_MODEL)


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

    def isComplete(self) -> bool:  # noqa: N802
        return any(b.isChecked() for b in self.boxes.values())


class OptionsPage(QWizardPage):
    def __init__(self, wizard: ConversionWizard) -> None:
        super().__init__()
        self.w = wizard
        self.setTitle("Options")
        self.setSubTitle("Only the options the planned converters honour; hover for a description.")
        self.lay = QVBoxLayout(self)
        self.form: OptionsForm | None = None

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
        src = self.w.source().format
        lines = []
        for fmt in self.w.targets():
            plan = plan_conversion(src, fmt, simplify=self.w.target_page.simplify.isChecked())
            chain = " → ".join([src.value] + [f"<b>{h.converter}</b> → {h.target.value}" for h in plan.hops])
            lines.append(f"<p><b>{fmt.label}</b>: {chain}</p>")
            for name, missing in plan.unavailable.items():
                lines.append(f"<p style='color:gray'>unavailable: {name} (needs {', '.join(missing)})</p>")
        self.text.setText("".join(lines))


class RunPage(QWizardPage):
    def __init__(self, wizard: ConversionWizard) -> None:
        super().__init__()
        self.w = wizard
        self.setTitle("Converting")
        self.setSubTitle("Jobs run in the background; you can close the wizard, they go on in the Jobs panel.")
        lay = QVBoxLayout(self)
        self.bars: dict[str, QProgressBar] = {}
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
        wizard.bridge.progress.connect(self._progress)
        wizard.bridge.log.connect(self._log)
        wizard.bridge.finished.connect(self._finished)

    def initializePage(self) -> None:  # noqa: N802
        w = self.w
        src = w.source()
        opts = w.options()
        for fmt in w.targets():
            spec = JobSpec(JobKind.CONVERT, model=src.path, options={
                "to": fmt.value, "via": [], "simplify": w.target_page.simplify.isChecked(), "keep_intermediate": True,
                "convert": opts.to_dict()})
            name = default_output(Path(src.path), fmt, folder=Path("/nonexistent")).name
            job = w.bridge.submit(spec, output_name=name)
            w.jobs[job] = fmt.value
            bar = QProgressBar()
            bar.setRange(0, 1000)
            bar.setFormat(f"{fmt.label}: queued")
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
                values = [target, f"{step['from']} → {step['to']}", step["converter"], f"{step['seconds']:.2f}",
                          str(p.get("max_abs_diff", "-")), str(p.get("cosine", "-")),
                          {"passed": "✓ passed", "failed": "✗ failed", "inconclusive": "? inconclusive"}.get(
                              verdict, "not checked") + (" (random inputs)" if (p.get("inputs") or {}).get("random")
                                                         else "")]
                for c, v in enumerate(values):
                    item = QTableWidgetItem(v)
                    item.setToolTip(str(p.get("summary") or ""))
                    self.report.setItem(row, c, item)
            self.report.resizeColumnsToContents()
        else:
            bar.setFormat(f"{target}: {status}")
            self.w.errors[job] = error or status
            self.log.appendPlainText(f"[{target}] {status}: {error}")
        self.completeChanged.emit()

    def isComplete(self) -> bool:  # noqa: N802
        return len(self.w.results) + len(self.w.errors) == len(self.w.jobs) and bool(self.w.jobs)
