"""Remote devices: add an agent (host, port, token), see whether each answers and what it is (CPU, cores, memory,
runtimes, temperature), remove one. Every network call is a job in the pool, so the window never waits on a slow
or dead device; once a device is added its runtimes appear wherever local ones do (the comparison's list)."""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from edgestudio.core.jobs import JobKind, JobSpec

REMOTE = "edgestudio.execution.remote:"


def facts_text(f: dict[str, Any]) -> str:
    if not f:
        return ""
    mem = (f.get("memory_bytes") or 0) / 2**30
    runtimes = ", ".join(f"{k} {v}" for k, v in (f.get("runtimes") or {}).items() if k != "numpy")
    temp = "".join(f", {v:.0f} °C" for v in list((f.get("temperature_c") or {}).values())[:1])
    return f"{f.get('cpu', '?')}, {f.get('cores', '?')} cores, {mem:.1f} GiB, {f.get('machine', '')}{temp}; {runtimes}"


class DevicesPanel(QWidget):
    changed = Signal()  # a device was added or removed: the studio lists devices again

    def __init__(self, bridge: Any) -> None:
        super().__init__()
        self.bridge = bridge
        self._jobs: dict[str, str] = {}  # job -> what it does (add, health, remove)
        lay = QVBoxLayout(self)
        intro = QLabel("Run benchmarks on an edge device: start <code>edgestudio agent serve</code> there (it prints "
                       "a token once), then add it here. Its runtimes join the local ones in comparisons.")
        intro.setWordWrap(True)
        lay.addWidget(intro)
        form = QFormLayout()
        self.name = QLineEdit()
        self.name.setPlaceholderText("pi")
        self.host = QLineEdit()
        self.host.setPlaceholderText("192.168.1.20 (or 127.0.0.1 through an SSH tunnel)")
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(8765)
        self.token = QLineEdit()
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setPlaceholderText("the token the agent printed at its first start")
        for label, w in (("Name", self.name), ("Host", self.host), ("Port", self.port), ("Token", self.token)):
            form.addRow(label, w)
        lay.addLayout(form)
        row = QHBoxLayout()
        self.add_button = QPushButton("Add device")
        self.add_button.clicked.connect(self.add)
        self.check_button = QPushButton("Check all")
        self.check_button.clicked.connect(self.refresh)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove_selected)
        for b in (self.add_button, self.check_button, self.remove_button):
            row.addWidget(b)
        row.addStretch(1)
        lay.addLayout(row)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Device", "Address", "State", "Facts"])
        self.table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        lay.addWidget(self.table, 1)
        # what this installation cannot run yet, and the command that adds it (an environment, a package, a browser)
        self.more = QLabel("")
        self.more.setWordWrap(True)
        self.more.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.more)
        bridge.finished.connect(self._finished)
        self.refresh()
        self._call("missing", "edgestudio.execution.envs:runtimes_to_enable")  # once: it imports every runtime

    def _call(self, what: str, function: str, **kwargs: Any) -> str:
        job = self.bridge.submit(JobSpec(JobKind.CALL, quick=True,  # a few network calls: never behind a converter
                                         options={"function": function if ":" in function else REMOTE + function,
                                                  "kwargs": kwargs}))
        self._jobs[job] = what
        return job

    def add(self) -> str | None:
        name, host, token = self.name.text().strip(), self.host.text().strip(), self.token.text().strip()
        if not (name and host and token):
            self.status.setText("Give the device a name, its host and the agent's token.")
            return None
        self.status.setText(f"Connecting to {host}:{self.port.value()}…")
        self.add_button.setEnabled(False)
        return self._call("add", "add_device", name=name, host=host, port=self.port.value(), token=token)

    def refresh(self) -> str:
        return self._call("health", "health_dicts")

    def remove_selected(self) -> str | None:
        row = self.table.currentRow()
        if row < 0:
            return None
        return self._call("remove", "remove_device", name=self.table.item(row, 0).text())

    def _finished(self, job: str, status: str, error: Any, result: Any) -> None:
        what = self._jobs.pop(job, None)
        if what is None or self.bridge.closed:
            return
        ok = status == "succeeded"
        if what == "add":
            self.add_button.setEnabled(True)
            if ok:
                self.status.setText(f"Added {result['name']}: {facts_text(result.get('facts') or {})}")
                self.token.clear()
                self.changed.emit()
                self.refresh()
            else:
                self.status.setText(f"Not added: {error}")
        elif what == "remove":
            self.changed.emit()
            self.refresh()
        elif what == "health" and ok:
            self.show_health(result["value"])
        elif what == "missing" and ok:
            self.show_missing(result["value"])

    def show_missing(self, rows: list[dict[str, Any]]) -> None:
        """The runtimes not usable here, each with the command that enables it."""
        if not rows:
            self.more.setText("")
            return
        items = "".join(f"<li><b>{html.escape(r['label'])}</b>: <code>{html.escape(r['enable'])}</code>"
                        f"<br><small>{html.escape('; '.join(r['needs']))}</small></li>" for r in rows)
        self.more.setText("<p>Not enabled on this machine yet (environments: File &gt; Python environments…):</p>"
                          f"<ul>{items}</ul>")

    def show_health(self, rows: list[dict[str, Any]]) -> None:
        self.table.setRowCount(len(rows))
        for i, d in enumerate(rows):
            state = f"online, {d['rtt_ms']} ms" if d["online"] else f"offline: {d['error']}"
            for j, text in enumerate((d["name"], f"{d['host']}:{d['port']}", state, facts_text(d["facts"]))):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                self.table.setItem(i, j, item)
        self.table.resizeColumnsToContents()
