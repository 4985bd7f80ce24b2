"""Details of the selected model: summary, lineage, I/O table, op histogram; the graph in Netron."""

from __future__ import annotations

import html

from typing import Any

from PySide6.QtCore import QModelIndex, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import (
    QHeaderView,
    QLabel,
    QPushButton,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from edgestudio.core.modelinfo import TensorSpec
from edgestudio.core.workspace import ModelEntry
from edgestudio.gui.browser import human_size
from edgestudio.gui.inputs_editor import InputsEditor
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


_VERDICT_COLOURS = {"passed": "#27ae60", "failed": "#c0392b", "inconclusive": "#d68910", "not checked": "#7f8c8d"}


def verdict_html(verdict: str | None) -> str:
    v = verdict or "not checked"
    return f"<b style='color:{_VERDICT_COLOURS.get(v, '#7f8c8d')}'>{v}</b>"


def parity_html(p: dict[str, Any] | None) -> str:
    """A conversion's parity: its verdict and figures, as the CLI prints them (older records: passed/failed)."""
    if not p:
        return "parity " + verdict_html("not checked")
    verdict = p.get("verdict") or ("passed" if p.get("passed") else "failed" if p.get("passed") is False
                                   else "not checked")
    summary = str(p.get("summary") or "").split(": ", 1)[-1]
    return f"parity {verdict_html(verdict)}" + (f": {summary}" if summary else "")


def drift_html(d: dict[str, Any] | None) -> str:
    """An optimized variant's drift from its FP32 parent."""
    if not d:
        return ""
    from edgestudio.gui.wording import studio_text

    return (f"drift vs FP32 {verdict_html(d.get('verdict'))} on {d.get('samples')} "
            f"{html.escape(studio_text(str(d.get('data'))))}: " + html.escape(drift_outputs_text(d)))


def drift_outputs_text(d: dict[str, Any]) -> str:
    """Per output: the worst sample's cosine, SNR, the worst channel slice where there are slices, the task
    metrics where the output's kind is known, and why it failed (a collapsed slice is named)."""
    from edgestudio.bench.parity import output_text
    from edgestudio.gui.wording import studio_text

    parts = [output_text(o) for o in d.get("outputs", [])[:3]]
    return studio_text("; ".join(parts))


def growth_text(before: int | None, after: int | None, ops: dict[str, int] | None = None) -> str | None:
    """Why an optimized model is larger than its parent (an INT8 model should be about a quarter of it), with the
    likely cause and what to do; None when it is not larger."""
    if not before or not after or after <= before:
        return None
    bn = int((ops or {}).get("BatchNormalization") or 0)
    cause = (f"its {bn} BatchNormalization layer{'s were' if bn != 1 else ' was'} left unfolded: kept in float "
             "beside the INT8 convolutions, each with a quantize/dequantize pair" if bn else
             "layers left in float beside the INT8 ones (a BatchNormalization not folded into its convolution, "
             "for one) and a quantize/dequantize pair per tensor outweigh the smaller weights")
    return (f"larger than its parent ({before / 1024:.0f} → {after / 1024:.0f} KB, +{after / before - 1:.0%}): "
            f"likely {cause}. Simplify the parent first (Convert ▸ ONNX with Simplify, which folds them into the "
            "convolutions) and optimize that.")


class GraphWindow(QWidget):
    """A top-level window holding the Netron view while it is detached from the details."""

    closed = Signal()

    def __init__(self, graph: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setObjectName("graph_window")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(graph)
        graph.show()
        screen = self.screen().availableGeometry() if self.screen() is not None else None
        width, height = (screen.width() - 80, screen.height() - 80) if screen is not None else (1200, 800)
        self.resize(min(1400, width), min(900, height))  # room: most of the screen, up to 1400 x 900

    def closeEvent(self, event: Any) -> None:  # noqa: N802
        self.closed.emit()
        super().closeEvent(event)


class DetailsView(QWidget):
    link_clicked = Signal(str)  # a fix named in the details (``inputs``: the model's inputs to use)

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
        self.size_note = QLabel()  # an optimized model larger than its parent: said, with the likely cause
        self.size_note.setObjectName("details_size_note")
        self.size_note.setWordWrap(True)
        self.size_note.setStyleSheet("color: #b35c00;")
        self.size_note.hide()
        lay.addWidget(self.size_note)
        self.summary.linkActivated.connect(self.link_clicked)
        self.last_bench = QLabel()
        self.last_bench.setObjectName("details_last_bench")
        self.last_bench.setWordWrap(True)
        lay.addWidget(self.last_bench)
        self.tabs = QTabWidget()
        self.io = _table(["", "Name", "Shape", "Type"])
        self.ops = _table(["Op", "Count"])
        self._op_bars = BarDelegate(self.ops)
        self.ops.setItemDelegateForColumn(1, self._op_bars)
        self.graph = NetronView(use_webengine)
        self.inputs = InputsEditor()
        self.tabs.addTab(self.io, "Inputs / outputs")
        self.tabs.addTab(self.inputs, "Inputs to use")
        self.tabs.addTab(self.ops, "Ops")
        self.tabs.addTab(self.graph, "Graph")
        self.tabs.currentChanged.connect(self._tab_changed)
        lay.addWidget(self.tabs, 1)
        self._entry: ModelEntry | None = None
        self._graph_shown_for: str | None = None
        self.graph_window: GraphWindow | None = None
        self.graph.detach_button.show()
        self.graph.detach_button.clicked.connect(self.toggle_graph_window)

    def show_entry(self, entry: ModelEntry, lineage: list[ModelEntry], inputs: dict[str, Any] | None = None) -> None:
        self._entry = entry
        self._inputs_spec = inputs or {}
        chain = " → ".join(f"{e.name} ({e.format.value})" for e in lineage)
        how = ""
        opts = entry.options or {}
        if opts.get("converter"):
            how = f"<br>converted with <b>{opts['converter']}</b>; {parity_html(opts.get('parity'))}"
        elif opts.get("method"):
            acc = opts.get("accuracy") or {}
            how = f"<br>optimized: <b>{opts['method']}</b> for {opts.get('runtime', '')}" + (
                f"; top-1 {acc['before']:.4f} → {acc['after']:.4f}" if acc.get("after") is not None else "")
            how += f"<br>{drift_html(opts.get('drift'))}" if opts.get("drift") else ""
        parent = lineage[-2] if len(lineage) > 1 and lineage[-2].id == entry.parent_id else None
        self._growth = (parent.size_bytes, entry.size_bytes) if parent is not None and opts.get("method") else None
        self._show_growth(None)
        self.title.setText(f"<h3>{entry.name}</h3><p>{entry.format.label} · {human_size(entry.size_bytes)}<br>"
                           f"<small>{entry.path}</small><br>lineage: {chain}{how}</p>")
        self.summary.setText("Reading the model…")
        _fill(self.io, [])
        _fill(self.ops, [])
        if self.tabs.currentWidget() is self.graph or self.graph_window is not None:
            self._show_graph()
        if self.graph_window is not None:
            self.graph_window.setWindowTitle(f"Graph of {entry.name} — EdgeStudio")

    def _show_growth(self, ops: dict[str, int] | None) -> None:
        text = growth_text(*self._growth, ops) if self._growth else None
        self.size_note.setText(f"⚠ {html.escape(text)}" if text else "")
        self.size_note.setVisible(bool(text))

    def toggle_graph_window(self) -> None:
        if self.graph_window is None:
            self.detach_graph()
        else:
            self.graph_window.close()

    def detach_graph(self) -> GraphWindow:
        """The graph in a window of its own, as large as the user likes; it keeps following the selection.
        Closing the window (or the button) puts it back as the Graph tab."""
        if self.graph_window is not None:
            return self.graph_window
        index = self.tabs.indexOf(self.graph)
        self.tabs.removeTab(index)
        self.graph_window = GraphWindow(self.graph, self.window())
        self.graph_window.closed.connect(self.attach_graph)
        self._placeholder = self._graph_placeholder()
        self.tabs.insertTab(index, self._placeholder, "Graph ↗")
        self.graph.detach_button.setText("Put it back in the details")
        name = self._entry.name if self._entry is not None else "no model"
        self.graph_window.setWindowTitle(f"Graph of {name} — EdgeStudio")
        self.graph_window.show()
        self._show_graph()
        return self.graph_window

    def attach_graph(self) -> None:
        win, self.graph_window = self.graph_window, None
        if win is None:
            return
        index = self.tabs.indexOf(self._placeholder)
        self.tabs.removeTab(index)
        self._placeholder.deleteLater()
        self.tabs.insertTab(index, self.graph, "Graph")
        self.graph.detach_button.setText("Open in its own window")
        win.deleteLater()  # (it is closing)

    def _graph_placeholder(self) -> QWidget:
        w = QWidget()
        lay = QVBoxLayout(w)
        note = QLabel("The graph is in a window of its own.")
        back = QPushButton("Put it back here")
        back.clicked.connect(lambda: self.graph_window.close() if self.graph_window is not None else None)
        lay.addWidget(note)
        lay.addWidget(back, 0, Qt.AlignmentFlag.AlignLeft)
        lay.addStretch(1)
        return w

    def show_measurements(self, results: list[dict[str, Any]]) -> None:
        """The model's last benchmark and accuracy, as recorded in the workspace (they survive a restart)."""
        import time

        from edgestudio.gui.wording import memory_text

        bench = [r for r in results if r["kind"] == "bench"]
        acc = [r for r in results if r["kind"] == "eval"]
        parts = []
        if bench:
            r = bench[-1]
            d = r["data"]
            lat = d.get("latency_ms") or {}
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created_at"]))
            parts.append(f"last benchmark ({when}): <b>p50 {lat.get('p50', 0):.3f} ms</b>, p99 {lat.get('p99', 0):.3f} ms"
                         f" on {d.get('runtime')}/{d.get('device', 'CPU')}"
                         + (f", {d['threads']} threads" if d.get("threads") else "")
                         + f", {d.get('iterations')} runs"
                         + (f"; memory: model {memory_text(d['model_rss_mb'])}, process peak {d['peak_rss_mb']:.0f} MB"
                            if d.get("model_rss_mb") is not None and d.get("peak_rss_mb") is not None else "")
                         + (f" ({len(bench)} recorded)" if len(bench) > 1 else ""))
        if acc:
            d = acc[-1]["data"]
            parts.append(f"last accuracy: top-1 <b>{d.get('top1', 0):.4f}</b> on {d.get('n', '?')} samples ({d.get('runtime')})")
        self.last_bench.setText("<br>".join(parts))
        self.last_bench.setVisible(bool(parts))

    def show_info(self, info: dict[str, Any]) -> None:
        from edgestudio.core.inputspec import format_dims

        parts = []
        for key, label in (("parameters", "parameters"), ("macs", "MACs"), ("opset", "opset"), ("producer", "producer")):
            if info.get(key) is not None:
                v = info[key]
                parts.append(f"{label}: <b>{v:,}</b>" if isinstance(v, int) and key != "opset" else f"{label}: <b>{v}</b>")
            elif key == "macs" and info.get("macs_note"):
                from edgestudio.gui.wording import fix_for, studio_text

                note = html.escape(studio_text(info["macs_note"]))
                parts.append(f"MACs: {note}" + (" — <a href='inputs'>set its shape</a>"
                                                if fix_for(info["macs_note"]) else ""))
        self.summary.setText(" · ".join(parts) or "no further details")
        rows = [["in", t["name"], format_dims(t["shape"]), t["dtype"]] for t in info["inputs"]]
        rows += [["out", t["name"], format_dims(t["shape"]), t["dtype"]] for t in info["outputs"]]
        _fill(self.io, rows)
        self.inputs.set_inputs([TensorSpec.from_dict(t) for t in info["inputs"]], self._inputs_spec,
                               [TensorSpec.from_dict(t) for t in info["outputs"]])
        if getattr(self, "_growth", None):
            self._show_growth(info["ops"])
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
