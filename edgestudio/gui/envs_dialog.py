"""Python environments: list, create from pinned requirements, check, remove, and benchmark the selected model in
one. Every action is a job in the pool (creating one runs pip for a while), so the window never waits."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from edgestudio.core.jobs import JobKind, JobSpec

ENVS = "edgestudio.execution.envs:"


class EnvironmentsDialog(QDialog):
    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.bridge = window.bridge
        self.setWindowTitle("Python environments")
        self.resize(760, 460)
        lay = QVBoxLayout(self)
        intro = QLabel("A job can run in a Python environment of its own: its own packages and pins, isolated "
                       "from the studio's. Create one from pinned requirements (pip, from the package registry).")
        intro.setWordWrap(True)
        lay.addWidget(intro)
        self.table = QTableWidget(0, 4)
        self.table.setObjectName("envs_table")
        self.table.setHorizontalHeaderLabels(["Environment", "Health", "Size", "Requirements"])
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        lay.addWidget(self.table, 1)
        row = QHBoxLayout()
        self.bench_button = QPushButton("Benchmark the selected model here")
        self.bench_button.setObjectName("envs_bench")
        self.bench_button.clicked.connect(self.benchmark_selected)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove_selected)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        for b in (self.bench_button, self.remove_button, refresh):
            row.addWidget(b)
        row.addStretch(1)
        lay.addLayout(row)
        form = QFormLayout()
        self.name = QLineEdit()
        self.name.setObjectName("envs_name")
        self.name.setPlaceholderText("ortonly")
        self.requirements = QLineEdit()
        self.requirements.setObjectName("envs_requirements")
        self.requirements.setPlaceholderText("onnxruntime==1.32.0 numpy==2.4.6")
        form.addRow("new environment", self.name)
        form.addRow("requirements", self.requirements)
        lay.addLayout(form)
        create_row = QHBoxLayout()
        self.create_button = QPushButton("Create")
        self.create_button.setObjectName("envs_create")
        self.create_button.clicked.connect(self.create)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setVisible(False)
        create_row.addWidget(self.create_button)
        create_row.addWidget(self.progress, 1)
        lay.addLayout(create_row)
        self.status = QLabel()
        self.status.setObjectName("envs_status")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        self.envs: list[dict[str, Any]] = []
        self._jobs: dict[str, str] = {}  # job id -> what it does (list, create, remove, bench)
        self.bridge.progress.connect(self._progress)
        self.bridge.finished.connect(self._finished)
        self.refresh()

    # ------------------------------------------------------------------------------------------ actions
    def _call(self, what: str, function: str, **kwargs: Any) -> str:
        job = self.bridge.submit(JobSpec(JobKind.CALL, quick=what != "create",  # a listing need not wait
                                         options={"function": ENVS + function, "kwargs": kwargs}))
        self._jobs[job] = what
        return job

    def refresh(self) -> str:
        return self._call("list", "list_env_dicts")

    def selected(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            return self.envs[rows[0].row()]["name"]
        return self.envs[0]["name"] if len(self.envs) == 1 else None

    def create(self) -> str | None:
        name, reqs = self.name.text().strip(), self.requirements.text().split()
        if not name:
            self.status.setText("Give the environment a name.")
            return None
        self.progress.setVisible(True)
        self.progress.setValue(0)
        self.create_button.setEnabled(False)
        self.status.setText(f"Creating {name} (pip install {' '.join(reqs)})…")
        return self._call("create", "create_env_job", name=name, requirements=reqs)

    def remove_selected(self, confirm: bool = True) -> str | None:
        name = self.selected()
        if name is None:
            return None
        if confirm and QMessageBox.question(self, "Remove", f"Remove the environment {name}?") \
                != QMessageBox.StandardButton.Yes:
            return None
        return self._call("remove", "remove_env", name=name)

    def benchmark_selected(self) -> str | None:
        name, model_id = self.selected(), self.window.browser.current_id()
        if name is None or model_id is None:
            self.status.setText("Select an environment here and a model in the browser.")
            return None
        job = self.window.benchmark(model_id, env=name)
        self.status.setText(f"Benchmarking in {name} (see the live chart)…")
        self._jobs[job] = "bench"
        return job

    # --------------------------------------------------------------------------------------------- events
    def _progress(self, job: str, fraction: float, message: str) -> None:
        if self._jobs.get(job) == "create":
            self.progress.setValue(int(fraction * 1000))
            self.progress.setFormat(message[:80])

    def _finished(self, job: str, status: str, error: Any, result: Any) -> None:
        what = self._jobs.pop(job, None)
        if what is None:
            return
        if what == "list" and status == "succeeded":
            self.envs = list((result or {}).get("value") or [])
            self.table.setRowCount(len(self.envs))
            for r, e in enumerate(self.envs):
                health = "ok" if e.get("healthy") else ("broken: " + e.get("health", "")) if e.get("healthy") is False \
                    else "?"
                for c, v in enumerate([e["name"], health, f"{e.get('size_bytes', 0) / 1e6:.0f} MB",
                                       " ".join(e.get("requirements", []))]):
                    self.table.setItem(r, c, QTableWidgetItem(str(v)))
            return
        if what == "create":
            self.progress.setVisible(False)
            self.create_button.setEnabled(True)
        if what == "bench" and status == "succeeded":
            from edgestudio.jobs.results import ResultError, parse_result

            try:
                typed = parse_result(JobKind.BENCH, result or {})  # the BenchResult and where it ran
            except ResultError as exc:
                self.status.setText(f"bench: done, but its figures could not be read: {exc}")
            else:
                where = typed.envelope
                self.status.setText(f"In {where.env}: p50 {typed.body.latency_ms.p50:.3f} ms "
                                    f"({(where.executed_by or {}).get('python')})")
        elif status == "succeeded":
            self.status.setText(f"{what}: done")
        else:
            self.status.setText(f"<span style='color:#c0392b'>{what} {status}: {error}</span>")
        if what in ("create", "remove"):
            self.refresh()
