"""The model graph in Netron: the netron package serves the model on localhost (offline: its wheel holds
every static file) and QtWebEngine shows it. Without QtWebEngine, a button opens it in the browser."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QStackedLayout, QVBoxLayout, QWidget

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


# A heat overlay on Netron's graph (Netron has no overlay API: its SVG nodes carry ``id="node-name-NAME"``, which
# this script colours, titles and counts). ``data``: {"title", "nodes": {name: {"heat": 0..1, "label"}}}. The
# graph is drawn after the page loads and redrawn on some clicks: the script repaints until the count settles.
_OVERLAY_JS = """
(function (data) {
  const color = (h) => {
    h = Math.max(0, Math.min(1, h));
    const hue = 120 * (1 - h);  // green (0) -> yellow (0.5) -> red (1)
    return `hsl(${hue}, 75%, ${h > 0.5 ? 45 : 40}%)`;
  };
  const paint = () => {
    let painted = 0;
    for (const [name, d] of Object.entries(data.nodes)) {
      const pos = /^#(\d+) /.exec(name);  // a .pte's nodes are unnamed: '#N op' is Netron's N-th node
      const el = document.getElementById('node-name-' + name) || (pos && document.getElementById('node-id-' + pos[1]));
      if (!el) continue;
      painted++;
      const head = el.querySelector('.node-item-type path');
      if (head) head.style.fill = color(d.heat);
      const border = el.querySelector('path.node-border');
      if (border) { border.style.stroke = color(d.heat); border.style.strokeWidth = d.heat >= 0.5 ? '3px' : '2px'; }
      let title = el.querySelector('title.edgestudio');
      if (!title) {
        title = document.createElementNS('http://www.w3.org/2000/svg', 'title');
        title.setAttribute('class', 'edgestudio');
        el.insertBefore(title, el.firstChild);
      }
      title.textContent = name + ': ' + d.label;
    }
    let legend = document.getElementById('edgestudio-legend');
    if (!legend) {
      legend = document.createElement('div');
      legend.id = 'edgestudio-legend';
      legend.style.cssText = 'position:fixed;right:12px;bottom:12px;z-index:9;background:#fff;border:1px solid #bbb;' +
        'padding:6px 10px;font:12px sans-serif;border-radius:4px';
      document.body.appendChild(legend);
    }
    const bar = 'display:inline-block;width:120px;height:10px;vertical-align:middle;margin:0 6px;' +
      'background:linear-gradient(to right,hsl(120,75%,40%),hsl(60,75%,40%),hsl(0,75%,45%))';
    legend.innerHTML = `<b>${data.title}</b><br>${data.low}<span style="${bar}"></span>${data.high}` +
      `<br>${painted} of ${Object.keys(data.nodes).length} layers on this graph`;
    window.__edgestudioOverlay = { painted: painted, total: Object.keys(data.nodes).length };
    return painted;
  };
  let last = -1, stable = 0, tries = 0;
  const tick = () => {
    const n = paint();
    stable = (n === last && n > 0) ? stable + 1 : 0;
    last = n;
    if (++tries < 150 && stable < 3) setTimeout(tick, 200);
  };
  tick();
  if (!window.__edgestudioObserver) {
    window.__edgestudioObserver = new MutationObserver(() => { clearTimeout(window.__edgestudioRepaint);
      window.__edgestudioRepaint = setTimeout(paint, 100); });
    const root = document.getElementById('canvas') || document.body;
    window.__edgestudioObserver.observe(root, { childList: true, subtree: true });
  }
})(__DATA__);
"""


def _software_gl() -> bool:
    """No GPU to draw with (offscreen, or a Linux machine without a render node): Chromium then renders in
    software, where it turns WebGL off."""
    import glob
    import sys

    from PySide6.QtGui import QGuiApplication

    platform = QGuiApplication.platformName() or os.environ.get("QT_QPA_PLATFORM", "")
    return platform in ("offscreen", "minimal") or (sys.platform.startswith("linux")
                                                    and not glob.glob("/dev/dri/renderD*"))


def _webengine() -> Any:
    flags = os.environ.get("QTWEBENGINE_CHROMIUM_FLAGS", "").split()
    # As root, Chromium refuses to start without --no-sandbox (and takes the whole process down).
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--no-sandbox" not in flags:
        flags.append("--no-sandbox")
    # Model Explorer draws with WebGL, which Chromium blocks on its software renderer: with no GPU there is no
    # driver to protect, so the blocklist is ignored (where a GPU is, its own rules stand)
    if _software_gl() and "--ignore-gpu-blocklist" not in flags:
        flags.append("--ignore-gpu-blocklist")
    os.environ["QTWEBENGINE_CHROMIUM_FLAGS"] = " ".join(flags)
    try:
        from PySide6 import QtWebEngineCore, QtWebEngineWidgets
    except ImportError:
        return None
    return QtWebEngineCore, QtWebEngineWidgets


def local_only(core: Any) -> Any:
    """A request interceptor that keeps a page offline: only the local server (localhost, 127.0.0.1) is reached;
    what else the page asks for is blocked and listed in ``blocked``."""

    class LocalOnly(core.QWebEngineUrlRequestInterceptor):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.blocked: list[str] = []

        def interceptRequest(self, info: Any) -> None:  # noqa: N802
            url = info.requestUrl()
            if url.scheme() in ("http", "https", "ws", "wss") and url.host() not in ("localhost", "127.0.0.1"):
                self.blocked.append(url.toString())
                info.block(True)

    return LocalOnly()


class NetronView(QWidget):
    def __init__(self, use_webengine: bool = True) -> None:
        super().__init__()
        self._address: Any = None
        self._path: str | None = None
        self._view: Any = None
        self._interceptor: Any = None
        self._use_webengine = use_webengine
        self.overlay: dict[str, Any] | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.status = QLabel("Select a model to see its graph.")
        self.status.setObjectName("netron_status")
        self.open_button = QPushButton("Open the graph in the web browser")
        self.open_button.clicked.connect(self.open_in_browser)
        self.open_button.setEnabled(False)
        # "give the graph room": the details view connects this to move the graph to a window of its own
        self.detach_button = QPushButton("Open in its own window")
        self.detach_button.setObjectName("netron_detach")
        self.detach_button.setToolTip("Move the graph to a window of its own (it keeps following the selected "
                                      "model); closing that window puts it back here")
        self.detach_button.hide()
        lay.addWidget(self.status)
        row = QHBoxLayout()
        row.addWidget(self.open_button)
        row.addWidget(self.detach_button)
        row.addStretch(1)
        lay.addLayout(row)
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

            self._interceptor = local_only(core)  # Netron offline: no telemetry, no look-ups
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
        if ok and self.overlay:
            self._paint()

    def set_overlay(self, overlay: dict[str, Any] | None) -> None:
        """Paint per-node figures on the graph: ``{"title", "low", "high", "nodes": {node name: {"heat": 0..1,
        "label": text}}}`` (see :func:`edgestudio.bench.layers.graph_heat`). Kept across reloads of the page."""
        self.overlay = overlay
        if self._view is not None and overlay:
            self._paint()

    def _paint(self) -> None:
        import json

        self._view.page().runJavaScript(_OVERLAY_JS.replace("__DATA__", json.dumps(self.overlay)), 0)

    def overlay_count(self, callback: Any) -> None:
        """``callback({"painted", "total"})`` once the page reports it (None without QtWebEngine)."""
        if self._view is None:
            callback(None)
            return
        self._view.page().runJavaScript("JSON.stringify(window.__edgestudioOverlay || null)", 0,
                                        lambda v: callback(__import__("json").loads(v) if v else None))

    def open_in_browser(self) -> None:
        if self.url:
            from edgestudio.gui.paths import show_or_copy

            opened = QDesktopServices.openUrl(QUrl(self.url))
            self.status.setText(show_or_copy(self, self.url, opened))

    def stop(self) -> None:
        if self._address:
            import netron

            try:
                netron.stop(self._address)
            except Exception:
                pass
            self._address = None
