"""Knowledge distillation in the studio: pick the unlabeled inputs and the student (the teacher at a width, or a
Keras model), start; the loss curve is drawn epoch by epoch as the job streams it, Cancel stops it, and the student
joins the lineage under its teacher (then quantize or benchmark it like any variant)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from edgestudio.core.jobs import JobKind, JobSpec


class DistillDialog(QDialog):
    def __init__(self, window: Any, teacher_id: int) -> None:
        super().__init__(window)
        from edgestudio.gui.optimize_panel import DataPicker

        self.window = window
        self.bridge = window.bridge
        self.teacher = window.workspace.model(teacher_id)
        self.job: str | None = None
        self.result: dict[str, Any] | None = None
        self.losses: list[tuple[int, float]] = []
        self.setWindowTitle(f"Distill — {self.teacher.name}")
        self.resize(760, 600)
        lay = QVBoxLayout(self)
        head = QLabel(f"Train a smaller student to match <b>{self.teacher.name}</b>'s soft outputs on your unlabeled "
                      "inputs (knowledge distillation). Give labeled data to measure both models' top-1 afterwards.")
        head.setWordWrap(True)
        lay.addWidget(head)
        form = QFormLayout()
        self.data = DataPicker("unlabeled inputs: .npz with an 'x' array (or .npy)")
        self.data.setObjectName("distill_data")
        form.addRow("Inputs", self.data)
        self.student = DataPicker("optional: a Keras student model (default: the teacher at the width below)")
        form.addRow("Student", self.student)
        self.width = QDoubleSpinBox()
        self.width.setRange(0.05, 0.95)
        self.width.setSingleStep(0.05)
        self.width.setValue(0.5)
        self.width.setToolTip("filters and units of every layer but the output, times this")
        form.addRow("Width", self.width)
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.5, 20.0)
        self.temperature.setValue(4.0)
        form.addRow("Temperature", self.temperature)
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 10_000)
        self.epochs.setValue(30)
        form.addRow("Epochs", self.epochs)
        self.batch = QSpinBox()
        self.batch.setRange(1, 4096)
        self.batch.setValue(64)
        form.addRow("Batch size", self.batch)
        self.dataset = DataPicker("optional: labeled data (.npz with x and y) for top-1 of teacher and student")
        form.addRow("Evaluate on", self.dataset)
        lay.addLayout(form)
        import pyqtgraph as pg

        self.plot = pg.PlotWidget(title="distillation loss per epoch")
        self.plot.setBackground("w")
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.plot.setLabel("bottom", "epoch")
        self.plot.setLogMode(y=True)
        import math

        steps = [m * 10.0 ** e for e in range(-3, 3) for m in (1, 2, 5)]  # 1-2-5 steps: legible labels
        self.plot.getAxis("left").setTicks([[(math.log10(v), f"{v:g}") for v in steps]])
        self.curve = self.plot.plot([], [], pen=pg.mkPen("#3b6fd6", width=2), symbol="o", symbolSize=5)
        lay.addWidget(self.plot, 1)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.status)
        row = QHBoxLayout()
        self.start_button = QPushButton("Distill")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel job")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        row.addStretch(1)
        row.addWidget(self.start_button)
        row.addWidget(self.cancel_button)
        row.addWidget(close)
        lay.addLayout(row)
        self.bridge.samples.connect(self._samples)
        self.bridge.progress.connect(self._progress)
        self.bridge.finished.connect(self._finished)

    def start(self) -> str | None:
        data = (self.data.text() or "")
        if not data:
            self.status.setText("Give the unlabeled inputs first.")
            return None
        kwargs = {"teacher": self.teacher.path, "data": data, "student": self.student.text(),
                  "width": self.width.value(), "temperature": self.temperature.value(), "epochs": self.epochs.value(),
                  "batch_size": self.batch.value(), "dataset": self.dataset.text()}
        self.losses = []
        self.curve.setData([], [])
        self.result = None
        name = f"{Path(self.teacher.path).stem}_student_w{self.width.value():g}.keras"
        self.job = self.bridge.submit(JobSpec(JobKind.CALL, model=self.teacher.path, options={
            "function": "edgestudio.optimization.distill:distill", "kwargs": kwargs}), output_name=name)
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText("queued…")
        return self.job

    def cancel(self) -> None:
        if self.job:
            self.bridge.cancel(self.job)

    def _samples(self, job: str, samples: list[tuple[int, float]]) -> None:
        if job != self.job:
            return
        self.losses += [(int(i), float(v)) for i, v in samples]
        self.curve.setData([i for i, _ in self.losses], [v for _, v in self.losses])

    def _progress(self, job: str, fraction: float, message: str) -> None:
        if job == self.job:
            self.status.setText(f"{fraction:.0%} — {message}")

    def _finished(self, job: str, status: str, error: Any, result: Any) -> None:
        if job != self.job or self.bridge.closed:
            return
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if status != "succeeded":
            from edgestudio.gui.wording import ended_html

            self.status.setText(ended_html(status, error))
            return
        self.result = d = result
        text = (f"<b>{Path(d['output']).name}</b> joined the workspace: {d['student_params']:,} parameters "
                f"({d['param_ratio']:.0%} of the teacher's), loss {d['loss'][0]:.3f} → {d['loss'][-1]:.3f} in "
                f"{d['seconds']:.1f} s.")
        if d.get("student_top1") is not None:
            text += (f"<br>top-1: teacher <b>{d['teacher_top1']:.4f}</b>, student <b>{d['student_top1']:.4f}</b> "
                     f"({(d['student_top1'] - d['teacher_top1']) * 100:+.2f} points).")
        else:
            text += "<br>Accuracy not measured: give labeled data to compare the two."
        self.status.setText(text)
        refresh = getattr(self.window, "refresh", None)
        if callable(refresh):
            refresh()
