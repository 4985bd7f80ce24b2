"""Per-layer truth in the studio: "Why did accuracy drop?" (a variant against its parent, layer by layer: where
they part) and "Profile" (where the time goes). Each runs as a job; the dialog shows a table and a chart along the
graph's order (cosine per layer, the first diverging one marked; or time per op type and per layer), and the same
figures painted on the model's graph (Netron, embedded: a heat overlay per node)."""

from __future__ import annotations

import html

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from edgestudio.core.jobs import JobKind, JobSpec

BAD = QColor(220, 80, 60, 90)


def _table(headers: list[str]) -> QTableWidget:
    t = QTableWidget(0, len(headers))
    t.setHorizontalHeaderLabels(headers)
    t.verticalHeader().setVisible(False)
    t.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    t.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
    t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    return t


def _samples_text(d: dict[str, Any]) -> str:
    """``8 samples``, or ``8 of the 16 samples in lines.npz`` when the data holds more than were used."""
    n, total = d["samples"], d.get("samples_in_data")
    if total and total > n:
        return f"{n} of the {total} samples in {d.get('data_file') or 'the data'} (the first {n})"
    return f"{n} sample{'s' if n != 1 else ''}"


def inputs_used_text(spec: dict[str, Any] | None) -> str:
    """What a dialog's jobs are fed, in the studio's words: the model's saved inputs, or random data."""
    from edgestudio.core.inputspec import InputSpec

    s = InputSpec.from_dict(spec or {})
    if s.empty:
        return ("Inputs: random data, dynamic dims at the checks' default (none saved for this model: give its shape "
                "and real data in Details ▸ Inputs to use)")
    return f"Inputs: <b>{html.escape(s.describe())}</b> (this model's saved inputs, Details ▸ Inputs to use)"


def _fill(t: QTableWidget, rows: list[list[Any]], bad: list[bool] | None = None) -> None:
    t.setRowCount(len(rows))
    for i, row in enumerate(rows):
        for j, v in enumerate(row):
            item = QTableWidgetItem("" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v)))
            if isinstance(v, (int, float)):
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if bad and bad[i]:
                item.setBackground(QBrush(BAD))
            t.setItem(i, j, item)


