"""The model graph in Netron: the netron package serves the model on localhost (offline: its wheel holds
every static file) and QtWebEngine shows it. Without QtWebEngine, a button opens it in the browser."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QLabel, QPushButton, QStackedLayout, QVBoxLayout, QWidget

# Netron writes tensor shapes between CJK angle brackets (U+3008/3009), which only CJK fonts have: they
# render as boxes on most Linux desktops. Show the mathematical brackets (in DejaVu and most fonts) instead.
_BRACKETS_JS = """
(function () {
  const fix = (root) => {
    if (!root) return;
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    let node;
    while ((node = walker.nextNode())) {
      if (/[\u3008\u3009]/.test(node.nodeValue)) {
        node.nodeValue = node.nodeValue.replace(/\u3008/g, '\u27e8').replace(/\u3009/g, '\u27e9');
      }
    }
  };
  fix(document.body);
  new MutationObserver((mutations) => {
    for (const m of mutations) {
      fix(m.type === 'characterData' ? m.target.parentNode : m.target);
    }
  }).observe(document.body, { childList: true, subtree: true, characterData: true });
})();
"""


def _webengine() -> Any:
    # As root, Chromium refuses to start without --no-sandbox (and takes the whole process down).
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        flags = os.environ.get("QTWEBENGINE_CHROMIUM_FLAGS", "")
        if "--no-sandbox" not in flags:
            os.environ["QTWEBENGINE_CHROMIUM_FLAGS"] = (flags + " --no-sandbox").strip()
    try:
        from PySide6 import QtWebEngineCore, QtWebEngineWidgets
    except ImportError:
        return None
    return QtWebEngineCore, QtWebEngineWidgets


class NetronView(QWidget):
    def __init__(self, use_webengine: bool = True) -> None:
        super().__init__()
        self._address: Any = None
        self._path: str | None = None
        self._view: Any = None
        self._interceptor: Any = None
        self._use_webengine = use_webengine
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.status = QLabel("Select a model to see its graph.")
        self.status.setObjectName("netron_status")
        self.open_button = QPushButton("Open the graph in the web browser")
        self.open_button.clicked.connect(self.open_in_browser)
        self.open_button.setEnabled(False)
        lay.addWidget(self.status)
        lay.addWidget(self.open_button)
        self._stack = QStackedLayout()
        lay.addLayout(self._stack, 1)

    @property
    def url(self) -> str | None:
        if not self._address:
            return None
        host, port = self._address
        return f"http://{host}:{port}/"

    def show_model(self, path: str | Path) -> None:
        import netron

        self.stop()
        p = Path(path)
        target = str(p / "saved_model.pb") if p.is_dir() and (p / "saved_model.pb").exists() else str(p)
        try:
            self._address = netron.start(target, address=("localhost", 0), browse=False)
        except Exception as exc:  # a model netron cannot read: say so, keep the app
            self.status.setText(f"Netron cannot show {p.name}: {' '.join(str(exc).split())[:200]}")
            return
        self._path = target
        self.open_button.setEnabled(True)
        mods = _webengine() if self._use_webengine else None
        if mods is None:
            self.status.setText(f"Graph served at {self.url} (QtWebEngine is not available here).")
            return
        self._show_in_webengine(*mods)

    def _show_in_webengine(self, core: Any, widgets: Any) -> None:
        from PySide6.QtNetwork import QNetworkCookie

        if self._view is None:
            self._view = widgets.QWebEngineView(self)
            self._stack.addWidget(self._view)

            class LocalOnly(core.QWebEngineUrlRequestInterceptor):  # type: ignore[misc,name-defined]
                """Keep Netron offline: no telemetry, no look-ups, only the local server."""

                def interceptRequest(self, info: Any) -> None:  # noqa: N802
                    host = info.requestUrl().host()
                    if info.requestUrl().scheme() in ("http", "https") and host not in ("localhost", "127.0.0.1"):
                        info.block(True)

            self._interceptor = LocalOnly()
            self._view.page().profile().setUrlRequestInterceptor(self._interceptor)
            script = core.QWebEngineScript()
            script.setName("edgestudio-brackets")
            script.setSourceCode(_BRACKETS_JS)
            script.setInjectionPoint(core.QWebEngineScript.InjectionPoint.DocumentReady)
            script.setWorldId(core.QWebEngineScript.ScriptWorldId.MainWorld)
            self._view.page().scripts().insert(script)
            self._view.loadFinished.connect(self._loaded)
        url = QUrl(self.url)
        cookie = QNetworkCookie(b"consent", str(int(time.time() * 1000)).encode())  # skip the consent banner
        cookie.setDomain("localhost")
        cookie.setPath("/")
        self._view.page().profile().cookieStore().setCookie(cookie, url)
        self.status.setText(f"Loading the graph of {Path(self._path or '').name}…")
        self._view.setUrl(url)

    def _loaded(self, ok: bool) -> None:
        name = Path(self._path or "").name
        self.status.setText(f"Graph of {name} (Netron)" if ok else
                            f"The Netron view did not load for {name}; use the button to open it in a browser.")

    def open_in_browser(self) -> None:
        if self.url:
            QDesktopServices.openUrl(QUrl(self.url))

    def stop(self) -> None:
        if self._address:
            import netron

            try:
                netron.stop(self._address)
            except Exception:
                pass
            self._address = None
