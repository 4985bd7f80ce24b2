"""Set up a comparison: pick variants x runtimes x devices, run them as one batch.

Only pairs whose runtime runs the variant's format are measured; the dialog says how many runs that makes
before anything starts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from edgestudio.core.workspace import ModelEntry
from edgestudio.gui.icons import format_icon

Target = tuple[str, str]  # (runtime, device)


class CompareDialog(QDialog):
    def __init__(self, models: list[ModelEntry], selected: list[int], devices: list[dict[str, str]],
                 runs: dict[str, list[str]], dataset: str = "", iterations: int = 100, parent: object = None,
                 data_for: Callable[[int], str | None] | None = None) -> None:
        """``runs``: format value -> runtimes that run it; ``devices``: the detected (runtime, device) pairs;
        ``data_for``: model id -> its own evaluation data (its lineage's), used when no file is given for all."""
        super().__init__(parent)  # type: ignore[arg-type]
        self._data_for = data_for or (lambda _i: None)
        self.setWindowTitle("Compare variants")
        self.setMinimumWidth(520)
        self._runs = runs
        lay = QVBoxLayout(self)

        box = QGroupBox("Variants")
        vl = QVBoxLayout(box)
        self.models = QListWidget()
        for entry in models:
            item = QListWidgetItem(format_icon(entry.format), f"{entry.name}  ({entry.format.label})")
            item.setData(Qt.ItemDataRole.UserRole, entry.id)
            item.setData(Qt.ItemDataRole.UserRole + 1, entry.format.value)
            item.setToolTip(entry.path)
            item.setCheckState(Qt.CheckState.Checked if entry.id in selected else Qt.CheckState.Unchecked)
            self.models.addItem(item)
        vl.addWidget(self.models)
        lay.addWidget(box, 3)

        box = QGroupBox("Runtimes and devices")
        vl = QVBoxLayout(box)
        self.targets = QListWidget()
        pairs = [(d["runtime"], d["device"], d.get("description", "")) for d in devices]
        if not pairs:  # devices not detected (yet): every runtime that runs a format, on its CPU
            pairs = [(rt, "CPU", "") for rt in sorted({rt for rts in runs.values() for rt in rts})]
        for rt, dev, desc in pairs:
            if not any(rt in rts for rts in runs.values()):
                continue  # e.g. a runtime for formats the comparison does not cover
            item = QListWidgetItem(f"{rt} · {dev}")
            item.setData(Qt.ItemDataRole.UserRole, (rt, dev))
            item.setToolTip(desc)
            item.setCheckState(Qt.CheckState.Checked if dev == "CPU" else Qt.CheckState.Unchecked)
            self.targets.addItem(item)
        vl.addWidget(self.targets)
        lay.addWidget(box, 2)

        form = QFormLayout()
        row = QHBoxLayout()
        self.dataset = QLineEdit(dataset)
        self.dataset.setPlaceholderText("each variant's own (its lineage's); or one labeled .npz/folder for all")
        self.dataset.textChanged.connect(self._update)
        browse = QPushButton("…")
        browse.setFixedWidth(32)
        browse.clicked.connect(self._browse)
        row.addWidget(self.dataset)
        row.addWidget(browse)
        form.addRow("Evaluation data", row)
        self.data_note = QLabel()
        self.data_note.setObjectName("compare_data_note")
        self.data_note.setWordWrap(True)
        self.data_note.setStyleSheet("color: gray;")
        form.addRow("", self.data_note)
        self.iterations = QSpinBox()
        self.iterations.setRange(10, 1_000_000)
        self.iterations.setValue(iterations)
        form.addRow("Iterations", self.iterations)
        from edgestudio.core.machine import default_threads

        cores = default_threads()
        self.threads = QComboBox()
        self.threads.setEditable(True)
        self.threads.addItem(f"the same on every runtime: {cores} (this machine's cores)", None)
        self.threads.addItem(f"sweep 1…{cores}", list(range(1, cores + 1)))
        if cores > 1:
            self.threads.addItem("1 (a single-core device)", [1])
        self.threads.setToolTip("Type a list such as 1,2,4 for a thread sweep: each variant at each count")
        self.threads.currentTextChanged.connect(self._update)
        form.addRow("Threads", self.threads)
        self.run_on = QComboBox()
        self.run_on.addItem("this machine (worker pool)", "local")
        self.run_on.addItem("Ray (a local cluster; each job a task, rows fill as tasks end)", "ray")
        import importlib.util

        if importlib.util.find_spec("ray") is None:  # the optional extra is not installed
            self.run_on.model().item(1).setEnabled(False)
            self.run_on.setItemData(1, "pip install 'edgestudio[ray]'", Qt.ItemDataRole.ToolTipRole)
        form.addRow("Run on", self.run_on)
        lay.addLayout(form)

        self.summary = QLabel()
        self.summary.setObjectName("compare_summary")
        self.summary.setWordWrap(True)
        lay.addWidget(self.summary)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.run_button = self.buttons.addButton("Run comparison", QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)
        self.models.itemChanged.connect(self._update)
        self.targets.itemChanged.connect(self._update)
        self._update()

    # ------------------------------------------------------------------------------------------- choices
    @staticmethod
    def _checked(widget: QListWidget) -> list[QListWidgetItem]:
        return [widget.item(i) for i in range(widget.count())
                if widget.item(i).checkState() == Qt.CheckState.Checked]

    def model_ids(self) -> list[int]:
        return [int(i.data(Qt.ItemDataRole.UserRole)) for i in self._checked(self.models)]

    def chosen_targets(self) -> list[Target]:
        return [tuple(i.data(Qt.ItemDataRole.UserRole)) for i in self._checked(self.targets)]  # type: ignore[misc]

    def set_checked(self, model_ids: list[int] | None = None, targets: list[Target] | None = None) -> None:
        if model_ids is not None:
            for i in range(self.models.count()):
                item = self.models.item(i)
                on = item.data(Qt.ItemDataRole.UserRole) in model_ids
                item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
        if targets is not None:
            for i in range(self.targets.count()):
                item = self.targets.item(i)
                on = tuple(item.data(Qt.ItemDataRole.UserRole)) in targets
                item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def thread_counts(self) -> list[int] | None:
        """None: the default (the same count on every runtime); else the sweep's counts (typed or picked)."""
        i = self.threads.currentIndex()
        if i >= 0 and self.threads.itemText(i) == self.threads.currentText():
            return self.threads.itemData(i)
        try:
            counts = [int(x) for x in self.threads.currentText().replace(" ", "").split(",") if x]
        except ValueError:
            return []
        return counts if counts and min(counts) >= 1 else []

    def run_count(self) -> tuple[int, int]:
        """(runs, pairs left out because the runtime does not run that format)."""
        fmts = [i.data(Qt.ItemDataRole.UserRole + 1) for i in self._checked(self.models)]
        targets = self.chosen_targets()
        pairs = sum(1 for f in fmts for rt, _ in targets if rt in self._runs.get(f, []))
        counts = self.thread_counts()
        return pairs * (len(counts) if counts else 1), len(fmts) * len(targets) - pairs

    def _update(self, *_: object) -> None:
        runs, skipped = self.run_count()
        n_models, n_targets = len(self._checked(self.models)), len(self._checked(self.targets))
        text = f"{n_models} variants × {n_targets} runtimes/devices → <b>{runs} runs</b>"
        if skipped:
            text += f" ({skipped} pairs left out: that runtime does not run that format)"
        counts = self.thread_counts()
        if counts:
            text += f" at {', '.join(map(str, counts))} thread{'s' if counts != [1] else ''}"
        if counts == []:
            runs = 0
            text = "Threads: give a count or a list such as 1,2,4."
        elif not runs:
            text = "Pick at least one variant and a runtime that runs it."
        self.summary.setText(text)
        self.run_button.setEnabled(runs > 0)
        if hasattr(self, "data_note"):
            self.data_note.setText(self.data_text())

    def data_text(self) -> str:
        """Which data will judge each checked variant's accuracy (top-1 and the Pareto front need labels)."""
        if self.dataset.text().strip():
            return f"top-1 of every variant on {Path(self.dataset.text().strip()).name}"
        by_file: dict[str | None, list[str]] = {}
        for item in self._checked(self.models):
            data = self._data_for(int(item.data(Qt.ItemDataRole.UserRole)))
            by_file.setdefault(data, []).append(item.text().split("  (")[0])
        if not by_file:
            return ""
        parts = [f"{', '.join(names)} on {Path(f).name}" for f, names in by_file.items() if f]
        none = by_file.get(None)
        if none:
            parts.append(f"no top-1 for {', '.join(none)} (no evaluation data saved with "
                         f"{'it' if len(none) == 1 else 'them'}: Optimize ▸ evaluation, or give a file here)")
        return "top-1: " + "; ".join(parts)

    def _browse(self) -> None:
        from edgestudio.gui.paths import ask_open

        path = ask_open(self, "Evaluation data", "Data (*.npz);;All files (*)")
        if path:
            self.dataset.setText(path)
