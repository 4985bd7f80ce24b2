"""The comparison of variants (pyqtgraph): grouped bars of p50/p99 and throughput, a table, accuracy vs latency
with the Pareto front, p50 by threads for a sweep; exported as PNGs, one labelled figure or CSV."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QHeaderView, QPushButton, QTableWidget, QTableWidgetItem

from edgestudio.bench.compare import ranked_p50
from edgestudio.gui.charts import PALETTE, ThemedPanel, export_png

WRONG = "#c0392b"  # a row whose runtime disagrees with the others and the parent


class ComparisonView(ThemedPanel):
    """Grouped bars of p50/p99 and throughput, a table, and accuracy vs latency with the Pareto front.
    Clicking a point selects that artifact (``point_clicked`` carries the model path)."""

    point_clicked = Signal(str)

    def __init__(self) -> None:
        super().__init__("Select several models ▸ Compare selected (right-click, or the Model menu) to measure "
                         "them side by side.")
        lay = self.lay
        charts = QHBoxLayout()
        self.bars = pg.PlotWidget(title="latency (ms): p50 / p99")
        self.bars.showGrid(y=True, alpha=0.2)
        self._bars_tip = ("p50: the figure the ranking stands on (the paired round's, where it ran); p99: each "
                          "row's own run. The table has both.")
        self.bars.setToolTip(self._bars_tip)
        self.bars.getViewBox().sigResized.connect(self._fit_bar_labels)
        self.bars.getViewBox().sigXRangeChanged.connect(self._fit_bar_labels)
        self.fps = pg.PlotWidget(title="throughput (inferences/s, one after another)")
        self.fps.showGrid(y=True, alpha=0.2)
        charts.addWidget(self.bars)
        charts.addWidget(self.fps)
        lay.addLayout(charts, 2)
        self.scatter_plot = pg.PlotWidget(title="accuracy vs p50 latency (Pareto front highlighted)")
        self.scatter_plot.setLabel("bottom", "p50 latency (ms), as ranked")
        self.scatter_plot.setLabel("left", "top-1")
        self.scatter_plot.showGrid(x=True, y=True, alpha=0.2)
        for plot in (self.scatter_plot, self.bars, self.fps):
            for axis in ("left", "bottom"):
                plot.getAxis(axis).enableAutoSIPrefix(False)
        self.scatter = pg.ScatterPlotItem(size=12, hoverable=True, tip=self._tip)
        self.scatter.sigClicked.connect(self._clicked)
        self.front_curve = self.scatter_plot.plot([], [], pen=pg.mkPen("#2e8b57", width=2, style=Qt.PenStyle.DashLine))
        self.scatter_plot.addItem(self.scatter)
        self.no_accuracy = pg.TextItem("", color="#888", anchor=(0.5, 0.5))  # why the plot is empty, said on it
        self.scatter_plot.addItem(self.no_accuracy, ignoreBounds=True)
        lower = QHBoxLayout()
        lower.addWidget(self.scatter_plot, 3)
        # a thread sweep: p50 against the thread count, a line per variant and runtime (hidden otherwise)
        self.threads_plot = pg.PlotWidget(title="p50 (ms) by threads")
        self.threads_plot.setLabel("bottom", "threads")
        self.threads_plot.showGrid(x=True, y=True, alpha=0.2)
        self.threads_plot.addLegend(offset=(-10, 10), brush=pg.mkBrush(128, 128, 128, 50))  # legible over lines
        self.threads_plot.setVisible(False)
        lower.addWidget(self.threads_plot, 2)
        lay.addLayout(lower, 2)
        self.table = QTableWidget(0, 10)
        self.table.setHorizontalHeaderLabels(["#", "variant", "runtime/device", "p50 ms [95 % CI]", "p99 ms", "fps",
                                              "size KB", "top-1", "pareto", "note"])
        self.table.horizontalHeaderItem(3).setToolTip(
            "The p50 the rank stands on (the paired round's, where it ran) with its 95 % interval: the same figure as "
            "the bars. Hover a cell for the row's own run.")
        self.table.horizontalHeaderItem(4).setToolTip("Each row's own run (the paired round times blocks, not tails)")
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        lay.addWidget(self.table, 2)
        buttons = QHBoxLayout()
        self.png_button = QPushButton("Export as PNG…")
        self.png_button.clicked.connect(self._export_png_dialog)
        self.csv_button = QPushButton("Export table as CSV…")
        self.csv_button.clicked.connect(self._export_csv_dialog)
        buttons.addStretch(1)
        buttons.addWidget(self.png_button)
        buttons.addWidget(self.csv_button)
        lay.addLayout(buttons)
        self.rows: list[dict[str, Any]] = []
        self._measured: list[dict[str, Any]] = []
        self._labels: list[pg.TextItem] = []

    def _views(self) -> list[pg.GraphicsView]:
        return [self.bars, self.fps, self.scatter_plot, self.threads_plot]

    def _plots(self) -> list[pg.PlotItem]:
        return [v.getPlotItem() for v in self._views()]

    @staticmethod
    def label(row: dict[str, Any]) -> str:
        threads = f" ×{row['threads']}" if row.get("threads_asked") and row.get("threads") else ""
        return f"{Path(row['model']).name} · {row['runtime']}/{row.get('device', 'CPU')}{threads}"

    def _draw_threads(self, measured: list[dict[str, Any]]) -> None:
        """Lines of p50 (the paired round's where there was one) against threads, when the rows are a sweep."""
        self.threads_plot.clear()
        swept = [r for r in measured if r.get("threads_asked") and r.get("threads")]
        lines: dict[str, list[tuple[int, float]]] = {}
        for r in swept:
            key = f"{Path(r['model']).name} · {r['runtime']}"
            lines.setdefault(key, []).append((int(r["threads"]), ranked_p50(r)))
        show = len({int(r["threads"]) for r in swept}) > 1
        self.threads_plot.setVisible(show)
        if not show:
            return
        for k, (name, pts) in enumerate(sorted(lines.items())):
            pts.sort()
            self.threads_plot.plot([p[0] for p in pts], [p[1] for p in pts], name=name, symbol="o", symbolSize=7,
                                   pen=pg.mkPen(PALETTE[k % len(PALETTE)], width=2),
                                   symbolBrush=PALETTE[k % len(PALETTE)])
        counts = sorted({int(r["threads"]) for r in swept})
        self.threads_plot.getAxis("bottom").setTicks([[(t, str(t)) for t in counts]])

    def set_rows(self, rows: list[dict[str, Any]], title: str | None = None) -> None:
        self.rows = rows
        if title:
            self.title.setText(title)
        measured = [r for r in rows if r.get("p50_ms") is not None]
        self._measured = measured
        self.bars.clear()
        self.fps.clear()
        x = np.arange(len(measured))
        if measured:
            # a row whose runtime gave a wrong answer stays visible, in red, never as an ordinary result
            self.bars.addItem(pg.BarGraphItem(x=x - 0.2, height=[ranked_p50(r) for r in measured], width=0.38,
                                              brushes=[WRONG if r.get("flag") else PALETTE[0] for r in measured],
                                              name="p50"))
            self.bars.addItem(pg.BarGraphItem(x=x + 0.2, height=[r.get("p99_ms") or 0 for r in measured], width=0.38,
                                              brush=PALETTE[1], name="p99"))
            self.fps.addItem(pg.BarGraphItem(x=x, height=[r.get("throughput_fps") or 0 for r in measured], width=0.6,
                                             brush=PALETTE[2]))
            ranks = iter(range(1, len(measured) + 1))  # the table's numbers: a flagged row has none
            ticks = [[(i, "⚠" if r.get("flag") else f"#{next(ranks)}") for i, r in enumerate(measured)]]
            self.bars.getAxis("bottom").setTicks(ticks)
            # each p50 written on its bar: a 25x slower variant must not squash the others into unreadable stubs
            self.bar_labels = []
            for i, r in enumerate(measured):
                label = pg.TextItem(("⚠ " if r.get("flag") else "") + f"{ranked_p50(r):.3g}", anchor=(0.5, 1.0),
                                    color=WRONG if r.get("flag") else "#333")
                label.setPos(i - 0.2, ranked_p50(r))
                self.bars.addItem(label)
                self.bar_labels.append(label)
            self.fps.getAxis("bottom").setTicks(ticks)
        else:
            self.bar_labels = []
        self._fit_bar_labels()
        self._draw_scatter(measured)
        self._draw_threads(measured)
        self._fill_table(rows)

    def _fit_bar_labels(self, *_: object) -> None:
        """The p50 written on each bar, only when the bars are wide enough for it: a narrow dock would stack the
        numbers on each other (the table and the axis's ranks say them all the same)."""
        labels = getattr(self, "bar_labels", [])
        if not labels:
            return
        vb = self.bars.getViewBox()
        (x0, x1), _ = vb.viewRange()
        px_per_bar = vb.width() / max(x1 - x0, 1e-9)  # one bar pair per unit of x
        fm = self.fontMetrics()
        widest = max(fm.horizontalAdvance(t.toPlainText()) for t in labels) + 6
        fits = widest <= px_per_bar * 0.95
        for t in labels:
            t.setVisible(fits)
        self.bars.setToolTip(self._bars_tip + ("" if fits else "\nToo narrow to write each p50 on its bar: widen "
                                                              "the panel, or read them in the table."))

    def resizeEvent(self, event: Any) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._fit_bar_labels()

    def _draw_scatter(self, measured: list[dict[str, Any]]) -> None:
        for t in self._labels:
            self.scatter_plot.removeItem(t)
        self._labels = []
        pts = [(i, r) for i, r in enumerate(measured) if r.get("accuracy") is not None]
        spots = []
        for i, r in pts:
            front = bool(r.get("pareto"))
            spots.append({"pos": (ranked_p50(r), r["accuracy"]), "data": i, "symbol": "star" if front else "o",
                          "size": 18 if front else 11,
                          "brush": pg.mkBrush("#2e8b57" if front else PALETTE[i % len(PALETTE)]),
                          "pen": pg.mkPen("k" if front else None)})
        xy = [(ranked_p50(r), r["accuracy"]) for _, r in pts]
        accs = [a for _, a in xy]
        pad = max(0.005, (max(accs) - min(accs)) * 0.15) if accs else 0.0
        groups = _nearby_groups(xy)
        below = _labels_below(xy, groups, y_span=(max(accs) - min(accs)) + 2.2 * pad if accs else 1.0)
        for group, under in zip(groups, below):
            # the same numbers as the bars and the table; points that overlap share one label ("#4, #5"); a label
            # goes under its point when another point sits just above it (it would cover that point)
            _, r0 = pts[group[0]]
            text = pg.TextItem(", ".join(f"#{pts[k][0] + 1}" for k in group), anchor=(0.5, -0.3 if under else 1.3),
                               color="#555")
            text.setPos(ranked_p50(r0), r0["accuracy"])
            self.scatter_plot.addItem(text)
            self._labels.append(text)
        self.scatter.setData(spots)
        empty = bool(measured) and not pts
        self.no_accuracy.setText("no top-1: accuracy needs labeled evaluation data\n(Optimize ▸ evaluation, or the "
                                 "comparison's set-up)" if empty else "")
        if empty:
            self.scatter_plot.setXRange(0, 1)
            self.scatter_plot.setYRange(0, 1)
            self.no_accuracy.setPos(0.5, 0.5)
        if pts:  # fitted to the points (an earlier empty plot's fixed 0..1 would squeeze them into a corner)
            xs = [x for x, _ in xy]
            xpad = max((max(xs) - min(xs)) * 0.12, max(xs) * 0.05, 1e-6)
            self.scatter_plot.setXRange(max(0.0, min(xs) - xpad), max(xs) + xpad, padding=0)
            self.scatter_plot.setYRange(min(accs) - pad, min(1.0, max(accs) + pad) + pad * 0.2)
        front = sorted((r for _, r in pts if r.get("pareto")), key=ranked_p50)
        self.front_curve.setData([ranked_p50(r) for r in front], [r["accuracy"] for r in front])

    def pareto_points(self) -> list[tuple[float, float]]:
        return [(float(s.pos().x()), float(s.pos().y())) for s in self.scatter.points() if s.symbol() == "star"]

    def _fill_table(self, rows: list[dict[str, Any]]) -> None:
        from PySide6.QtGui import QBrush, QColor

        self.table.setRowCount(len(rows))
        n = 0
        for i, r in enumerate(rows):
            measured = r.get("p50_ms") is not None
            flag, noise = r.get("flag"), r.get("noise")
            n += measured and not flag
            threads = f" ×{r['threads']}" if r.get("threads_asked") and r.get("threads") else ""
            note = "; ".join(x for x in (flag, r.get("error"), noise, _paired_note(r)) if x)
            vals = ["⚠" if flag else f"#{n}" if measured else "", Path(r["model"]).name,
                    f"{r['runtime']}/{r.get('device', 'CPU')}{threads}", _ranked_text(r),
                    _fmt(r.get("p99_ms"), 3),
                    _fmt(r.get("throughput_fps"), 0), _fmt(r["size_bytes"] / 1024, 0), _fmt(r.get("accuracy"), 4),
                    "★" if r.get("pareto") else "", note]
            for c, v in enumerate(vals):
                item = QTableWidgetItem(v)
                if c == 3 and measured:
                    item.setToolTip(_own_run_text(r))
                if c == 4 and noise:
                    item.setToolTip(noise)
                    item.setForeground(QBrush(QColor("#b35c00")))
                if c == 9 and note:
                    item.setToolTip(note)
                if flag:  # a wrong answer: the whole row says so
                    item.setBackground(QBrush(QColor(220, 80, 60, 70)))
                    item.setToolTip(flag if c != 3 else f"{flag}\n{_own_run_text(r)}")
                self.table.setItem(i, c, item)

    def _clicked(self, item: Any, points: Any, *args: Any) -> None:
        if not len(points):
            return
        point = points[0]
        event = args[0] if args else None
        if event is not None and len(points) > 1:  # overlapping symbols: the one nearest the cursor, not the first
            at = event.scenePos()

            def away(p: Any) -> float:
                s = item.mapToScene(p.pos())
                return float((s.x() - at.x()) ** 2 + (s.y() - at.y()) ** 2)

            point = min(points, key=away)
        self.point_clicked.emit(self._measured[int(point.data())]["model"])

    def _tip(self, x: float, y: float, data: Any) -> str:
        row = self._measured[int(data)]
        return f"#{int(data) + 1} {self.label(row)}\np50 {x:.3f} ms · top-1 {y:.4f}\nclick to select it"

    def export_png(self, folder: str | Path) -> list[Path]:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        out = []
        views = [("latency", self.bars), ("throughput", self.fps), ("accuracy_vs_latency", self.scatter_plot)]
        if self.threads_plot.isVisibleTo(self):
            views.append(("latency_by_threads", self.threads_plot))
        for name, w in views:
            export_png(w, folder / f"{name}.png")
            out.append(folder / f"{name}.png")
        return out

    def export_csv(self, path: str | Path) -> None:
        keys = ["model", "runtime", "device", "threads", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "throughput_fps", "size_bytes",
                "accuracy", "pareto", "precision", "error", "paired_p50_ms", "flag", "noise"]
        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
            w.writeheader()
            for r in self.rows:
                w.writerow(r)

    def export_figure(self, path: str | Path) -> Path:
        """The whole comparison as one picture: its title, every chart with its axes and legend, and the table."""
        from PySide6.QtCore import QSize

        size = self.size()
        table_height = self.table.maximumHeight()
        policy = self.table.verticalScrollBarPolicy(), self.table.horizontalScrollBarPolicy()
        # the figure is the comparison, not the widget: no export buttons, and the whole table without scroll bars
        self.png_button.hide()
        self.csv_button.hide()
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        rows = sum(self.table.rowHeight(i) for i in range(self.table.rowCount()))
        need = rows + self.table.horizontalHeader().height() + 2 * self.table.frameWidth() + 2
        self.table.setFixedHeight(need)
        width = max(size.width(), 1400, self.table.horizontalHeader().length() + 2 * self.table.frameWidth() + 8)
        self.resize(QSize(width, max(size.height(), 1000 + max(0, need - 250))))  # readable, not a thumbnail
        try:
            self.lay.activate()  # the charts laid out at the figure's size (the axes' ticks made for it) first
            self.grab().save(str(path))
        finally:
            self.table.setMinimumHeight(0)
            self.table.setMaximumHeight(table_height)
            self.table.setVerticalScrollBarPolicy(policy[0])
            self.table.setHorizontalScrollBarPolicy(policy[1])
            self.png_button.show()
            self.csv_button.show()
            self.resize(size)
        return Path(path)

    def _export_png_dialog(self) -> None:
        from edgestudio.gui.paths import ask_save

        path = ask_save(self, "Export the comparison as PNG", "comparison.png", "PNG (*.png)")
        if path:
            self.export_figure(path)

    def _export_csv_dialog(self) -> None:
        from edgestudio.gui.paths import ask_save

        path = ask_save(self, "Export table", "comparison.csv", "CSV (*.csv)")
        if path:
            self.export_csv(path)


def _nearby_groups(points: list[tuple[float, float]], frac: float = 0.08) -> list[list[int]]:
    """Indices of points grouped when they lie within ``frac`` of the data's span of each other on both axes
    (their labels would overlap)."""
    if not points:
        return []
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    dx = (max(xs) - min(xs)) * frac or 1e-12
    dy = (max(ys) - min(ys)) * frac or 1e-12
    groups: list[list[int]] = []
    for k, (x, y) in enumerate(points):
        for g in groups:
            gx, gy = points[g[0]]
            if abs(x - gx) <= dx and abs(y - gy) <= dy:
                g.append(k)
                break
        else:
            groups.append([k])
    return groups


def _labels_below(points: list[tuple[float, float]], groups: list[list[int]], *, y_span: float,
                  x_frac: float = 0.06, y_frac: float = 0.25) -> list[bool]:
    """For each group's label: True when it should go under its point, because another point lies just above
    (within ``x_frac`` of the x span and ``y_frac`` of the plotted y span): a label above would cover it."""
    if not points:
        return []
    xs = [p[0] for p in points]
    dx = (max(xs) - min(xs)) * x_frac or 1e-12
    dy = y_span * y_frac
    out = []
    for g in groups:
        x0, y0 = points[g[0]]
        out.append(any(abs(x - x0) <= dx and 0 < y - y0 <= dy for k, (x, y) in enumerate(points) if k not in g))
    return out


def _fmt(v: Any, digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _ranked_text(r: dict[str, Any]) -> str:
    """The one p50 a row shows (the paired round's where it ran, else its own run's) with its 95 % interval."""
    p50 = ranked_p50(r)
    if p50 is None:
        return "-"
    ci = r.get("paired_ci_ms") if r.get("paired_p50_ms") is not None else r.get("ci_ms")
    return f"{p50:.4g} [{ci[0]:.4g}, {ci[1]:.4g}]" if ci and len(ci) == 2 else f"{p50:.4g}"


def _own_run_text(r: dict[str, Any]) -> str:
    """The row's own benchmark run, for a tooltip: the table's figure is the paired round's where it ran."""
    figs = ", ".join(f"{k} {r[f'{k}_ms']:.4g} ms" for k in ("p50", "p90", "p99", "mean") if r.get(f"{k}_ms") is not None)
    where = ("the p50 shown is the paired round's (variants loaded once, timed in alternating blocks)"
             if r.get("paired_p50_ms") is not None else "the p50 shown is this run's")
    return f"this row's own run: {figs}\n{where}"


def _paired_note(r: dict[str, Any]) -> str:
    """How the row's p50 was ranked ("tie" when the paired evidence cannot tell it from the row ranked above it, the
    thread count of a sweep), else why it was not in the paired round, else the precision."""
    if r.get("paired_p50_ms") is not None:
        return ("paired round" + (", tie with the row above" if r.get("tied") else "")
                + (f", {r['threads']} thread{'s' if r['threads'] != 1 else ''}" if r.get("threads") else ""))
    return r.get("paired_note") or r.get("precision") or ""
