"""QtWebEngine as a browser for the web runtimes, in a process of its own: ``python -m edgestudio.gui.webengine_host``.

The fallback when no Chromium or Chrome is installed (QtWebEngine ships with PySide6, so the studio always has
one). It speaks a small JSON-lines protocol on stdin/stdout that :class:`edgestudio.backends.browser.QtWebEngineBrowser`
drives exactly like the DevTools driver of a real Chromium:

- in: ``{"id": n, "op": "navigate", "url": ...}``, ``{"id": n, "op": "eval", "expr": ...}``, ``{"op": "close"}``
- out: ``{"id": n, "result": ...}`` or ``{"id": n, "error": "..."}``; ``{"event": "console", "text": ...}`` for each
  console message of the page (latency samples travel that way); ``{"hello": {"version": ...}}`` first.

Only this module (under ``gui/``) imports Qt; the backends start it as a process, so a crash of the page or of
Chromium inside Qt is a failed job, never a crashed app.
"""

from __future__ import annotations

import json
import os
import sys
import threading


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    flags = os.environ.get("QTWEBENGINE_CHROMIUM_FLAGS", "")
    for flag in ("--no-sandbox", "--disable-gpu"):  # root needs the first; headless has no GPU
        if flag not in flags:
            flags = f"{flags} {flag}".strip()
    os.environ["QTWEBENGINE_CHROMIUM_FLAGS"] = flags
    protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # Chromium's own prints must not corrupt the protocol

    from PySide6.QtCore import QObject, QTimer, QUrl, Signal
    from PySide6.QtWebEngineCore import (
        QWebEnginePage,
        QWebEngineProfile,
        qWebEngineChromiumVersion,
        qWebEngineVersion,
    )
    from PySide6.QtWidgets import QApplication

    lock = threading.Lock()

    def send(obj: dict) -> None:
        with lock:
            protocol.write(json.dumps(obj) + "\n")

    class Page(QWebEnginePage):
        def javaScriptConsoleMessage(self, level, message, line, source):  # noqa: N802, ANN001
            send({"event": "console", "text": message})

    class Inbox(QObject):
        got = Signal(str)

    app = QApplication(sys.argv[:1])
    profile = QWebEngineProfile()  # off the record; outlives the page (deleting it first crashes QtWebEngine)
    page = Page(profile)
    inbox = Inbox()
    pending: dict[int, tuple[int, QTimer]] = {}

    def finish(req_id: int, reply: dict) -> None:
        send({"id": req_id, **reply})

    def evaluate(req_id: int, expr: str) -> None:
        # runJavaScript does not await promises: the page stores the settled value, which is polled
        slot = f"__es_r{req_id}"
        page.runJavaScript(f"window.{slot} = undefined; Promise.resolve().then(() => ({expr}))"
                           f".then(v => {{ window.{slot} = {{ok: true, v: v === undefined ? null : v}}; }},"
                           f" e => {{ window.{slot} = {{ok: false, e: String(e && e.stack || e)}}; }}); 0")
        timer = QTimer()
        timer.setInterval(10)

        def poll() -> None:
            def got(value: object) -> None:
                if not isinstance(value, str) or not value or req_id not in pending:
                    return  # not settled yet (Qt hands a JS null over as an empty value)
                pending.pop(req_id)[1].stop()
                try:
                    d = json.loads(value)
                except ValueError:
                    sys.stderr.write(f"bad value {value[:200]!r}\n")
                    d = {"ok": False, "e": "the page's answer was not JSON"}
                finish(req_id, {"result": d.get("v")} if d.get("ok") else {"error": d.get("e", "error")})
                page.runJavaScript(f"delete window.{slot}; 0")

            page.runJavaScript(f"(() => {{ if (window.{slot} === undefined) return ''; try {{ return "
                               f"JSON.stringify(window.{slot}); }} catch (e) {{ return JSON.stringify("
                               f"{{ok: false, e: 'the answer cannot be sent: ' + e}}); }} }})()", 0, got)

        timer.timeout.connect(poll)
        pending[req_id] = (req_id, timer)
        timer.start()

    def on_line(line: str) -> None:
        try:
            msg = json.loads(line)
        except ValueError:
            send({"error": f"not a message: {line[:80]!r}"})
            return
        op, req_id = msg.get("op"), int(msg.get("id", 0))
        if op == "close":
            app.quit()
        elif op == "navigate":
            def loaded(ok: bool) -> None:
                page.loadFinished.disconnect(loaded)
                finish(req_id, {"result": None} if ok else {"error": f"could not load {msg['url']}"})

            page.loadFinished.connect(loaded)
            page.load(QUrl(msg["url"]))
        elif op == "eval":
            evaluate(req_id, str(msg["expr"]))
        else:
            finish(req_id, {"error": f"unknown op {op!r}"})

    def crashed(status: object, code: int) -> None:  # the renderer died: every pending call fails, then we exit
        for req_id, (_, timer) in list(pending.items()):
            timer.stop()
            finish(req_id, {"error": f"the page's renderer process ended ({getattr(status, 'name', status)}, "
                                     f"exit code {code})"})
        pending.clear()
        app.quit()

    page.renderProcessTerminated.connect(crashed)
    inbox.got.connect(on_line)  # queued: lines arrive on the reader thread, are handled on Qt's

    def read_stdin() -> None:
        for line in sys.stdin:
            if line.strip():
                inbox.got.emit(line)
        inbox.got.emit('{"op": "close"}')  # the driver went away

    threading.Thread(target=read_stdin, daemon=True).start()
    send({"hello": {"version": f"QtWebEngine {qWebEngineVersion()} (Chromium {qWebEngineChromiumVersion()})"}})
    app.exec()
    protocol.flush()
    os._exit(0)  # no teardown: QtWebEngine's profile/page destruction order at exit is fragile and not needed


if __name__ == "__main__":
    raise SystemExit(main())
