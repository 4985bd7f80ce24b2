"""Every job with status, progress, elapsed time and a cancel button; its log on click. History from the
workspace survives restarts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from edgestudio.core.jobs import JobRecord

HIDDEN_KINDS = {"call", "inspect"}  # the app's own housekeeping (device list, details), not the user's work
STATUS_COLORS = {"queued": "#888888", "running": "#2a7ae2", "succeeded": "#2e8b57", "failed": "#c0392b",
                 "cancelled": "#b7950b"}


class JobsPanel(QWidget):
    cancel_requested = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        split = QSplitter(Qt.Orientation.Horizontal)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Job", "Model", "Status", "Progress", "Elapsed", ""])
        self.tree.setRootIsDecorated(False)
        self.tree.setColumnWidth(0, 150)
        self.tree.setColumnWidth(1, 170)
        self.tree.setColumnWidth(3, 170)
        self.tree.itemSelectionChanged.connect(self._show_log)
        split.addWidget(self.tree)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setPlaceholderText("Select a job to see its log.")
        split.addWidget(self.log)
        split.setSizes([700, 300])
        lay.addWidget(split)
        self._items: dict[str, QTreeWidgetItem] = {}
        self._bars: dict[str, QProgressBar] = {}
        self._buttons: dict[str, QPushButton] = {}
        self._logs: dict[str, list[str]] = {}
        self._started: dict[str, float] = {}
        self._elapsed: dict[str, float] = {}
        self._last_progress: dict[str, float] = {}
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._tick)
        self._timer.start(500)

    def _item(self, job_id: str, kind: str, model: str | None) -> QTreeWidgetItem:
        item = self._items.get(job_id)
        if item is None:
            item = QTreeWidgetItem([f"{kind}", Path(model).name if model else "-", "queued", "", "", ""])
            item.setData(0, Qt.ItemDataRole.UserRole, job_id)
            item.setToolTip(0, job_id)
            self.tree.insertTopLevelItem(0, item)
            bar = QProgressBar()
            bar.setRange(0, 1000)
            bar.setTextVisible(True)
            bar.setFormat("")
            self.tree.setItemWidget(item, 3, bar)
            button = QPushButton("Cancel")
            button.setObjectName(f"cancel_{job_id}")
            button.clicked.connect(lambda: self.cancel_requested.emit(job_id))
            button_box = QWidget()
            bl = QHBoxLayout(button_box)
            bl.setContentsMargins(0, 0, 0, 0)
            bl.addWidget(button)
            self.tree.setItemWidget(item, 5, button_box)
            self._items[job_id], self._bars[job_id], self._buttons[job_id] = item, bar, button
            self._logs.setdefault(job_id, [])
        return item

    def load_history(self, records: list[JobRecord]) -> None:
        for rec in reversed(records):
            if rec.spec.kind.value in HIDDEN_KINDS:
                continue
            self._item(rec.id, rec.spec.kind.value, rec.spec.model)
            self._logs[rec.id] = list(rec.log)
            self.on_finished(rec.id, rec.status.value, rec.error, rec.result, elapsed=rec.elapsed_s)

    def on_queued(self, job_id: str, spec: dict[str, Any]) -> None:
        if spec.get("kind") in HIDDEN_KINDS:
            return
        self._item(job_id, spec.get("kind", "?"), spec.get("model"))

    def on_started(self, job_id: str) -> None:
        if job_id in self._items:
            self._started[job_id] = time.monotonic()
            self._set_status(job_id, "running")

    def on_progress(self, job_id: str, fraction: float, message: str) -> None:
        bar = self._bars.get(job_id)
        now = time.monotonic()
        if bar is not None and now - self._last_progress.get(job_id, 0.0) >= 0.2:  # 5 repaints a second at most
            self._last_progress[job_id] = now
            bar.setValue(int(fraction * 1000))
            bar.setFormat(message[:60])
            bar.setToolTip(message)

    def on_log(self, job_id: str, line: str) -> None:
        self._logs.setdefault(job_id, []).append(line)
        if self.selected_job() == job_id:
            self.log.appendPlainText(line)

    def on_finished(self, job_id: str, status: str, error: str | None, result: Any, elapsed: float | None = None) -> None:
        item = self._items.get(job_id)
        if item is None:
            return
        if job_id in self._started:
            self._elapsed[job_id] = time.monotonic() - self._started.pop(job_id)
        elif elapsed is not None:
            self._elapsed[job_id] = elapsed
        self._set_status(job_id, status)
        bar = self._bars[job_id]
        if status == "succeeded":
            bar.setValue(1000)
            bar.setFormat("done")
        else:
            bar.setFormat(error or status)
            item.setToolTip(2, error or status)
        if error:
            self._logs.setdefault(job_id, []).append(f"error: {error}")
        self._buttons[job_id].setEnabled(False)
        self._tick()

    def _set_status(self, job_id: str, status: str) -> None:
        item = self._items[job_id]
        item.setText(2, status)
        item.setForeground(2, QColor(STATUS_COLORS.get(status, "#888")))

    def _tick(self) -> None:
        now = time.monotonic()
        for job_id, item in self._items.items():
            secs = now - self._started[job_id] if job_id in self._started else self._elapsed.get(job_id)
            item.setText(4, f"{secs:.1f} s" if secs is not None else "")

    def selected_job(self) -> str | None:
        item = self.tree.currentItem()
        return str(item.data(0, Qt.ItemDataRole.UserRole)) if item is not None else None

    def _show_log(self) -> None:
        job_id = self.selected_job()
        self.log.setPlainText("\n".join(self._logs.get(job_id or "", [])))

    def status_of(self, job_id: str) -> str | None:
        item = self._items.get(job_id)
        return item.text(2) if item is not None else None

    def cancel_button(self, job_id: str) -> QPushButton:
        return self._buttons[job_id]