class _JobDialog(QDialog):
    """A dialog whose content is one job's result (a CALL job in the pool): it never blocks the window."""

    function = ""

    def __init__(self, window: Any, title: str, inputs: dict[str, Any] | None = None, model: str | None = None) -> None:
        super().__init__(window)
        self.window = window
        self.bridge = window.bridge
        self.job: str | None = None
        self.result: dict[str, Any] | None = None
        self.model_path = model
        self._spec = dict(inputs or {})  # the model's saved input specification: what every run here is fed
        self.setWindowTitle(title)
        self.resize(980, 640)
        self.lay = QVBoxLayout(self)
        self.inputs_used = QLabel(inputs_used_text(self._spec))
        self.inputs_used.setObjectName("inputs_used")
        self.inputs_used.setWordWrap(True)
        self.lay.addWidget(self.inputs_used)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.bridge.finished.connect(self._finished)
        self.tabs = QTabWidget()
        self.figures = QWidget()
        self.figures_lay = QVBoxLayout(self.figures)
        self.figures_lay.setContentsMargins(0, 0, 0, 0)
        self.tabs.addTab(self.figures, "Table and chart")
        self.graph: Any = None  # the Netron view, made on the first result (QtWebEngine starts then)

    def show_on_graph(self, heat: dict[str, Any] | None) -> None:
        """Paint the result on the model's graph, in the "On the graph" tab."""
        if not heat:
            return
        from edgestudio.gui.netron_view import NetronView

        if self.graph is None:
            self.graph = NetronView(getattr(self.window, "use_webengine", True))
            self.tabs.addTab(self.graph, "On the graph")
        self.graph.set_overlay(heat)
        self.graph.show_model(heat["model"])
        lone = heat.get("not_on_graph") or []
        self.graph.status.setText(self.graph.status.text() + f" — {len(heat['nodes'])} nodes painted"
                                  + (f"; {len(lone)} runtime-inserted layers ({heat.get('not_on_graph_ms', 0):.3f} ms)"
                                     " have no node" if lone else ""))

    def done(self, result: int) -> None:  # noqa: D102 - stop the Netron server with the dialog
        if self.graph is not None:
            self.graph.stop()
        super().done(result)

    def _chart(self, left: str, bottom: str) -> Any:
        import pyqtgraph as pg

        plot = pg.PlotWidget()
        plot.setBackground("w")
        plot.showGrid(x=True, y=True, alpha=0.3)
        plot.setLabel("left", left)
        plot.setLabel("bottom", bottom)
        plot.setMinimumHeight(200)
        plot.setMaximumHeight(300)
        plot.getAxis("left").enableAutoSIPrefix(False)
        return plot

    def start(self, **kwargs: Any) -> str:
        self.result = None
        self.status.setText("running…")
        self.job = self.bridge.submit(JobSpec(JobKind.CALL, model=self.model_path,
                                              options={"function": self.function, "kwargs": kwargs}))
        return self.job

    def _finished(self, job: str, status: str, error: Any, result: Any) -> None:
        if job != self.job or self.bridge.closed:
            return
        if status != "succeeded":
            from edgestudio.gui.wording import ended_html

            self.status.setText(ended_html(status, error))
            return
        self.result = result
        self.show_result(result)

    def show_result(self, result: dict[str, Any]) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class LayerDebugDialog(_JobDialog):
    """A variant against its parent, layer by layer (``edgestudio debug``)."""

    function = "edgestudio.bench.layers:compare_layers"

    def __init__(self, window: Any, parent_path: str, child_path: str, inputs: dict[str, Any] | None = None,
                 chain: list[str] | None = None, child_options: dict[str, Any] | None = None) -> None:
        super().__init__(window, "Why did accuracy drop? — layer by layer", inputs, model=child_path)
        self.parent_path, self.child_path = parent_path, child_path
        self.chain = list(chain or [])  # the whole lineage, original first (when longer than one hop)
        self.chain_job: str | None = None
        self.chain_result: dict[str, Any] | None = None
        self.child_options = dict(child_options or {})
        self.rescue_job: str | None = None
        self.rescue_result: dict[str, Any] | None = None
        head = QLabel(f"<b>{child_path}</b><br>against its parent <b>{parent_path}</b>: every intermediate tensor "
                      "of both, on the same inputs (give real ones: random inputs cannot tell).")
        head.setWordWrap(True)
        self.lay.addWidget(head)
        row = QHBoxLayout()
        self.inputs = QLineEdit((inputs or {}).get("data") or "")
        self.inputs.setPlaceholderText("inputs: .npz keyed by input name (a stack of samples)")
        self.run_button = QPushButton("Compare layers")
        self.run_button.clicked.connect(self.run)
        hops = max(len(self.chain) - 1, 0)
        self.chain_button = QPushButton(f"Whole chain ({hops} hop{'s' if hops != 1 else ''})")
        self.chain_button.setToolTip("Every hop of the lineage against its parent, and the last against the original:"
                                     " the hop where the accuracy left")
        self.chain_button.setEnabled(len(self.chain) > 2)
        self.chain_button.clicked.connect(self.run_chain)
        self.rescue_button = QPushButton("Rescue: keep layers in float")
        self.rescue_button.setToolTip("Quantize the float parent again, keeping in float the fewest layers (the ones "
                                      "this comparison blames) until the accuracy guard passes; the result joins the "
                                      "workspace as a new variant")
        self.rescue_button.setEnabled(self._rescue_runtime() is not None)
        self.rescue_button.clicked.connect(self.run_rescue)
        row.addWidget(self.inputs, 1)
        row.addWidget(self.run_button)
        row.addWidget(self.chain_button)
        row.addWidget(self.rescue_button)
        self.lay.addLayout(row)
        self.lay.addWidget(self.status)
        self.plot = self._chart("cosine to the parent", "layer (graph order)")
        self.figures_lay.addWidget(self.plot)
        self.table = _table(["#", "op", "node", "tensor", "matched by", "cosine", "own drop", "SNR dB",
                             "max abs diff", "weighted op"])
        self.figures_lay.addWidget(self.table, 1)
        self.lay.addWidget(self.tabs, 1)

    def _input_spec(self) -> dict[str, Any]:
        spec = dict(self._spec)
        if self.inputs.text().strip():
            spec["data"] = self.inputs.text().strip()
        return spec

    def run(self) -> str:
        return self.start(parent=self.parent_path, child=self.child_path, inputs=self._input_spec(), samples=8)

    def run_chain(self) -> str:
        self.chain_result = None
        self.status.setText("comparing every hop of the chain…")
        self.chain_job = self.bridge.submit(JobSpec(JobKind.CALL, model=self.child_path, options={
            "function": "edgestudio.bench.layers:compare_chain",
            "kwargs": {"models": self.chain, "inputs": self._input_spec(), "samples": 8}}))
        return self.chain_job

    def _rescue_runtime(self) -> str | None:
        """Whose INT8 the variant is (its recorded runtime, else its format's own): None when it is not an INT8 one
        or the rescue does not run on that runtime."""
        o = self.child_options
        if o.get("method") not in ("int8-static", "int8-accuracy-aware") or o.get("rescued"):
            return None
        from edgestudio.core.catalog import native_runtime
        from edgestudio.core.errors import EdgeStudioError
        from edgestudio.core.formats import detect_format
        from edgestudio.optimization.rescue import rescue_runtimes

        runtime = o.get("runtime")
        if not runtime:
            try:
                runtime = native_runtime(detect_format(self.child_path).value)
            except EdgeStudioError:  # the variant's file is gone or unreadable: nothing to rescue from here
                return None
        return runtime if runtime in rescue_runtimes() else None

    def run_rescue(self) -> str | None:
        import os
        from pathlib import Path

        from edgestudio.optimization.rescue import rescue_suffix

        runtime = self._rescue_runtime()
        if runtime is None:
            return None
        import dataclasses

        from edgestudio.backends.optimizers.base import OptimizeOptions

        # the variant's recorded options that are optimization options (its record also holds the method, runtime,
        # drift, accuracy, versions...: options refuse keys they do not take)
        takes = {f.name for f in dataclasses.fields(OptimizeOptions)}
        opts = {k: v for k, v in self.child_options.items() if k in takes}
        for key in ("calibration", "dataset"):  # as recorded; dropped when the file is gone
            if opts.get(key) and not os.path.exists(str(opts[key])):
                opts.pop(key)
        spec = self._input_spec()
        if not opts.get("calibration") and spec.get("data"):
            opts["calibration"] = spec["data"]
        self.rescue_result = None
        self.status.setText(f"rescuing: {runtime} INT8 with the fewest layers kept in float…")
        name = f"{Path(self.parent_path.rstrip('/')).stem}_int8_rescued{rescue_suffix(runtime)}"
        self.rescue_job = self.bridge.submit(JobSpec(JobKind.CALL, model=self.parent_path, runtime=runtime, options={
            "function": "edgestudio.optimization.rescue:rescue",
            "kwargs": {"parent": self.parent_path, "runtime": runtime, "method": self.child_options.get("method"),
                       "options": opts, "inputs": spec,
                       "max_drop": float(0.01 if opts.get("max_drop") is None else opts["max_drop"]),
                       "min_cosine": 0.999}}), output_name=name)
        return self.rescue_job

    def show_rescue(self, d: dict[str, Any]) -> None:
        from pathlib import Path

        if not hasattr(self, "rescue_table"):
            self.rescue_table = _table(["step", "kept in float", "p50 ms", "size KB", "output cosine", "top-1",
                                        "guard"])
            self.tabs.addTab(self.rescue_table, "Rescue")
        def num(v: Any, fmt: str) -> Any:
            return format(v, fmt) if isinstance(v, (int, float)) else ("-" if v is None else v)

        rows = [[r["step"], ", ".join(n.split(";")[0] for n in r["kept_in_float"]) or "-", num(r.get("p50_ms"), ".3g"),
                 round(r.get("size_bytes", 0) / 1024), num(r.get("output_cosine"), ".6f"), num(r.get("top1"), ".4f"),
                 ("ok" if r["passed"] else "fails" if not r.get("error") else f"error: {r['error']}")
                 + (" (best)" if r["step"] == d.get("best_step") else "")] for r in d["steps"]]
        _fill(self.rescue_table, rows, [not r["passed"] for r in d["steps"]])
        self.tabs.setCurrentWidget(self.rescue_table)
        guard = (f"top-1 drop ≤ {d['guard']['max_drop']}" if "max_drop" in d["guard"]
                 else f"output cosine ≥ {d['guard']['min_output_cosine']}")
        stopped = d.get("stopped") or ""
        if d["passed"] and not d.get("output"):
            self.status.setText(f"<b>nothing to rescue</b>: plain INT8 already meets the guard ({guard}); nothing "
                                "was added.")
        elif d["passed"]:
            self.status.setText(f"<b>rescued</b>: {len(d['kept_in_float'])} layer(s) kept in float pass the guard "
                                f"({guard}); <b>{Path(d['output']).name}</b> joined the workspace.<br>stopped: {stopped}")
        elif d.get("output"):
            self.status.setText(f"<b>the guard was not met</b> ({guard}); the best attempt (step {d['best_step']}, "
                                f"{len(d['kept_in_float'])} kept in float) <b>{Path(d['output']).name}</b> joined the "
                                f"workspace, marked as failing the guard.<br>stopped: {stopped}")
        else:
            self.status.setText(f"<b>no attempt passed the guard</b> ({guard}) nor improved on plain INT8: nothing "
                                f"was added.<br>stopped: {stopped}. Try int8-accuracy-aware, or a larger drop allowed.")
        if d.get("output"):
            refresh = getattr(self.window, "refresh", None)
            if callable(refresh):
                refresh()

    def _finished(self, job: str, status: str, error: Any, result: Any) -> None:
        if job == self.rescue_job and not self.bridge.closed:
            if status != "succeeded":
                from edgestudio.gui.wording import ended_html

                self.status.setText(ended_html(status, error, "rescue"))
            else:
                self.rescue_result = result
                self.show_rescue(result)
            return
        if job == self.chain_job and not self.bridge.closed:
            if status != "succeeded":
                from edgestudio.gui.wording import ended_html

                self.status.setText(ended_html(status, error))
            else:
                self.chain_result = result
                self.show_chain(result)
            return
        super()._finished(job, status, error, result)

    def show_chain(self, d: dict[str, Any]) -> None:
        from pathlib import Path

        if not hasattr(self, "chain_table"):
            self.chain_table = _table(["hop", "parent", "child", "verdict", "output cosine", "top-1 agreement",
                                       "first diverging layer"])
            self.tabs.addTab(self.chain_table, "Whole chain")
        hops = d["hops"] + ([d["whole"]] if len(d["hops"]) > 1 else [])
        rows = [["whole" if i == len(d["hops"]) else i + 1, Path(h["parent"]).name, Path(h["child"]).name,
                 h["verdict"], h["output_cosine"], h["top1_agreement"],
                 f"{h['first_diverging']['node']} ({h['first_diverging']['op']})" if h["first_diverging"] else ""]
                for i, h in enumerate(hops)]
        _fill(self.chain_table, rows, [i == d["loss_enters_at"] for i in range(len(rows))])
        self.tabs.setCurrentWidget(self.chain_table)
        at = d["loss_enters_at"]
        text = f"<b>whole chain: {d['verdict']}</b> over {len(d['hops'])} hops"
        if at is not None:
            h = d["hops"][at]
            text += (f"; the output moves most at hop {at + 1}, {Path(h['parent']).name} → {Path(h['child']).name}"
                     f" (cosine {h['output_cosine']:.6f})")
        if d["skipped"]:
            text += "<br>skipped: " + "; ".join(f"{Path(x['model']).name} ({x['reason']})" for x in d["skipped"])
        if d.get("note"):
            text += f"<br><i>{d['note']}</i>"
        self.status.setText(text)

    def show_result(self, d: dict[str, Any]) -> None:
        import pyqtgraph as pg

        first, big = d.get("first_diverging"), d.get("biggest_contributor")
        verdict = {"agrees": "every matched layer agrees", "diverges": "the child diverges",
                   "outputs agree": "the outputs agree; inside, a layer parts without reaching them",
                   "inconclusive": "inconclusive"}[d["verdict"]]
        lone = d.get("unmatched") or {"parent": len(d["unmatched_parent"]), "child": len(d["unmatched_child"]),
                                      "refused": 0}
        text = (f"<b>{verdict}</b> — {d['matched']} tensors paired ({d['matched_by_name']} by name, "
                f"{d.get('matched_by_structure', 0)} by graph structure); unmatched: {lone['parent']} of the parent's, "
                f"{lone['child']} of the child's, {lone['refused']} name pairs refused (before vs after an "
                f"activation); {_samples_text(d)}.")
        if big:
            via = (f" via {big['node']} ({big['op']})" if big.get("blame_node") and big["blame_node"] != big["node"]
                   else "")
            text += (f"<br>Blamed layer (largest own error): <b>{big.get('blame_node') or big['node']}</b> "
                     f"({big.get('blame_op') or big['op']}){via}: cosine {big['input_cosine']} in → {big['cosine']} "
                     f"out. Keep it in float (Optimize ▸ ignored scope), or let Rescue (above) find the fewest layers to keep.")
        if first:
            label = "First layer that parts" if d["verdict"] == "outputs agree" else "First diverging layer"
            text += (f"<br>{label}: <b>{first['node']}</b> ({first['op']}), cosine {first['cosine']}, "
                     f"SNR {first['snr_db']} dB.")
        outs = d.get("outputs")
        if outs and outs.get("outputs"):  # the outputs themselves: worst sample, slices, task metrics
            from edgestudio.bench.parity import output_text

            text += (f"<br>Outputs ({html.escape(outs['verdict'])}): "
                     + html.escape("; ".join(output_text(o) for o in outs["outputs"][:3])))
        if d.get("note"):
            text += f"<br><i>{d['note']}</i>"
        self.status.setText(text)
        pairs = d["pairs"]
        _fill(self.table, [[p["order"], p["op"], p["node"], p["parent"], p["matched_by"], p["cosine"],
                            p.get("contribution"), "inf" if p["snr_db"] is None else p["snr_db"], p["max_abs_diff"],
                            p.get("blame_node") or ""] for p in pairs],
              [p["diverges"] for p in pairs])
        self.plot.clear()
        xs = [p["order"] for p in pairs]
        ys = [p["cosine"] if p["cosine"] is not None else 1.0 for p in pairs]
        self.plot.plot(xs, ys, pen=pg.mkPen("#3b6fd6", width=2), symbol="o", symbolSize=7,
                       symbolBrush=["#d04a3a" if p["diverges"] else "#3b6fd6" for p in pairs])
        self.plot.addLine(y=d["thresholds"]["min_cosine"], pen=pg.mkPen("#999", style=Qt.PenStyle.DashLine))
        if first:
            self.plot.addLine(x=first["order"], pen=pg.mkPen("#d04a3a", width=1))
        if big:
            self.plot.addLine(x=big["order"], pen=pg.mkPen("#e0a020", width=2))
        self.show_on_graph(d.get("graph"))


