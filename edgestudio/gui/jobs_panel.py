"""Every job with status, progress, elapsed time and a cancel button; its log on click. History from the
workspace survives restarts."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from edgestudio.core.jobs import JobRecord, device_name
from edgestudio.gui.wording import ended_text, fix_for, studio_text

HIDDEN_KINDS = {"call", "inspect"}  # the app's own housekeeping (device list, details), not the user's work
#: calls that are the user's work (a row each, as the CLI's `jobs` lists them), by the words the row says
USER_CALLS = {
    "edgestudio.app.pipelines:run_microcontroller": "microcontroller",
    "edgestudio.optimization.rescue:rescue": "rescue",
    "edgestudio.optimization.distill:distill": "distill",
    "edgestudio.app.recipes:run_recipe": "recipe",
    "edgestudio.bench.layers:compare_layers": "why accuracy dropped",
    "edgestudio.bench.layers:compare_chain": "whole chain, layer by layer",
    "edgestudio.bench.profile:profile_model": "profile layers",
    "edgestudio.bench.throughput:throughput_sweep": "throughput sweep",
    "edgestudio.bench.compare:runtime_agreement": "runtimes agree?",
    "edgestudio.execution.block_server:paired_benchmark": "paired round",
}


def is_housekeeping(spec: dict[str, Any]) -> bool:
    """The app's own work (inspecting the selected model, listing devices): no row in the panel."""
    kind = str(spec.get("kind", ""))
    if kind == "call":
        return str((spec.get("options") or {}).get("function", "")) not in USER_CALLS
    return kind in HIDDEN_KINDS


def job_inputs(spec: dict[str, Any]) -> dict[str, Any] | None:
    """The input specification a job runs on, wherever its kind carries it (None: the job takes no inputs)."""
    opts = spec.get("options") or {}
    for holder in (opts, opts.get("convert"), opts.get("options"), opts.get("kwargs"),
                   (opts.get("kwargs") or {}).get("options")):
        if isinstance(holder, dict) and isinstance(holder.get("inputs"), dict):
            return holder["inputs"]
    inner = (opts.get("kwargs") or {}).get("spec")  # a job run in a Python environment
    return job_inputs(inner) if isinstance(inner, dict) else None


def inputs_text(spec: dict[str, Any] | None) -> str:
    """``x=1x3x48x192, inputs from lines.npz`` (what the job is fed), ``random inputs`` when nothing was given."""
    from edgestudio.core.inputspec import InputSpec

    return InputSpec.from_dict(spec or {}).describe()

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_BOX = set("┏┓┗┛┃━┡┩┣┫┳┻╇╈╋│─┌┐└┘├┤┬┴┼╭╮╰╯║═╔╗╚╝╠╣╦╩╬+|-=")


def _is_table_line(line: str) -> bool:
    """A row or rule of an ASCII/box-drawing table (onnx2tf's and Keras's model summaries, op tables)."""
    s = line.strip()
    if len(s) < 3:
        return False
    if s[0] in "┏┃┡│└┗├╭╰║╔╚╠┌" or (s[0] in "+|" and s[-1] in "+|"):
        return True
    return sum(c in _BOX for c in s) >= 0.6 * len(s)


def summarise_log(lines: list[str]) -> list[str]:
    """A job's log as the panel shows it: terminal colour codes gone, and each run of table lines (onnx2tf's
    model summaries: hundreds of rows of box-drawing characters) folded into one line saying what it was. The raw
    log is one click away (the panel's *Raw log*)."""
    out: list[str] = []
    run: list[str] = []

    def fold() -> None:
        if len(run) < 3:
            out.extend(run)
        else:
            words = next((r.strip(" ┃│|┏┓━") for r in run if any(c.isalpha() for c in r)), "")
            head = " ".join(words.replace("┃", " ").replace("│", " ").replace("|", " ").split())[:70]
            out.append(f"[a table of {len(run)} lines" + (f": {head}" if head else "") + " — tick Raw log to see it]")
        run.clear()

    for raw in lines:
        line = _ANSI.sub("", raw)
        if _is_table_line(line):
            run.append(line)
            continue
        if run:
            fold()
        out.append(line)
    if run:
        fold()
    return out


