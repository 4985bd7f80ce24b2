"""Details of the selected model: summary, lineage, I/O table, op histogram; the graph in Netron."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QModelIndex, QRectF, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import (QHeaderView, QLabel, QStyledItemDelegate, QStyleOptionViewItem, QTableWidget,
                               QTableWidgetItem, QTabWidget, QVBoxLayout, QWidget)

from edgestudio.core.workspace import ModelEntry
from edgestudio.gui.browser import human_size
from edgestudio.gui.netron_view import NetronView


def _table(headers: list[str]) -> QTableWidget:
    t = QTableWidget(0, len(headers))
    t.setHorizontalHeaderLabels(headers)
    t.verticalHeader().setVisible(False)
    t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    t.horizontalHeader().setStretchLastSection(True)
    t.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    return t


def _fill(table: QTableWidget, rows: list[list[Any]]) -> None:
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            table.setItem(r, c, QTableWidgetItem(str(value)))


class BarDelegate(QStyledItemDelegate):
    """Draws a count as a bar (relative to the column's largest) behind its number: the op histogram."""

    def __init__(self, table: QTableWidget, color: str = "#5b8def") -> None:
        super().__init__(table)
        self.table = table
        self.color = QColor(color)
        self.color.setAlpha(90)
        self.maximum = 1.0

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        try:
            value = float(index.data())
        except (TypeError, ValueError):
            value = 0.0
        if value > 0:
            r = QRectF(option.rect).adjusted(2, 3, -2, -3)  # type: ignore[attr-defined]
            r.setWidth(max(2.0, r.width() * value / self.maximum))
            painter.save()
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(self.color)
            painter.drawRoundedRect(r, 2, 2)
            painter.restore()
        super().paint(painter, option, index)


class DetailsView(QWidget):
    def __init__(self, use_webengine: bool = True) -> None:
        super().__init__()
        lay = QVBoxLayout(self)
        self.title = QLabel("<h3>No model selected</h3><p>Drop a model in the browser, or File ▸ Import.</p>")
        self.title.setWordWrap(True)
        lay.addWidget(self.title)
        self.summary = QLabel()
        self.summary.setObjectName("details_summary")
        self.summary.setWordWrap(True)
        lay.addWidget(self.summary)
        self.tabs = QTabWidget()
        self.io = _table(["", "Name", "Shape", "Type"])
        self.ops = _table(["Op", "Count"])
        self._op_bars = BarDelegate(self.ops)
        self.ops.setItemDelegateForColumn(1, self._op_bars)
        self.graph = NetronView(use_webengine)
        self.tabs.addTab(self.io, "Inputs / outputs")
        self.tabs.addTab(self.ops, "Ops")
        self.tabs.addTab(self.graph, "Graph")
        self.tabs.currentChanged.connect(self._tab_changed)
        lay.addWidget(self.tabs, 1)
        self._entry: ModelEntry | None = None
        self._graph_shown_for: str | None = None

    def show_entry(self, entry: ModelEntry, lineage: list[ModelEntry]) -> None:
        self._entry = entry
        chain = " → ".join(f"{e.name} ({e.format.value})" for e in lineage)
        how = ""
        opts = entry.options or {}
        if opts.get("converter"):
            p = opts.get("parity") or {}
            how = (f"<br>converted with <b>{opts['converter']}</b>; parity: "
                   f"{'passed' if p.get('passed') else 'FAILED' if p.get('passed') is False else 'not checked'}"
                   + (f", max abs diff {p.get('max_abs_diff')}, cosine {p.get('cosine')}" if p else ""))
        elif opts.get("method"):
            acc = opts.get("accuracy") or {}
            how = f"<br>optimized: <b>{opts['method']}</b> for {opts.get('runtime', '')}" + (
                f"; top-1 {acc['before']:.4f} → {acc['after']:.4f}" if acc.get("after") is not None else "")
        self.title.setText(f"<h3>{entry.name}</h3><p>{entry.format.label} · {human_size(entry.size_bytes)}<br>"
                           f"<small>{entry.path}</small><br>lineage: {chain}{how}</p>")
        self.summary.setText("Reading the model…")
        _fill(self.io, [])
        _fill(self.ops, [])
        if self.tabs.currentWidget() is self.graph:
            self._show_graph()

    def show_info(self, info: dict[str, Any]) -> None:
        parts = []
        for key, label in (("parameters", "parameters"), ("macs", "MACs"), ("opset", "opset"), ("producer", "producer")):
            if info.get(key) is not None:
                v = info[key]
                parts.append(f"{label}: <b>{v:,}</b>" if isinstance(v, int) and key != "opset" else f"{label}: <b>{v}</b>")
        self.summary.setText(" · ".join(parts) or "no further details")
        rows = [["in", t["name"], "[" + ", ".join(map(str, t["shape"])) + "]", t["dtype"]] for t in info["inputs"]]
        rows += [["out", t["name"], "[" + ", ".join(map(str, t["shape"])) + "]", t["dtype"]] for t in info["outputs"]]
        _fill(self.io, rows)
        ops = sorted(info["ops"].items(), key=lambda kv: -kv[1])
        self._op_bars.maximum = float(max((v for _, v in ops), default=1))
        _fill(self.ops, [[k, v] for k, v in ops])

    def show_error(self, text: str) -> None:
        self.summary.setText(f"<span style='color:#c0392b'>{text}</span>")

    def _tab_changed(self, index: int) -> None:
        if self.tabs.widget(index) is self.graph:
            self._show_graph()

    def _show_graph(self) -> None:
        if self._entry is not None and self._graph_shown_for != self._entry.path:
            self._graph_shown_for = self._entry.path
            self.graph.show_model(self._entry.path)