def profiling_runtimes(path: str) -> list[str]:
    """The installed runtimes that run this model and have a per-op profiler, its own first."""
    from edgestudio.backends.runtimes import RUNTIMES, runtimes_for_format
    from edgestudio.core.formats import detect_format

    try:
        names = runtimes_for_format(detect_format(path))
    except Exception:  # noqa: BLE001 - an unreadable model: the profile job says why
        return []
    return [n for n in names if RUNTIMES.get(n).can_profile()]


class ProfileDialog(_JobDialog):
    """Time per layer and per op type from the runtime's profiler (``edgestudio profile``)."""

    function = "edgestudio.bench.profile:profile_model"

    def __init__(self, window: Any, path: str, inputs: dict[str, Any] | None = None) -> None:
        super().__init__(window, f"Profile — {path}", inputs, model=path)
        self.path = path
        row = QHBoxLayout()
        self.runtime = QComboBox()
        self.runtime.addItems(profiling_runtimes(path))
        self.run_button = QPushButton("Profile")
        self.run_button.clicked.connect(self.run)
        row.addWidget(QLabel("runtime"))
        row.addWidget(self.runtime)
        row.addWidget(self.run_button)
        row.addStretch(1)
        self.lay.addLayout(row)
        self.lay.addWidget(self.status)
        self.plot = self._chart("ms (median per run)", "op type")
        self.figures_lay.addWidget(self.plot)
        tables = QHBoxLayout()
        self.by_op = _table(["op type", "layers", "ms", "share"])
        self.layers = _table(["layer", "op", "kernel", "ms", "share"])
        tables.addWidget(self.by_op, 2)
        tables.addWidget(self.layers, 3)
        self.figures_lay.addLayout(tables, 1)
        self.lay.addWidget(self.tabs, 1)

    def run(self) -> str:
        return self.start(path=self.path, runtime=self.runtime.currentText(), runs=50, inputs=self._spec)

    def show_result(self, d: dict[str, Any]) -> None:
        import pyqtgraph as pg

        self.status.setText(f"<b>{d['total_layer_ms']:.3f} ms</b> in layers on {d['runtime']} (median of "
                            f"{d['runs']} runs after warm-up)")
        ops = d["by_op"][:12]
        _fill(self.by_op, [[o["op"], o["count"], o["ms"], f"{o['share']:.1%}"] for o in ops])
        _fill(self.layers, [[r["node"], r["op"], r["kernel"], r["ms"], f"{r['share']:.1%}"] for r in d["layers"][:40]])
        self.plot.clear()
        bars = pg.BarGraphItem(x=list(range(len(ops))), height=[o["ms"] for o in ops], width=0.7, brush="#3b6fd6")
        self.plot.addItem(bars)
        self.plot.getAxis("bottom").setTicks([[(i, o["op"]) for i, o in enumerate(ops)]])
        self.show_on_graph(d.get("graph"))
