"""Benchmark settings: runtime, device, threads, iterations or a duration, warm-up; the inputs are the model's
input specification (Details ▸ Inputs), said here so nobody wonders what was fed. The settings are remembered
(the window's settings): the next benchmark starts from the last one's."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
)


#: in duration mode the iteration count is only a cap: the run ends when the time is up
DURATION_CAP = 1_000_000


class BenchDialog(QDialog):
    def __init__(self, window: Any, model_id: int, runtimes: list[str], devices: list[dict[str, str]]) -> None:
        super().__init__(window)
        from edgestudio.core.machine import default_threads

        self.entry = window.workspace.model(model_id)
        self.setWindowTitle(f"Benchmark — {self.entry.name}")
        self._devices = devices
        lay = QVBoxLayout(self)
        form = QFormLayout()
        self.runtime = QComboBox()
        self.runtime.addItems(runtimes)
        self.runtime.currentTextChanged.connect(self._fill_devices)
        form.addRow("Runtime", self.runtime)
        self.device = QComboBox()
        form.addRow("Device", self.device)
        self.threads = QSpinBox()
        self.threads.setRange(0, 1024)
        self.threads.setSpecialValueText(f"the same on every runtime ({default_threads()})")
        self.threads.setValue(0)
        form.addRow("Threads", self.threads)
        self.iterations = QSpinBox()
        self.iterations.setRange(1, 10_000_000)
        self.iterations.setValue(300)
        form.addRow("Iterations", self.iterations)
        self.use_duration = QCheckBox("run for a duration instead (seconds)")
        self.duration = QDoubleSpinBox()
        self.duration.setRange(0.1, 3600)
        self.duration.setValue(10)
        self.duration.setEnabled(False)
        self.use_duration.toggled.connect(self.duration.setEnabled)
        self.use_duration.toggled.connect(lambda on: self.iterations.setEnabled(not on))
        form.addRow(self.use_duration, self.duration)
        self.warmup = QSpinBox()
        self.warmup.setRange(0, 100_000)
        self.warmup.setValue(10)
        self.warmup.setToolTip("at least this many runs, then on until the latency is steady (0: cold numbers)")
        form.addRow("Warm-up (minimum)", self.warmup)
        lay.addLayout(form)
        spec = window.inputs_for(model_id) or {}
        what = ", ".join(f"{k}: {v}" for k, v in spec.items() if v) or "random values at the model's shapes"
        self.inputs_note = QLabel(f"Inputs: {what} (edit them in Details ▸ Inputs).")
        self.inputs_note.setWordWrap(True)
        lay.addWidget(self.inputs_note)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.run_button = buttons.addButton("Run benchmark", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self._fill_devices(self.runtime.currentText())
        self._settings = getattr(window, "settings", None)
        self._restore()
        self.accepted.connect(self._remember)

    def _restore(self) -> None:
        """The last benchmark's settings (a runtime or device this model has not: its default stays)."""
        st = self._settings
        if st is None:
            return

        def num(key: str, default: float) -> float:
            try:
                return float(st.value(f"bench/{key}", default))
            except (TypeError, ValueError):
                return default

        if self.runtime.findText(str(st.value("bench/runtime", ""))) >= 0:
            self.runtime.setCurrentText(str(st.value("bench/runtime")))
        if self.device.findText(str(st.value("bench/device", ""))) >= 0:
            self.device.setCurrentText(str(st.value("bench/device")))
        self.threads.setValue(int(num("threads", 0)))
        self.iterations.setValue(int(num("iterations", 300)))
        self.duration.setValue(num("duration", 10.0))
        self.warmup.setValue(int(num("warmup", 10)))
        self.use_duration.setChecked(str(st.value("bench/use_duration", "false")).lower() == "true")

    def _remember(self) -> None:
        st = self._settings
        if st is None:
            return
        for key, value in (("runtime", self.runtime.currentText()), ("device", self.device.currentText()),
                           ("threads", self.threads.value()), ("iterations", self.iterations.value()),
                           ("duration", self.duration.value()), ("warmup", self.warmup.value()),
                           ("use_duration", "true" if self.use_duration.isChecked() else "false")):
            st.setValue(f"bench/{key}", value)

    def _fill_devices(self, runtime: str) -> None:
        self.device.clear()
        names = [d["device"] for d in self._devices if d.get("runtime") == runtime] or ["CPU"]
        self.device.addItems(list(dict.fromkeys(names)))

    def settings(self) -> dict[str, Any]:
        return {"runtime": self.runtime.currentText(), "device": self.device.currentText() or "CPU",
                "threads": self.threads.value() or None,
                "iterations": DURATION_CAP if self.use_duration.isChecked() else self.iterations.value(),
                "warmup": self.warmup.value(),
                "duration_s": self.duration.value() if self.use_duration.isChecked() else None}
