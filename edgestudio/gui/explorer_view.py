"""Google's Model Explorer in the studio, beside Netron (which stays the Graph tab): a model, or a variant and its
parent side by side with the per-layer comparison and each one's time per node painted on their nodes. The figures
are a job (:func:`edgestudio.execution.model_explorer.prepare`); the server is a process of the ``model-explorer``
environment; the page is shown by QtWebEngine, or in the system browser where QtWebEngine is not available."""

from __future__ import annotations

import shutil
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMessageBox, QPushButton, QStackedLayout, QVBoxLayout, QWidget

from edgestudio.core.errors import EdgeStudioError
from edgestudio.core.jobs import JobKind, JobSpec
from edgestudio.execution.model_explorer import (
    ENABLE_COMMAND,
    ENV,
    ExplorerServer,
    ExplorerUnavailable,
    check_explorable,
    explorer_python,
    explorer_url,
)
from edgestudio.gui.netron_view import _webengine, local_only

PREPARE = "edgestudio.execution.model_explorer:prepare"
_WEBGL_JS = "(function(){try{const c=document.createElement('canvas');" \
            "return !!(c.getContext('webgl2')||c.getContext('webgl'));}catch(e){return false;}})()"


class ExplorerView(QWidget):
    """Model Explorer's page for a plan: its server is started here and polled until it answers (the window never
    waits); QtWebEngine shows the page, kept to the local server; a button opens it in the system browser."""

    def __init__(self, use_webengine: bool = True) -> None:
        super().__init__()
        self.server: ExplorerServer | None = None
        self.plan: dict[str, Any] | None = None
        self.webgl: bool | None = None
        self._use_webengine = use_webengine
        self._view: Any = None
        self._interceptor: Any = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.status = QLabel("")
        self.status.setObjectName("explorer_status")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.open_button = QPushButton("Open in the web browser")
        self.open_button.setEnabled(False)
        self.open_button.clicked.connect(self.open_in_browser)
        row = QHBoxLayout()
        row.addWidget(self.status, 1)
        row.addWidget(self.open_button)
        lay.addLayout(row)
        self._stack = QStackedLayout()
        lay.addLayout(self._stack, 1)
        self._poll = QTimer(self)
        self._poll.setInterval(200)
        self._poll.timeout.connect(self._check_ready)

    @property
    def url(self) -> str | None:
        """The page's URL once the server answers."""
        if self.server is None or self.plan is None or self.server.ready_after is None:
            return None
        return explorer_url(self.server.base_url, self.plan)

    @property
    def blocked(self) -> list[str]:
        """What the page asked for outside the local server (blocked): nothing, offline."""
        return list(getattr(self._interceptor, "blocked", []))

    def show_plan(self, plan: dict[str, Any], python: str | None = None) -> None:
        """Serve ``plan`` (what :func:`~edgestudio.execution.model_explorer.prepare` returns) and show it when the
        server answers."""
        self.stop()
        self.plan = plan
        try:
            self.server = ExplorerServer(python).start()
        except EdgeStudioError as exc:
            self.status.setText(exc.one_line())
            return
        self.status.setText("Starting Model Explorer…")
        self._poll.start()

    def _check_ready(self) -> None:
        if self.server is None:
            self._poll.stop()
            return
        try:
            ready = self.server.ready()
        except EdgeStudioError as exc:
            self._poll.stop()
            self.status.setText(exc.one_line())
            return
        if not ready:
            if time.monotonic() - self.server.started_at > 120:
                self._poll.stop()
                self.status.setText(f"Model Explorer did not answer within 2 minutes: {self.server.log_tail()}")
                self.stop()
            return
        self._poll.stop()
        self.open_button.setEnabled(True)
        mods = _webengine() if self._use_webengine else None
        names = " and ".join(Path(m).name for m in (self.plan or {}).get("models", []))
        if mods is None:
            self.status.setText(f"Model Explorer serves {names} at {self.server.base_url} (QtWebEngine is not "
                                "available here: open it in the web browser).")
            return
        core, widgets = mods
        if self._view is None:
            self._view = widgets.QWebEngineView(self)
            self._interceptor = local_only(core)
            self._view.page().profile().setUrlRequestInterceptor(self._interceptor)
            self._view.loadFinished.connect(self._loaded)
            self._stack.addWidget(self._view)
        self.status.setText(f"Loading {names} in Model Explorer…")
        self._view.setUrl(QUrl(self.url))

    def _loaded(self, ok: bool) -> None:
        names = " and ".join(Path(m).name for m in (self.plan or {}).get("models", []))
        if not ok:
            self.status.setText(f"The Model Explorer page did not load for {names}: open it in the web browser.")
            return
        self.status.setText(f"{names} in Model Explorer")

        def webgl(value: Any) -> None:  # Model Explorer draws with WebGL: without it the page only says so
            self.webgl = bool(value)
            if not self.webgl:
                self.status.setText("WebGL is not available in the embedded browser, and Model Explorer needs it: "
                                    "open it in the web browser.")

        self._view.page().runJavaScript(_WEBGL_JS, 0, webgl)

    def open_in_browser(self) -> None:
        if self.url:
            from edgestudio.gui.paths import show_or_copy

            opened = QDesktopServices.openUrl(QUrl(self.url))
            self.status.setText(show_or_copy(self, self.url, opened))

    def stop(self) -> None:
        self._poll.stop()
        if self.server is not None:
            self.server.stop()
            self.server = None


