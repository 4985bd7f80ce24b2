"""Charts (pyqtgraph): the live latency of a running benchmark, and the comparison of variants.

Redraws are throttled (superqt's qthrottled): samples arrive in batches every ~50 ms, the curve is redrawn
at most four times a second and the statistics once a second, with downsampling and clip-to-view so 100k
points stay smooth.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import qthrottled

from edgestudio.bench.compare import ranked_p50
from edgestudio.gui.wording import memory_text

WRONG = "#c0392b"  # a row whose runtime disagrees with the others and the parent
PALETTE = ["#5b8def", "#f29d38", "#4fb0c6", "#d9534f", "#7b6cd9", "#2e8b57", "#c9b037", "#e07a5f"]


def chart_theme() -> None:
    """pyqtgraph's colours from the application's palette (light or dark, as the system is)."""
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is not None:
        pal = app.palette()  # type: ignore[attr-defined]
        pg.setConfigOptions(background=pal.color(QPalette.ColorRole.Base),
                            foreground=pal.color(QPalette.ColorRole.Text), antialias=True)


class _Themed(QWidget):
    """A chart panel: a title over the charts, which follow the application's palette when it changes (the
    system switched light/dark)."""

    def __init__(self, title: str) -> None:
        super().__init__()
        chart_theme()
        self.lay = QVBoxLayout(self)
        self.lay.setContentsMargins(2, 2, 2, 2)
        self.title = QLabel(title)
        self.title.setWordWrap(True)
        self.lay.addWidget(self.title)

    def _views(self) -> list[pg.GraphicsView]:
        raise NotImplementedError

    def _plots(self) -> list[pg.PlotItem]:
        raise NotImplementedError

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802
        if event.type() == QEvent.Type.PaletteChange:
            self.apply_palette()
        super().changeEvent(event)

    def apply_palette(self) -> None:
        from PySide6.QtGui import QPalette

        chart_theme()
        pal = self.palette()
        base, text = pal.color(QPalette.ColorRole.Base), pal.color(QPalette.ColorRole.Text)
        for view in self._views():
            view.setBackground(base)
        for plot in self._plots():
            for name in ("left", "bottom"):
                axis = plot.getAxis(name)
                axis.setPen(text)
                axis.setTextPen(text)
            if plot.titleLabel.text:
                plot.setTitle(plot.titleLabel.text, color=text)


def export_png(widget: pg.PlotWidget | pg.GraphicsLayoutWidget, path: str | Path) -> None:
    from pyqtgraph.exporters import ImageExporter

    scene_item = widget.plotItem if isinstance(widget, pg.PlotWidget) else widget.scene()
    ImageExporter(scene_item).export(str(path))


class LiveLatencyChart(_Themed):
    """The latency of each iteration as it is measured, its histogram, running p50/p90/p99.

    The curve scrolls over the last ``WINDOW`` iterations (painting 100k points took ~60 ms a frame);
    statistics and the histogram cover every sample.
    """

    WINDOW = 5000

    def __init__(self) -> None:
        super().__init__("No benchmark yet: right-click a model ▸ Benchmark.")
        lay = self.lay
        # One scene for the curve and the histogram: one paint per frame instead of two.
        self.view = pg.GraphicsLayoutWidget()
        self.plot = self.view.addPlot(row=0, col=0)
        self.hist = self.view.addPlot(row=1, col=0)
        self.view.ci.layout.setRowStretchFactor(0, 3)
        self.view.ci.layout.setRowStretchFactor(1, 2)
        self.plot.setLabel("left", "latency (ms)")
        self.plot.setLabel("bottom", "iteration")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        for axis in ("left", "bottom"):  # grid lines at the major ticks only: the minor ones cost 2/3 of a frame
            self.plot.getAxis(axis).setStyle(maxTickLevel=0)
        self.plot.setDownsampling(auto=True, mode="peak")
        self.plot.setClipToView(True)
        # a dense trace of spikes gains nothing from antialiasing, which costs a quarter of each frame
        self.curve = self.plot.plot([], [], pen=pg.mkPen(PALETTE[0], width=1), antialias=False)
        self.p50_line = pg.InfiniteLine(angle=0, pen=pg.mkPen("#2e8b57", style=Qt.PenStyle.DashLine), label="p50",
                                        labelOpts={"position": 0.95, "color": "#2e8b57"})
        self.p99_line = pg.InfiniteLine(angle=0, pen=pg.mkPen("#c0392b", style=Qt.PenStyle.DashLine), label="p99",
                                        labelOpts={"position": 0.05, "color": "#c0392b"})
        self.plot.addItem(self.p50_line)
        self.plot.addItem(self.p99_line)
        self.p50_line.hide()
        self.p99_line.hide()
        self.hist.setLabel("bottom", "latency (ms)")
        self.hist.setLabel("left", "count")
        self.hist_curve = self.hist.plot([], [], stepMode="center", fillLevel=0, brush=pg.mkBrush(PALETTE[0] + "88"))
        for item in (self.plot, self.hist):
            # Fixed axis sizes: new tick labels (the x axis scrolls every frame) must not re-layout the scene.
            item.getAxis("left").setWidth(56)
            item.getAxis("bottom").setHeight(38)
            for axis in ("left", "bottom"):
                item.getAxis(axis).enableAutoSIPrefix(False)
        lay.addWidget(self.view, 1)
        grid = QGridLayout()
        self.stats: dict[str, QLabel] = {}
        wide = self.fontMetrics().horizontalAdvance("00000.000 ms") + 8
        high = self.fontMetrics().height() + 4
        rows = (("p50", "p90", "p99", "mean", "std"), ("throughput", "first", "load", "iterations"),
                ("model memory", "peak RSS"))
        places = [(key, r, i) for r, keys in enumerate(rows) for i, key in enumerate(keys)]
        tips = {"model memory": "The model's own memory: the worker's resident size after loading and running it, "
                                "less before loading (weights, the runtime's arena and buffers)",
                "peak RSS": "The worker process's peak resident size: Python, every library it loaded and the "
                                "model (a 0.5 MB model still needs the runtime's hundreds of MB)"}
        for key, row, i in places:  # the figures a benchmark report has: latency, speed, memory
            name = QLabel("peak RSS (process)" if key == "peak RSS" else key)
            name.setToolTip(tips.get(key, ""))
            grid.addWidget(name, 2 * row, i)
            value = QLabel("-")
            value.setToolTip(tips.get(key, ""))
            value.setObjectName(f"stat_{key}")
            value.setStyleSheet("font-weight: bold;")
            # A fixed size: Qt then does not re-run the layout of the whole window each time the text changes
            value.setFixedSize(wide, high)
            grid.addWidget(value, 2 * row + 1, i)
            self.stats[key] = value
        lay.addLayout(grid)
        self.job_id: str | None = None
        self._data = np.empty(0)
        self._n = 0

    def start(self, job_id: str, label: str) -> None:
        self.job_id = job_id
        self._data = np.empty(1024)
        self._n = 0
        self.title.setText(f"Benchmark: {label}")
        for v in self.stats.values():
            v.setText("-")
        self.hist_curve.setData([], [])
        self.p50_line.hide()
        self.p99_line.hide()
        self._redraw()

    def add_samples(self, job_id: str, samples: list[tuple[int, float]]) -> None:
        if job_id != self.job_id or not samples:
            return
        need = self._n + len(samples)
        if need > self._data.size:
            self._data = np.resize(self._data, max(need, self._data.size * 2))
        self._data[self._n: need] = [ms for _, ms in samples]
        self._n = need
        self._redraw()
        self._update_stats()

    def _views(self) -> list[pg.GraphicsView]:
        return [self.view]

    def _plots(self) -> list[pg.PlotItem]:
        return [self.plot, self.hist]

    @property
    def points(self) -> int:
        return self._n

    @qthrottled(timeout=250)
    def _redraw(self) -> None:
        # 4 frames a second (a frame costs 5-15 ms of CPU on a software-rendered screen)
        start = max(0, self._n - self.WINDOW)
        self.curve.setData(np.arange(start, self._n), self._data[start: self._n])
        self.stats["iterations"].setText(str(self._n))

    @qthrottled(timeout=1000)
    def _update_stats(self) -> None:
        # Over every sample (percentiles + histogram: 3-15 ms at 100k samples), once a second and in an event
        # of its own, so that it never lands in the same turn of the event loop as a curve frame.
        if self._n < 2:
            return
        data = self._data[: self._n]
        p50, p90, p99 = _percentiles(data, (50, 90, 99))
        self.p50_line.setValue(p50)
        self.p99_line.setValue(p99)
        self.p50_line.show()
        self.p99_line.show()
        for key, v in (("p50", p50), ("p90", p90), ("p99", p99), ("mean", float(data.mean())),
                       ("std", float(data.std()))):
            self.stats[key].setText(f"{v:.3f} ms")
        # over [min, p99 + (p99 - p50)]: a few 10x outliers must not squeeze the distribution into one bar;
        # the tail beyond is counted in the last bin, and said so on the axis
        lo, top = float(data.min()), float(data.max())
        hi = max(min(top, p99 + (p99 - p50)), lo + 1e-6)
        edges, counts = _histogram(data, lo, hi, bins=min(60, max(5, self._n // 10)))
        self.hist_curve.setData(edges, counts)
        beyond = int(np.count_nonzero(data > hi))
        self.hist.setLabel("bottom", f"latency (ms) · last bin: {beyond} more above {hi:.3f}" if beyond
                           else "latency (ms)")
        self.hist.getAxis("bottom").resizeEvent(None)  # re-centre the label (its size is fixed)

    def finish(self, job_id: str, result: dict[str, Any] | None) -> None:
        if job_id != self.job_id or not result:
            return
        samples = result.get("samples_ms")
        if samples is not None and len(samples) > self._n:  # samples lost in flight: show the full record
            self._data = np.asarray(samples, dtype=float)
            self._n = self._data.size
        self._redraw()
        self._redraw.flush()  # type: ignore[attr-defined]
        self._update_stats()
        self._update_stats.flush()  # type: ignore[attr-defined]
        lat = result["latency_ms"]
        for key in ("p50", "p90", "p99"):
            self.stats[key].setText(f"{lat[key]:.3f} ms")
        self.stats["throughput"].setText(f"{result['throughput_fps']:.0f} /s")
        self.stats["load"].setText(f"{result['load_ms']:.0f} ms")
        for key, value in (("mean", lat.get("mean")), ("std", lat.get("std"))):
            if value is not None:
                self.stats[key].setText(f"{value:.3f} ms")
        if result.get("first_inference_ms") is not None:
            self.stats["first"].setText(f"{result['first_inference_ms']:.2f} ms")
        self._memory(result)
        prec = f", {result['precision']}" if result.get("precision") else ""
        self.title.setText(f"{self.title.text()} — done ({result['runtime']}/{result['device']}{prec})")

    def _memory(self, result: dict[str, Any]) -> None:
        if result.get("model_rss_mb") is not None:
            self.stats["model memory"].setText(memory_text(result["model_rss_mb"]))
        if result.get("peak_rss_mb") is not None:
            self.stats["peak RSS"].setText(f"{result['peak_rss_mb']:.0f} MB")

    def show_recorded(self, result: dict[str, Any], label: str) -> None:
        """A benchmark recorded earlier (the last one of the workspace, at start): its figures, and why there is no
        curve (the samples are not kept)."""
        if self.job_id is not None:  # a benchmark of this session is on the chart already
            return
        lat = result.get("latency_ms") or {}
        for key in ("p50", "p90", "p99", "mean", "std"):
            if lat.get(key) is not None:
                self.stats[key].setText(f"{lat[key]:.3f} ms")
        for key, text in (("throughput", result.get("throughput_fps") is not None
                           and f"{result['throughput_fps']:.0f} /s"),
                          ("load", result.get("load_ms") is not None and f"{result['load_ms']:.0f} ms"),
                          ("first", result.get("first_inference_ms") is not None
                           and f"{result['first_inference_ms']:.2f} ms"),
                          ("iterations", result.get("iterations") is not None and str(result["iterations"]))):
            if text:
                self.stats[key].setText(text)
        self._memory(result)
        for line, key in ((self.p50_line, "p50"), (self.p99_line, "p99")):
            if lat.get(key) is not None:
                line.setValue(lat[key])
                line.show()
        self.title.setText(f"Last benchmark: {label} — the figures as recorded; its curve is not kept (Benchmark "
                           "again to watch one live)")


class ComparisonView(_Themed):
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


def _percentiles(data: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """Nearest-rank percentiles with one partition (cheaper than np.percentile; the finished benchmark's
    exact figures replace them)."""
    n = data.size
    ks = [min(n - 1, int(round(q / 100 * (n - 1)))) for q in qs]
    part = np.partition(data, ks)
    return [float(part[k]) for k in ks]


def _histogram(data: np.ndarray, lo: float, hi: float, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts over ``bins`` equal bins of [lo, hi]; values above ``hi`` land in the last one."""
    scale = bins / (hi - lo)
    idx = ((np.minimum(data, hi) - lo) * scale).astype(np.intp)
    np.clip(idx, 0, bins - 1, out=idx)
    return lo + np.arange(bins + 1) / scale, np.bincount(idx, minlength=bins)


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
