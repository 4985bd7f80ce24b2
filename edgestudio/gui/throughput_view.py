"""Throughput sweep in the studio: batch x streams as a heatmap of samples/s (each cell labelled with its FPS and
request p50), run as a job (``edgestudio bench --throughput``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QLineEdit, QPushButton

from edgestudio.gui.layers_view import _fill, _JobDialog, _table


class ThroughputDialog(_JobDialog):
    function = "edgestudio.bench.throughput:throughput_sweep"

    def __init__(self, window: Any, path: str, runtimes: list[str], inputs: dict[str, Any] | None = None) -> None:
        super().__init__(window, f"Throughput — {path}", inputs, model=path)
        self.path = path
        row = QHBoxLayout()
        self.runtime = QComboBox()
        self.runtime.addItems(runtimes)
        self.batches = QLineEdit("1,4,8")
        self.streams = QLineEdit("1,2")
        self.run_button = QPushButton("Run sweep")
        self.run_button.clicked.connect(self.run)
        for label, w in (("runtime", self.runtime), ("batch", self.batches), ("streams", self.streams)):
            row.addWidget(QLabel(label))
            row.addWidget(w)
        row.addWidget(self.run_button)
        row.addStretch(1)
        self.lay.addLayout(row)
        self.lay.addWidget(self.status)
        self.plot = self._chart("batch", "parallel requests (streams)")
        self.plot.setMaximumHeight(16777215)
        self.lay.addWidget(self.plot, 2)
        self.table = _table(["batch", "streams", "samples/s", "request p50 ms", "p90 ms", "threads/stream", "error"])
        self.lay.addWidget(self.table, 1)

    @staticmethod
    def _ints(text: str) -> list[int]:
        return [int(x) for x in text.replace(" ", "").split(",") if x.isdigit() and int(x) > 0] or [1]

    def run(self) -> str:
        return self.start(model=self.path, runtime=self.runtime.currentText(), batches=self._ints(self.batches.text()),
                          streams=self._ints(self.streams.text()), duration_s=1.5,
                          inputs=self._spec)

    def show_result(self, d: dict[str, Any]) -> None:
        import pyqtgraph as pg

        best = d.get("best")
        self.status.setText(f"<b>{d['runtime']}</b>, {d['cores']} cores split across the streams, "
                            f"{d['duration_s']:g} s a cell" + (f" — best: batch {best['batch']}, {best['streams']} "
                                                             f"stream(s), <b>{best['fps']:.0f} samples/s</b>"
                                                             if best else " — no cell ran"))
        _fill(self.table, [[c["batch"], c["streams"], c.get("fps"), c.get("p50_ms"), c.get("p90_ms"),
                            c.get("threads_per_stream"), c["error"]] for c in d["cells"]])
        bs, ss = d["batches"], d["streams"]
        grid = np.zeros((len(ss), len(bs)))
        for c in d["cells"]:
            grid[ss.index(c["streams"]), bs.index(c["batch"])] = c.get("fps") or 0.0
        self.plot.clear()
        img = pg.ImageItem(grid)
        img.setColorMap(pg.colormap.get("viridis"))
        self.plot.addItem(img)
        self.plot.showGrid(x=False, y=False)  # grid lines would cross the cells' figures
        top = float(grid.max()) or 1.0
        for c in d["cells"]:
            x, y = ss.index(c["streams"]), bs.index(c["batch"])
            text = "error" if c["error"] else f"{c['fps']:.0f}/s\np50 {c['p50_ms']:.3g} ms"
            bright = (c.get("fps") or 0.0) / top > 0.6  # viridis turns green-yellow: dark text reads there
            label = pg.TextItem(text, color="#111" if bright else "w", anchor=(0.5, 0.5))
            label.setPos(x + 0.5, y + 0.5)
            self.plot.addItem(label)
        self.plot.getAxis("bottom").setTicks([[(i + 0.5, str(s)) for i, s in enumerate(ss)]])
        self.plot.getAxis("left").setTicks([[(i + 0.5, str(b)) for i, b in enumerate(bs)]])
