"""The Inputs editor: what a model is fed (the input specification of the CLI's --input/--shape/--value).

One row per model input: its declared shape and type, the shape to use for dynamic dims, and a fixed value
where the input must hold one (a sample rate). A data file (.npz keyed by input name, or .npy) gives real
samples. Below, what each output is (logits, boxes, an embedding, a mask, landmarks) chooses the task metrics
the checks judge it by (the CLI's --output-kind). What is saved here is remembered in the workspace and used by every job the studio runs on this
model and its variants: parity, drift, calibration, benchmarks, packages.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QComboBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from edgestudio.core.errors import EdgeStudioError
from edgestudio.core.inputspec import OUTPUT_KINDS, InputSpec, format_dims, parse_shapes, parse_values
from edgestudio.core.modelinfo import TensorSpec

NAME, DECLARED, DTYPE, SHAPE, VALUE = range(5)


class InputsEditor(QWidget):
    """Edits an :class:`InputSpec` for a list of model inputs; ``saved`` carries the spec as a dict."""

    saved = Signal(dict)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        self.hint = QLabel("What checks and benchmarks feed this model. Empty cells: random data, dynamic dims "
                           "must be given a size. Variants made from this model use the same inputs.")
        self.hint.setWordWrap(True)
        lay.addWidget(self.hint)
        self.table = QTableWidget(0, 5)
        self.table.setObjectName("inputs_table")
        self.table.setHorizontalHeaderLabels(["Input", "Declared shape", "Type", "Shape to use", "Fixed value"])
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        lay.addWidget(self.table, 1)
        self.outputs_label = QLabel("What the outputs are (the checks use the task's metrics: top-1 agreement, box "
                                    "IoU, embedding cosine, mask IoU, landmark error)")
        self.outputs_label.setWordWrap(True)
        lay.addWidget(self.outputs_label)
        self.outputs = QTableWidget(0, 3)
        self.outputs.setObjectName("outputs_table")
        self.outputs.setHorizontalHeaderLabels(["Output", "Shape", "Kind"])
        self.outputs.verticalHeader().setVisible(False)
        self.outputs.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.outputs.horizontalHeader().setStretchLastSection(True)
        lay.addWidget(self.outputs, 1)
        row = QHBoxLayout()
        row.addWidget(QLabel("Data file"))
        self.data = QLineEdit()
        self.data.setObjectName("inputs_data")
        self.data.setPlaceholderText(".npz keyed by input name (a rank+1 array is a stack of samples), or .npy")
        row.addWidget(self.data, 1)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row.addWidget(browse)
        lay.addLayout(row)
        buttons = QHBoxLayout()
        self.status = QLabel()
        self.status.setObjectName("inputs_status")
        self.status.setWordWrap(True)
        buttons.addWidget(self.status, 1)
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(lambda: self.set_spec({}))
        buttons.addWidget(self.clear_button)
        self.save_button = QPushButton("Save inputs")
        self.save_button.setObjectName("inputs_save")
        self.save_button.clicked.connect(self.save)
        buttons.addWidget(self.save_button)
        lay.addLayout(buttons)
        self._specs: list[TensorSpec] = []
        self._outs: list[TensorSpec] = []

    def set_inputs(self, specs: list[TensorSpec], spec: dict[str, Any] | None = None,
                   outputs: list[TensorSpec] | None = None) -> None:
        self._specs = list(specs)
        self._outs = list(outputs or [])
        self.outputs.setRowCount(len(self._outs))
        for r, o in enumerate(self._outs):
            for c, text in ((0, o.name), (1, format_dims(o.shape))):
                item = QTableWidgetItem(text)
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                self.outputs.setItem(r, c, item)
            combo = QComboBox()
            combo.addItem("not said (shape only)", None)
            for kind in OUTPUT_KINDS:
                combo.addItem(kind, kind)
            self.outputs.setCellWidget(r, 2, combo)
        self.outputs.setVisible(bool(self._outs))
        self.outputs_label.setVisible(bool(self._outs))
        self.table.setRowCount(len(specs))
        for r, s in enumerate(specs):
            for c, text in ((NAME, s.name), (DECLARED, format_dims(s.shape)), (DTYPE, s.dtype)):
                item = QTableWidgetItem(text)
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                self.table.setItem(r, c, item)
            for c in (SHAPE, VALUE):
                self.table.setItem(r, c, QTableWidgetItem(""))
        self.set_spec(spec or {})

    def set_spec(self, d: dict[str, Any]) -> None:
        spec = InputSpec.from_dict(d)
        self.data.setText(spec.data or "")
        for r, s in enumerate(self._specs):
            shape = spec.shapes.get(s.name) or (spec.shapes.get("") if r == 0 else None)
            value = spec.values.get(s.name)
            self.table.item(r, SHAPE).setText(",".join(map(str, shape)) if shape else "")
            self.table.item(r, VALUE).setText("" if value is None else (str(int(value)) if float(value).is_integer()
                                                                         else f"{value:g}"))
        for r, o in enumerate(self._outs):
            combo = self.outputs.cellWidget(r, 2)
            combo.setCurrentIndex(max(0, combo.findData(spec.outputs.get(o.name))) if spec.outputs.get(o.name) else 0)
        self.status.setText(self._describe(spec))

    def spec(self) -> InputSpec:
        """The edited specification; raises EdgeStudioError (one line) on a bad cell or name."""
        shapes, values = [], []
        for r, s in enumerate(self._specs):
            shape = self.table.item(r, SHAPE).text().strip()
            value = self.table.item(r, VALUE).text().strip()
            if shape:
                shapes.append(f"{s.name}={shape}")
            if value:
                values.append(f"{s.name}={value}")
        data = self.data.text().strip() or None
        kinds = {o.name: self.outputs.cellWidget(r, 2).currentData() for r, o in enumerate(self._outs)}
        spec = InputSpec(data=data, shapes=parse_shapes(shapes), values=parse_values(values),
                         outputs={k: v for k, v in kinds.items() if v})
        if data:
            spec.check_names(self._specs, data)
        return spec

    def save(self) -> None:
        try:
            spec = self.spec()
        except EdgeStudioError as exc:
            self.status.setText(f"<span style='color:#c0392b'>{exc.one_line()}</span>")
            return
        self.status.setText("saved: " + self._describe(spec))
        self.saved.emit(spec.to_dict())

    @staticmethod
    def _describe(spec: InputSpec) -> str:
        text = "random inputs (nothing given)" if spec.empty else spec.describe()
        if spec.outputs:
            text += "; outputs: " + ", ".join(f"{k} is {v}" for k, v in spec.outputs.items())
        return text

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Input data", self.data.text(), "NumPy (*.npz *.npy)")
        if path:
            self.data.setText(path)
