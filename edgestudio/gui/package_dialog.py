"""Deployment package: what the package is for (the runtime, TensorFlow Lite Micro sources for a TFLite model), the
data its report measures accuracy on (the model's own, never another model's), the inputs it is fed, and where the
zip goes. The package itself is a job (``edgestudio package``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
)

from edgestudio.core.workspace import ModelEntry


class PackageDialog(QDialog):
    def __init__(self, parent: Any, entry: ModelEntry, runtimes: list[tuple[str, str]], *, evaluation: str | None,
                 inputs: dict[str, Any], folder: str | Path | None = None) -> None:
        """``runtimes``: (runtime, label) the model can be packaged for, the default first; ``evaluation``: the
        model's own evaluation data (its lineage's), None when it has none."""
        super().__init__(parent)
        from edgestudio.gui.layers_view import inputs_used_text

        self.entry = entry
        self.setWindowTitle(f"Deployment package — {entry.name}")
        self.setMinimumWidth(560)
        lay = QVBoxLayout(self)
        form = QFormLayout()
        self.runtime = QComboBox()
        self.runtime.setObjectName("package_runtime")
        for rt, label in runtimes:
            self.runtime.addItem(label, rt)
        form.addRow("Package for", self.runtime)
        self.tflm = QCheckBox("TensorFlow Lite Micro sources (C model array, main.cc, the arena measured)")
        self.tflm.setObjectName("package_tflm")
        self._tflm_ok = entry.format.value == "tflite"
        self.tflm.setVisible(self._tflm_ok)
        form.addRow("", self.tflm)
        row = QHBoxLayout()
        self.dataset = QLineEdit(evaluation or "")
        self.dataset.setObjectName("package_dataset")
        self.dataset.setPlaceholderText("optional: labeled .npz or folder of this model's task (top-1 in the report)")
        browse = QPushButton("…")
        browse.setFixedWidth(32)
        browse.clicked.connect(self._browse_data)
        row.addWidget(self.dataset, 1)
        row.addWidget(browse)
        form.addRow("Evaluation data", row)
        self.data_note = QLabel("this model's evaluation data (saved with it or its lineage)" if evaluation else
                                "none saved with this model: the report has latency, no accuracy")
        self.data_note.setStyleSheet("color: gray;")
        form.addRow("", self.data_note)
        self.inputs_used = QLabel(inputs_used_text(inputs))
        self.inputs_used.setObjectName("inputs_used")
        self.inputs_used.setWordWrap(True)
        form.addRow("", self.inputs_used)
        row = QHBoxLayout()
        default = Path(folder or Path.home()) / f"{Path(entry.path.rstrip('/')).stem}.zip"
        self.output = QLineEdit(str(default))
        self.output.setObjectName("package_output")
        out_browse = QPushButton("…")
        out_browse.setFixedWidth(32)
        out_browse.clicked.connect(self._browse_output)
        row.addWidget(self.output, 1)
        row.addWidget(out_browse)
        form.addRow("Zip", row)
        lay.addLayout(form)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.build_button = self.buttons.addButton("Build package", QDialogButtonBox.ButtonRole.AcceptRole)
        self.build_button.setObjectName("package_build")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)

    def settings(self) -> dict[str, Any]:
        return {"out_zip": self.output.text().strip(), "runtime": self.runtime.currentData(),
                "tflm": self._tflm_ok and self.tflm.isChecked(), "dataset": self.dataset.text().strip() or None}

    def _browse_data(self) -> None:
        from edgestudio.gui.paths import ask_open

        path = ask_open(self, "Evaluation data", "Data (*.npz);;All files (*)")
        if path:
            self.dataset.setText(path)

    def _browse_output(self) -> None:
        from edgestudio.gui.paths import ask_save

        path = ask_save(self, "Deployment package", Path(self.output.text()).name, "Zip (*.zip)")
        if path:
            self.output.setText(path)