STATUS_COLORS = {"queued": "#888888", "running": "#2a7ae2", "succeeded": "#2e8b57", "failed": "#c0392b",
                 "cancelled": "#b7950b"}


def kind_text(spec: dict[str, Any]) -> str:
    """What a row's job does: ``convert → OpenVINO IR``, ``optimize int8-static``, ``bench``: three conversions
    of one model are told apart at a glance."""
    kind, opts = str(spec.get("kind", "?")), spec.get("options") or {}
    if kind == "call" and opts.get("function") in USER_CALLS:
        return USER_CALLS[opts["function"]]
    if kind == "convert" and opts.get("to"):
        from edgestudio.core.formats import ModelFormat
        from edgestudio.gui.browser import SHORT_LABELS

        try:
            fmt = ModelFormat(opts["to"])
        except ValueError:
            return f"convert → {opts['to']}"
        return f"convert → {SHORT_LABELS.get(fmt.value, fmt.label)}"
    if kind == "optimize" and opts.get("method"):
        return f"optimize {opts['method']}"
    return kind


class JobsPanel(QWidget):
    cancel_requested = Signal(str)
    fix_requested = Signal(str, str)  # what to fix (wording.Fix.action), the job whose error asks for it

    def __init__(self) -> None:
        super().__init__()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        bar = QHBoxLayout()
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("filter: kind, model or status (e.g. failed)")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self._apply_filter)
        self.clear_button = QPushButton("Clear finished")
        self.clear_button.setToolTip("Remove finished jobs from this list (the workspace keeps their records)")
        self.clear_button.clicked.connect(self.clear_finished)
        bar.addWidget(self.filter, 1)
        bar.addWidget(self.clear_button)
        lay.addLayout(bar)
        split = QSplitter(Qt.Orientation.Horizontal)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Job", "Model", "Status", "Progress", "Elapsed", "", "Where"])
        self.tree.setRootIsDecorated(False)
        self.tree.setColumnWidth(0, 175)
        self.tree.setColumnWidth(1, 170)
        self.tree.setColumnWidth(3, 170)
        self.tree.itemSelectionChanged.connect(self._show_log)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._menu)
        split.addWidget(self.tree)
        side = QWidget()
        side_lay = QVBoxLayout(side)
        side_lay.setContentsMargins(0, 0, 0, 0)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setPlaceholderText("Select a job to see its log.")
        side_lay.addWidget(self.log, 1)
        fixes = QHBoxLayout()
        self.fix_note = QLabel()
        self.fix_note.setWordWrap(True)
        self.fix_button = QPushButton()
        self.fix_button.setObjectName("job_fix")
        self.fix_button.clicked.connect(self._fix_clicked)
        self.fix_button.hide()
        self.fix_note.hide()
        self.raw_log = QCheckBox("Raw log")
        self.raw_log.setToolTip("The log as the job wrote it: tables and colour codes included")
        self.raw_log.toggled.connect(self._show_log)
        fixes.addWidget(self.fix_note, 1)
        fixes.addWidget(self.fix_button)
        fixes.addWidget(self.raw_log)
        side_lay.addLayout(fixes)
        split.addWidget(side)
        split.setSizes([700, 300])
        self._render_pending = False
        lay.addWidget(split)
        self._items: dict[str, QTreeWidgetItem] = {}
        self._bars: dict[str, QProgressBar] = {}
        self._buttons: dict[str, QPushButton] = {}
        self._logs: dict[str, list[str]] = {}
        self._started: dict[str, float] = {}
        self._elapsed: dict[str, float] = {}
        self._last_progress: dict[str, float] = {}
        self._errors: dict[str, str] = {}
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
            spec = rec.spec.to_dict()
            if is_housekeeping(spec):
                continue
            self._item(rec.id, kind_text(spec), rec.spec.model)
            self._set_where(rec.id, spec)  # a restored row says where it ran and on what, as a live one
            self._logs[rec.id] = list(rec.log)
            self.on_finished(rec.id, rec.status.value, rec.error, rec.result, elapsed=rec.elapsed_s)
            if kind_text(spec) == "recipe" and isinstance(rec.result, dict):
                self.add_steps(rec.id, rec.result)

    def on_queued(self, job_id: str, spec: dict[str, Any]) -> None:
        if is_housekeeping(spec):
            return
        self._item(job_id, kind_text(spec), spec.get("model"))
        inputs = self._set_where(job_id, spec)
        if inputs is not None:  # the log says first what the job runs on
            self.on_log(job_id, f"inputs: {inputs}")

    def _set_where(self, job_id: str, spec: dict[str, Any]) -> str | None:
        """The Where column: the runtime and device (a remote one: CPU@agent:pi) and the inputs the job is fed (the
        model's saved input specification). Returns the inputs' text, None for a job that takes none."""
        item = self._items[job_id]
        target = str(spec.get("target") or "")
        device = device_name(spec.get("device"), target) if target.startswith("agent:") else spec.get("device")
        where = "/".join(x for x in (spec.get("runtime"), device) if x) or "this machine"
        if target.startswith("env:"):
            where += f" in environment {target[4:]}"
        inputs = job_inputs(spec)
        text = None if inputs is None else inputs_text(inputs)
        item.setText(6, where + (f" · {text}" if text else ""))
        item.setToolTip(6, where + (f"\ninputs: {text}" if text else ""))
        return text

    def on_started(self, job_id: str) -> None:
        if job_id in self._items:
            self._started[job_id] = time.monotonic()
            self._set_status(job_id, "running")
            self._tick()

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
        if self.selected_job() != job_id:
            return
        if self.raw_log.isChecked():
            self.log.appendPlainText(line)
        elif _is_table_line(_ANSI.sub("", line)) or self._render_pending:  # folded with its table: redrawn at once
            if not self._render_pending:
                self._render_pending = True
                QTimer.singleShot(200, self._show_log)
        else:
            self.log.appendPlainText(_ANSI.sub("", line))

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
        else:  # the error in full: in the status column's tooltip, the log and the context menu, not in the bar
            bar.setFormat(status)
            said = ended_text(status, error)
            item.setText(2, said)
            tip = studio_text(error) if error and status != "cancelled" else said  # the error in full
            item.setToolTip(2, tip)
            item.setToolTip(3, tip)
        if error and status != "cancelled":
            self._errors[job_id] = error
            self._logs.setdefault(job_id, []).append(f"error: {studio_text(error)}")
        elif status == "cancelled":
            self._logs.setdefault(job_id, []).append(ended_text(status, error))
        self._buttons[job_id].setEnabled(False)
        self._buttons[job_id].hide()  # nothing left to cancel
        self._tick()
        self._apply_filter()

    def add_steps(self, job_id: str, result: dict[str, Any]) -> None:
        """A recipe's steps as rows under its own: what each did, its gates' verdict, its time and its artifact."""
        item = self._items.get(job_id)
        if item is None or not result.get("steps"):
            return
        item.takeChildren()
        for r in result["steps"]:
            failed = [f"{g['gate']} {g['got']} (want {g['want']})" for g in r.get("gates", []) if not g["passed"]]
            figures = "; ".join(x for x in ((f"p50 {r['p50_ms']:.3f} ms" if r.get("p50_ms") is not None else ""),
                                            (f"top-1 {r['top1']:.4f}" if r.get("top1") is not None else "")) if x)
            status = ("failed: " + studio_text("; ".join(failed))) if failed else "passed" + (
                f" · {figures}" if figures else "")
            out = r.get("output")
            child = QTreeWidgetItem([f"step {r['step']} {r['kind']}" + (f" ({r['id']})" if r.get("id") else ""),
                                     Path(out).name if out else Path(r.get("model", "")).name, status, "",
                                     f"{r.get('seconds', 0):.1f} s", "", out or r.get("model", "")])
            child.setForeground(2, QColor(STATUS_COLORS["failed" if failed else "succeeded"]))
            child.setToolTip(2, status)
            child.setToolTip(6, out or r.get("model", ""))
            item.addChild(child)
        item.setExpanded(True)
        left = result.get("of", 0) - result.get("completed", 0)
        if not result.get("passed"):
            n = sum(1 for r in result["steps"] if not r.get("passed"))
            item.setText(2, f"succeeded: {n} step{'s' if n != 1 else ''} failed"
                         + (f", {left} not run" if left else ""))
            item.setForeground(2, QColor(STATUS_COLORS["failed"]))

    def clear_finished(self) -> int:
        done = [j for j in self._items if self.status_of(j) in ("succeeded", "failed", "cancelled")]
        for job_id in done:
            item = self._items.pop(job_id)
            self.tree.takeTopLevelItem(self.tree.indexOfTopLevelItem(item))
            for d in (self._bars, self._buttons, self._logs, self._elapsed, self._errors, self._last_progress):
                d.pop(job_id, None)  # type: ignore[attr-defined]
        return len(done)

    def _apply_filter(self, *_: object) -> None:
        text = self.filter.text().strip().lower()
        for item in self._items.values():
            hay = " ".join(item.text(c) for c in range(3)).lower()
            item.setHidden(bool(text) and text not in hay)

    def _menu(self, pos: Any) -> None:
        job_id = self.selected_job()
        if job_id is None:
            return
        menu = QMenu(self)
        running = self._buttons.get(job_id) is not None and self._buttons[job_id].isEnabled()
        cancel = menu.addAction("Cancel")
        cancel.setEnabled(running)
        cancel.triggered.connect(lambda: self.cancel_requested.emit(job_id))
        copy = menu.addAction("Copy the error")
        copy.setEnabled(job_id in self._errors)
        copy.triggered.connect(lambda: QApplication.clipboard().setText(self._errors.get(job_id, "")))
        log = menu.addAction("Copy the log")
        log.triggered.connect(lambda: QApplication.clipboard().setText("\n".join(self._logs.get(job_id, []))))
        menu.addSeparator()
        menu.addAction("Clear finished jobs").triggered.connect(self.clear_finished)
        menu.exec(self.tree.viewport().mapToGlobal(pos))

    def _set_status(self, job_id: str, status: str) -> None:
        item = self._items[job_id]
        item.setText(2, status)
        item.setForeground(2, QColor(STATUS_COLORS.get(status, "#888")))

    def _tick(self) -> None:
        now = time.monotonic()
        running = [j for j in self._started if j in self._items]
        ahead = min(running, key=lambda j: self._started[j], default=None)
        for job_id, item in self._items.items():
            secs = now - self._started[job_id] if job_id in self._started else self._elapsed.get(job_id)
            item.setText(4, f"{secs:.1f} s" if secs is not None else "")
            status = item.text(2)
            if status.startswith("queued"):  # why it waits: the job running ahead of it
                behind = f"queued behind {self._items[ahead].text(0)} {self._items[ahead].text(1)}" if ahead else "queued"
                if status != behind:
                    item.setText(2, behind)
            elif job_id in self._started and secs is not None:
                # a long step with no news (a converter's single call): a heartbeat, so it never looks stuck
                quiet = now - self._last_progress.get(job_id, self._started[job_id])
                bar = self._bars[job_id]
                base = bar.toolTip() or "running"
                if quiet > 5:
                    bar.setFormat(f"{base[:48]} — {secs:.0f} s")

    def selected_job(self) -> str | None:
        item = self.tree.currentItem()
        return str(item.data(0, Qt.ItemDataRole.UserRole)) if item is not None else None

    def _show_log(self, *_: object) -> None:
        self._render_pending = False
        job_id = self.selected_job()
        lines = self._logs.get(job_id or "", [])
        self.log.setPlainText("\n".join(lines if self.raw_log.isChecked() else summarise_log(lines)))
        fix = fix_for(self._errors.get(job_id or ""))
        self.fix_button.setVisible(fix is not None)
        self.fix_note.setVisible(fix is not None)
        if fix is not None:
            self.fix_button.setText(fix.label)
            self.fix_note.setText("This job failed for want of something the studio can set:")

    def _fix_clicked(self) -> None:
        job_id = self.selected_job()
        fix = fix_for(self._errors.get(job_id or ""))
        if job_id is not None and fix is not None:
            self.fix_requested.emit(fix.action, job_id)

    def status_of(self, job_id: str) -> str | None:
        """The row's status word: ``failed: …`` and ``cancelled (by you)`` are failed and cancelled."""
        item = self._items.get(job_id)
        return item.text(2).split(":")[0].split(" (")[0] if item is not None else None

    def error_of(self, job_id: str) -> str | None:
        return self._errors.get(job_id)

    def cancel_button(self, job_id: str) -> QPushButton:
        return self._buttons[job_id]
