"""Open a model in the embedded Netron view (QtWebEngine, offscreen) and report what the page shows."""

from __future__ import annotations

import json
import os
import sys
import time

os.environ["QT_QPA_PLATFORM"] = "offscreen"


def main(model: str, shot: str | None, overlay: str | None = None) -> None:
    from edgestudio.gui.netron_view import _webengine

    _webengine()  # --no-sandbox as root, before Qt starts
    from PySide6.QtWidgets import QApplication

    app = QApplication([])
    from edgestudio.gui.netron_view import NetronView

    view = NetronView(True)
    view.resize(1000, 700)
    view.show()
    if overlay:
        view.set_overlay(json.loads(open(overlay).read()))
    view.show_model(model)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not view.status.text().startswith(("Graph of", "The Netron view did not")):
        app.processEvents()
        time.sleep(0.05)
    texts: list[str] = []
    for _ in range(100):  # the graph is drawn after the page loads: wait for the node labels
        view._view.page().runJavaScript("document.body ? document.body.innerText : ''", 0, texts.append)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.1:
            app.processEvents()
        if texts and "Conv" in texts[-1]:
            break
    painted: list = []
    fills: list = []
    if overlay:  # the overlay settles once the graph is drawn: wait for its count and read one node's colour
        first = next(iter(json.loads(open(overlay).read())["nodes"]))
        for _ in range(100):
            view.overlay_count(painted.append)
            view._view.page().runJavaScript(
                "(function(){const e=document.getElementById(%s);const p=e&&e.querySelector('.node-item-type path');"
                "return p ? p.style.fill : ''})()" % json.dumps("node-name-" + first), 0, fills.append)
            t0 = time.monotonic()
            while time.monotonic() - t0 < 0.15:
                app.processEvents()
            if painted and painted[-1] and painted[-1]["painted"] and fills and fills[-1]:
                break
    if shot:
        view.grab().save(shot)
    page = texts[-1] if texts else ""
    print(json.dumps({"status": view.status.text(), "url": view.url, "has_conv": "Conv" in page,
                      "cjk_brackets": "\u3008" in page, "consent_banner": "uses cookies" in page,
                      "overlay": painted[-1] if painted else None, "fill": fills[-1] if fills else None}), flush=True)
    view.stop()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None,
         sys.argv[3] if len(sys.argv) > 3 else None)
