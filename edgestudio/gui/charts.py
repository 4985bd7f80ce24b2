"""Charts (pyqtgraph): the live latency of a running benchmark, and what every chart panel shares (the palette,
the theme, PNG export). The comparison of variants is in :mod:`edgestudio.gui.comparison_view`.

Redraws are throttled (superqt's qthrottled): samples arrive in batches every ~50 ms, the curve is redrawn
at most four times a second and the statistics once a second, with downsampling and clip-to-view so 100k
points stay smooth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QVBoxLayout, QWidget
from superqt.utils import qthrottled

from edgestudio.gui.wording import memory_text

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


class ThemedPanel(QWidget):
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


class LiveLatencyChart(ThemedPanel):
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
        from edgestudio.core.jobs import JobKind
        from edgestudio.jobs.results import ResultError, parse_result

        try:
            r = parse_result(JobKind.BENCH, result).body  # the typed BenchResult
        except ResultError as exc:
            self.title.setText(f"{self.title.text()} — done (its figures could not be read: {exc})")
            return
        lat = r.latency_ms
        for key in ("p50", "p90", "p99", "mean", "std"):
            self.stats[key].setText(f"{getattr(lat, key):.3f} ms")
        self.stats["throughput"].setText(f"{r.throughput_fps:.0f} /s")
        self.stats["load"].setText(f"{r.load_ms:.0f} ms")
        self.stats["first"].setText(f"{r.first_inference_ms:.2f} ms")
        self._memory(result)
        prec = f", {r.precision}" if r.precision else ""
        self.title.setText(f"{self.title.text()} — done ({r.runtime}/{r.device}{prec})")

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
