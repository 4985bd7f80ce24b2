"""Show a Model Explorer plan in the studio's window (QtWebEngine, offscreen) and report what the page shows:
which model each pane holds (from the page's own URL state), the node-data runs it loaded, whether WebGL runs, and
every request it made outside the local server (blocked)."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.parse

os.environ["QT_QPA_PLATFORM"] = "offscreen"


def main(plan_file: str, shot: str | None) -> None:
    from edgestudio.gui.netron_view import _webengine

    _webengine()  # --no-sandbox as root, WebGL in software: before Qt starts
    from PySide6.QtWidgets import QApplication

    app = QApplication([])
    from edgestudio.gui.explorer_view import ExplorerWindow

    plan = json.loads(open(plan_file, encoding="utf-8").read())
    window = ExplorerWindow(None, plan["models"], True)  # as the studio opens it, once its job has made the plan
    window.resize(1600, 950)
    window.show()
    window.figures_ready(plan)
    view = window.view

    def pump(seconds: float) -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            app.processEvents()
            time.sleep(0.02)

    def js(expr: str) -> object:
        got: list[object] = []
        view._view.page().runJavaScript(expr, 0, got.append)
        for _ in range(200):
            pump(0.02)
            if got:
                break
        return got[0] if got else None

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not view.status.text().endswith(("in Model Explorer", "web browser.")):
        pump(0.05)
    runs = [os.path.basename(d["path"]) for d in plan.get("node_data", [])]
    text = ""
    while time.monotonic() < deadline and view._view is not None:  # the graphs and their node data are drawn
        text = str(js("document.body ? document.body.innerText : ''") or "")
        if all(x in text for x in [*runs, *plan["labels"]]) and (not runs or "Node data" in text):
            break
        pump(0.25)
    pump(2.0)  # the last frames of the WebGL canvas
    href = str(js("window.location.href") or "")
    state = json.loads(urllib.parse.parse_qs(urllib.parse.urlparse(href).query).get("data", ["{}"])[0])
    panes = [(p.get("selectedCollectionLabel"), p.get("selectedGraphId"))
             for p in (state.get("uiState") or {}).get("paneStates", [])]
    if shot:
        window.grab().save(shot)
    print(json.dumps({"status": view.status.text(), "url": view.url, "webgl": view.webgl, "panes": panes,
                      "runs_shown": [r for r in runs if r in text], "blocked": view.blocked,
                      "webgl_message": "WebGL is currently unavailable" in text}), flush=True)
    window.close()  # stops the server and removes the window's folder (os._exit runs no clean-up)
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None)
