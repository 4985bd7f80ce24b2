"""The studio with the real embedded Netron view: the graph moved to a window of its own (View ▸ Graph in its own
window), follows the selected model there, and goes back to its tab; reports what the page showed each time."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ["QT_QPA_PLATFORM"] = "offscreen"


def main(models: list[str], shot: str | None) -> None:
    from edgestudio.gui.netron_view import _webengine

    _webengine()  # --no-sandbox as root, before Qt starts
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    app = QApplication([])
    from edgestudio.core.workspace import Workspace
    from edgestudio.gui.main_window import MainWindow

    tmp = Path(tempfile.mkdtemp(prefix="edgestudio-netron-"))
    ws = Workspace(tmp / "ws")
    win = MainWindow(ws, use_webengine=True, settings=QSettings(str(tmp / "s.ini"), QSettings.Format.IniFormat))
    win.resize(1300, 800)
    win.show()
    ids = win.import_paths([Path(m) for m in models])
    graph = win.details.graph

    def pump(seconds: float) -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            app.processEvents()
            time.sleep(0.02)

    def page_shows(name: str, op: str = "Conv") -> bool:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and graph.status.text() != f"Graph of {name} (Netron)":
            pump(0.05)
        texts: list[str] = []
        for _ in range(100):
            graph._view.page().runJavaScript("document.body ? document.body.innerText : ''", 0, texts.append)
            pump(0.1)
            if texts and op in texts[-1]:
                return True
        return False

    report: dict = {}
    win.browser.select(ids[0])
    win.actions_["graph_window"].trigger()
    gw = win.details.graph_window
    report["detached"] = gw is not None and gw.isVisible() and graph.window() is gw
    report["first"] = page_shows(Path(models[0]).name)
    report["size"] = [gw.width(), gw.height()] if gw is not None else None
    if shot and gw is not None:
        pump(2.0)  # the page's last frame (the splash fades out after the graph is in the DOM)
        gw.grab().save(shot)
    win.browser.select(ids[1])  # the detached graph follows the selection
    report["second"] = page_shows(Path(models[1]).name)
    report["title"] = gw.windowTitle() if gw is not None else None
    win.actions_["graph_window"].trigger()  # and goes back to its tab
    pump(0.5)
    report["attached"] = win.details.graph_window is None and win.details.tabs.indexOf(graph) >= 0
    win.details.tabs.setCurrentWidget(graph)
    win.browser.select(ids[0])
    report["back"] = page_shows(Path(models[0]).name)
    print(json.dumps(report), flush=True)
    win.shutdown()
    ws.close()
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)  # nothing left in /tmp (os._exit runs no clean-up)
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:3], sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] else None)