class ExplorerWindow(QWidget):
    """A window of its own (two graphs want room): what is compared, the figures' notes, and the page."""

    def __init__(self, parent: QWidget | None, models: list[str], use_webengine: bool = True) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setObjectName("explorer_window")
        self.models = models
        self.folder = tempfile.mkdtemp(prefix="edgestudio-explorer-")
        # removed on close, and also when the window goes without one (its parent window closed first, or the app
        # exited): a window destroyed with its parent gets no closeEvent
        weakref.finalize(self, shutil.rmtree, self.folder, True)
        self.job: str | None = None
        names = [Path(m).name for m in models]
        self.setWindowTitle(("Model Explorer — " + " vs ".join(reversed(names))) + " — EdgeStudio")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.head = QLabel(f"<b>{names[0]}</b>" if len(names) == 1 else
                           f"<b>{names[1]}</b> (right) against its parent <b>{names[0]}</b> (left): each node's cosine "
                           "to its twin, each layer's own error and each node's time (Node data, in the side panel)")
        self.head.setWordWrap(True)
        lay.addWidget(self.head)
        self.view = ExplorerView(use_webengine)
        lay.addWidget(self.view, 1)
        screen = self.screen().availableGeometry() if self.screen() is not None else None
        width, height = (screen.width() - 80, screen.height() - 80) if screen is not None else (1400, 900)
        self.resize(min(1600, width), min(950, height))

    def figures_ready(self, plan: dict[str, Any]) -> None:
        notes = list(plan.get("notes") or [])
        debug = plan.get("debug") or {}
        if debug:
            first = debug.get("first_diverging")
            notes.insert(0, f"layers: {debug.get('verdict')} ({debug.get('matched')} matched"
                            + (f"; first diverging: {first}" if first else "") + ")")
        if notes:
            self.head.setText(self.head.text() + "<br><small>" + "<br>".join(notes) + "</small>")
        self.view.show_plan(plan)

    def closeEvent(self, event: Any) -> None:  # noqa: N802
        self.view.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
        super().closeEvent(event)


def open_in_model_explorer(window: Any, model_id: int, with_parent: bool = False) -> ExplorerWindow | None:
    """The studio's "Open in Model Explorer" (``with_parent``: "Compare with parent in Model Explorer", with the
    per-layer figures). Says what is missing instead when it cannot: Model Explorer not installed (the command that
    installs it), a format it does not read, no parent."""
    entry = window.workspace.model(model_id)
    models = [entry.path]
    if with_parent:
        if entry.parent_id is None:
            return _tell(window, f"{entry.name} has no parent in the workspace: pick a converted or optimized variant "
                                 "to compare it with the model it was made from.")
        models.insert(0, window.workspace.model(entry.parent_id).path)
    try:
        explorer_python()
        for m in models:
            check_explorable(m)
    except ExplorerUnavailable as exc:
        return _tell(window, f"{exc.cause}. Install it once (about 800 MB) with\n\n    {ENABLE_COMMAND}\n\n"
                             f"or in File ▸ Python environments… (name: {ENV}, no requirements). Netron (the Graph "
                             "tab) needs nothing.", offer_envs=True)
    except EdgeStudioError as exc:
        return _tell(window, exc.one_line())
    win = ExplorerWindow(window, models, getattr(window, "use_webengine", True))
    win.show()
    kwargs: dict[str, Any] = {"models": models, "folder": win.folder}
    if with_parent:  # the figures take a few seconds (both models run): a job, as the layers dialog's
        kwargs.update(debug=True, profile=True, inputs=window.inputs_for(model_id) or None)
        win.view.status.setText("Comparing the models layer by layer and profiling them…")
    else:
        win.view.status.setText("Reading the graph…")
    win.job = window.bridge.submit(JobSpec(JobKind.CALL, model=entry.path, options={"function": PREPARE,
                                                                                    "kwargs": kwargs}))

    def finished(job: str, status: str, error: Any, result: Any) -> None:
        if job != win.job or window.bridge.closed:
            return
        window.bridge.finished.disconnect(finished)
        if status != "succeeded":
            from edgestudio.gui.wording import ended_html

            win.view.status.setText(ended_html(status, error))
            return
        win.figures_ready(result)

    window.bridge.finished.connect(finished)
    window.explorer_window = win
    return win


def _tell(window: Any, text: str, offer_envs: bool = False) -> None:
    """A message that does not block (the window's event loop goes on), kept as ``window.explorer_message``."""
    box = QMessageBox(QMessageBox.Icon.Information, "Model Explorer", text, QMessageBox.StandardButton.Close, window)
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if offer_envs:
        envs = box.addButton("Python environments…", QMessageBox.ButtonRole.ActionRole)

        def open_envs() -> None:
            dialog = window.environments_dialog()
            if dialog is not None and hasattr(dialog, "name"):
                dialog.name.setText(ENV)

        envs.clicked.connect(open_envs)
    box.setModal(False)
    box.show()
    window.explorer_message = box
    window.statusBar().showMessage(text.splitlines()[0], 15000)
    return None
