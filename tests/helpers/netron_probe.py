"""Open a model in the embedded Netron view (QtWebEngine, offscreen) and report what the page shows."""

from __future__ import annotations

import json
import os
import sys
import time

os.environ["QT_QPA_PLATFORM"] = "offscreen"


def main(model: str, shot: str | None) -> None:
    from edgestudio.gui.netron_view import _webengine

    _webengine()  # --no-sandbox as root, before Qt starts
    from PySide6.QtWidgets import QApplication

    app = QApplication([])
    from edgestudio.gui.netron_view import NetronView

    view = NetronView(True)
    view.resize(1000, 700)
    view.show()
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
    if shot:
        view.grab().save(shot)
    page = texts[-1] if texts else ""
    print(json.dumps({"status": view.status.text(), "url": view.url, "has_conv": "Conv" in page,
                      "cjk_brackets": "\u3008" in page, "consent_banner": "uses cookies" in page}), flush=True)
    view.stop()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
