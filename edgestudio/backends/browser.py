"""A real browser as a place models run: a loopback server with the headers wasm threads need, and a headless
Chromium driven over the DevTools protocol on a pipe (standard library only: no websocket package, no Node).

The page (``web/bench.html``) loads a browser runtime (onnxruntime-web, vendored from npm at setup: never a CDN),
runs the model, and reports each latency measured *in the page* with ``performance.now()`` (5 µs resolution in a
cross-origin-isolated page) as a console message, which arrives here as a DevTools event: latencies stream live.
Without ``Cross-Origin-Opener-Policy``/``Cross-Origin-Embedder-Policy`` wasm threads silently drop to one, so the
server always sends them and the page reports ``crossOriginIsolated``. The browser is a process of its own: if it
crashes the job fails with the reason; it never takes the app down.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgestudio.core.errors import EdgeStudioError, RuntimeUnavailableError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
MIME = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm", ".html": "text/html",
        ".json": "application/json", ".onnx": "application/octet-stream", ".ort": "application/octet-stream",
        ".bin": "application/octet-stream"}


class BrowserError(EdgeStudioError):
    """The browser could not be started, crashed, or the page failed."""


def web_root() -> Path:
    """The folder with the page and the vendored runtimes (``web/`` in the source tree; EDGESTUDIO_WEB moves it)."""
    override = os.environ.get("EDGESTUDIO_WEB")
    return Path(override) if override else Path(__file__).resolve().parents[2] / "web"


RUNTIME_DIRS = {"ort": "onnxruntime-web/dist", "tfjs-core": "@tensorflow/tfjs-core/dist",
                "tfjs-cpu": "@tensorflow/tfjs-backend-cpu/dist", "tfjs-converter": "@tensorflow/tfjs-converter/dist",
                "tfjs-wasm": "@tensorflow/tfjs-backend-wasm/dist"}


#: the files of each runtime that pages load (web/bench.html, packaging/web.py): what the standalone bundle carries
RUNTIME_FILES = {"ort": ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"),
                 "tfjs-core": ("tf-core.min.js",), "tfjs-cpu": ("tf-backend-cpu.min.js",),
                 "tfjs-converter": ("tf-converter.min.js",),
                 "tfjs-wasm": ("tf-backend-wasm.min.js", "tfjs-backend-wasm.wasm", "tfjs-backend-wasm-simd.wasm",
                               "tfjs-backend-wasm-threaded-simd.wasm")}


def runtime_files(kind: str) -> Path:
    """Where a browser runtime's files are (``ort``: onnxruntime-web; ``tfjs-*``: TF.js core and backends)."""
    folder = web_root() / "node_modules" / RUNTIME_DIRS[kind]
    if not folder.is_dir():
        raise RuntimeUnavailableError(None, f"the browser runtime files are not installed ({folder})",
                                      hint="make setup runs `npm ci` in web/")
    return folder


def find_browser() -> tuple[str, str] | None:
    """(path, version) of a Chromium-family browser on this machine, or None (asked once per process: runtime
    availability checks call this often, the GUI among them)."""
    return _find_browser(os.environ.get("EDGESTUDIO_BROWSER"))


@functools.lru_cache(maxsize=4)
def _find_browser(override: str | None) -> tuple[str, str] | None:
    for name in ([override] if override else []) + list(BROWSERS):
        path = shutil.which(name) if name else None
        if path:
            try:
                version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
            except (OSError, subprocess.TimeoutExpired):
                continue
            return path, version
    return None


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, Path] = {}

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        for prefix, folder in sorted(self.routes.items(), key=lambda kv: -len(kv[0])):
            if path.startswith(prefix):
                rel = path[len(prefix):].lstrip("/")
                target = (folder / rel).resolve() if folder.is_dir() else folder
                if folder.is_dir() and folder.resolve() not in target.parents and target != folder.resolve():
                    break  # never outside the folder
                if target.is_file():
                    data = target.read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Type", MIME.get(target.suffix, "application/octet-stream"))
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("Cross-Origin-Opener-Policy", "same-origin")
                    self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
                    self.send_header("Cross-Origin-Resource-Policy", "same-origin")
                    self.send_header("Cache-Control", "no-store")
                    self.end_headers()
                    self.wfile.write(data)
                    return
                break
        self.send_error(404)


class WebServer:
    """A loopback HTTP server on a random port serving ``routes`` (URL prefix -> folder or file)."""

    def __init__(self, routes: dict[str, Path]) -> None:
        handler = type("Handler", (_Handler,), {"routes": dict(routes)})
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="edgestudio-web", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for the loop: never call it on a stopped thread
            self.httpd.shutdown()
        self.httpd.server_close()


def qtwebengine_available() -> bool:
    """Whether PySide6's QtWebEngine is installed (checked without importing Qt)."""
    import importlib.util

    try:
        return importlib.util.find_spec("PySide6.QtWebEngineCore") is not None
    except (ImportError, ValueError):
        return False


BROWSER_KINDS = ("chromium", "qtwebengine")


def available_browsers() -> list[str]:
    """The browser kinds this machine can run pages in, the preferred first."""
    return [k for k, ok in (("chromium", find_browser() is not None), ("qtwebengine", qtwebengine_available())) if ok]


def open_browser(kind: str | None = None) -> Browser | QtWebEngineBrowser:
    """A page driver: ``chromium`` (a Chromium-family browser found on the system, over DevTools), ``qtwebengine``
    (PySide6's, in a process of its own), or None: the first of those this machine has."""
    if kind not in (None, *BROWSER_KINDS):
        raise EdgeStudioError(None, f"unknown browser {kind!r} (known: {', '.join(BROWSER_KINDS)})")
    if kind is None:
        have = available_browsers()
        if not have:
            raise RuntimeUnavailableError(None, "no browser: neither Chromium/Chrome nor QtWebEngine is installed",
                                          hint="apt-get install chromium")
        kind = have[0]
    return Browser() if kind == "chromium" else QtWebEngineBrowser()


class QtWebEngineBrowser:
    """QtWebEngine as the browser (``edgestudio.gui.webengine_host`` in a process of its own, JSON lines on its
    stdio): the same interface as :class:`Browser`, console messages delivered as DevTools-shaped events."""

    kind = "qtwebengine"

    def __init__(self) -> None:
        if not qtwebengine_available():
            raise RuntimeUnavailableError(None, "QtWebEngine is not installed (PySide6-Addons)")
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
        from edgestudio.core.process import helper_command

        self.proc = subprocess.Popen(helper_command("edgestudio.gui.webengine_host"), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=None if os.environ.get("EDGESTUDIO_DEBUG_BROWSER") else subprocess.DEVNULL, env=env)
        self._buf = b""
        self._next_id = 0
        self.timeout_s = 120.0
        self.on_event: Callable[[dict[str, Any]], None] = lambda msg: None
        hello = self._read()
        self.version = str((hello.get("hello") or {}).get("version", "QtWebEngine"))

    def _why(self) -> str:
        code = self.proc.poll()
        return "still running" if code is None else f"exit code {code}"

    def _read(self) -> dict[str, Any]:
        import select
        import time

        assert self.proc.stdout is not None
        deadline = time.monotonic() + self.timeout_s
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise BrowserError(None, f"no answer from QtWebEngine in {self.timeout_s:g} s ({self._why()})")
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise BrowserError(None, f"QtWebEngine is gone ({self._why()})")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\n", 1)
        return json.loads(raw)  # type: ignore[no-any-return]

    def _call(self, op: str, **params: Any) -> Any:
        assert self.proc.stdin is not None
        self._next_id += 1
        try:
            self.proc.stdin.write(json.dumps({"id": self._next_id, "op": op, **params}).encode() + b"\n")
            self.proc.stdin.flush()
        except OSError as exc:
            raise BrowserError(None, f"QtWebEngine is gone ({self._why()}): {exc}") from None
        while True:
            msg = self._read()
            if "event" in msg:
                self.on_event({"method": "Runtime.consoleAPICalled",
                               "params": {"args": [{"value": msg.get("text", "")}]}})
            elif msg.get("id") == self._next_id:
                if "error" in msg:
                    text = str(msg["error"]).splitlines()[0][:300]
                    raise BrowserError(None, f"the page failed: {text}")
                return msg.get("result")

    def navigate(self, url: str) -> None:
        self._call("navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        return self._call("eval", expr=expression)

    def close(self) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(b'{"op": "close"}\n')
            self.proc.stdin.close()
        except (OSError, ValueError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> QtWebEngineBrowser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _short_tmpdir() -> str | None:
    """A temporary folder of Chromium's own where TMPDIR is too long for it: its singleton socket
    (TMPDIR/org.chromium.Chromium.XXXXXX/SingletonSocket) must fit the 108 bytes of a Unix socket's name, or it
    aborts at start (a pool worker's folder inside a long TMPDIR, as macOS has). None: TMPDIR is fine."""
    if len(os.path.join(tempfile.gettempdir(), "org.chromium.Chromium.XXXXXX", "SingletonSocket")) < 100:
        return None
    for base in ("/tmp", "/var/tmp", os.path.expanduser("~")):
        with contextlib.suppress(OSError):
            return tempfile.mkdtemp(prefix="esb-", dir=base)
    return None


class Browser:
    """Headless Chromium over ``--remote-debugging-pipe`` (fd 3: to the browser, fd 4: from it; NUL-separated
    JSON messages). One page, one session."""

    kind = "chromium"

    def __init__(self, *, threads: int | None = None) -> None:
        found = find_browser()
        if found is None:
            raise RuntimeUnavailableError(None, "no Chromium-family browser found (chromium, google-chrome)",
                                          hint="apt-get install chromium")
        self.path, self.version = found
        self._profile = tempfile.mkdtemp(prefix="edgestudio-browser-")
        self._scratch = _short_tmpdir()
        to_r, self._to_w = os.pipe()
        self._from_r, from_w = os.pipe()

        def child_fds() -> None:  # runs before the child closes other fds: 3 and 4 are kept (pass_fds)
            import fcntl

            a, b = fcntl.fcntl(to_r, fcntl.F_DUPFD, 100), fcntl.fcntl(from_w, fcntl.F_DUPFD, 100)
            os.dup2(a, 3)
            os.dup2(b, 4)

        args = [self.path, "--headless=new", "--no-sandbox", "--remote-debugging-pipe", "--no-first-run",
                "--no-default-browser-check", "--disable-gpu", "--disable-extensions", "--mute-audio",
                f"--user-data-dir={self._profile}", "about:blank"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, preexec_fn=child_fds, pass_fds=(3, 4),
                                     env={**os.environ, "TMPDIR": self._scratch} if self._scratch else None)
        os.close(to_r)
        os.close(from_w)
        self._reader = os.fdopen(self._from_r, "rb", buffering=0)
        self._buf = b""
        self._next_id = 0
        self.timeout_s = 120.0  # the longest silence accepted from the browser (a page streams samples meanwhile)
        self._lock = threading.Lock()
        self.on_event: Callable[[dict[str, Any]], None] = lambda msg: None
        try:
            target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            self.call("Runtime.enable", session=True)
            self.call("Page.enable", session=True)
        except BaseException:
            self.close()  # a browser that never answered leaves no process and no folder behind
            raise

    def _send(self, msg: dict[str, Any]) -> None:
        try:
            os.write(self._to_w, json.dumps(msg).encode() + b"\0")
        except OSError as exc:
            raise BrowserError(None, f"the browser is gone ({self._why()}): {exc}") from None

    def _read(self) -> dict[str, Any]:
        import select
        import time

        deadline = time.monotonic() + self.timeout_s
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_r], [], [], left)[0]:
                raise BrowserError(None, f"no answer from the browser in {self.timeout_s:g} s ({self._why()})")
            chunk = self._reader.read(1 << 16)
            if not chunk:
                raise BrowserError(None, f"the browser closed the DevTools pipe ({self._why()})")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)  # type: ignore[no-any-return]

    def _why(self) -> str:
        code = self.proc.poll()
        return "still running" if code is None else f"exit code {code}"

    def call(self, method: str, params: dict[str, Any] | None = None, *, session: bool = False) -> dict[str, Any]:
        with self._lock:
            self._next_id += 1
            msg_id = self._next_id
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        self._send(msg)
        while True:
            reply = self._read()
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise BrowserError(None, f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})  # type: ignore[no-any-return]
            if "method" in reply:
                self.on_event(reply)

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", {"url": url}, session=True)
        self.evaluate("new Promise(r => document.readyState === 'complete' ? r() : "
                      "window.addEventListener('load', () => r()))")

    def evaluate(self, expression: str) -> Any:
        """Evaluate ``expression`` in the page (awaiting a promise); the JSON-able value, or a BrowserError."""
        res = self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True},
                        session=True)
        if "exceptionDetails" in res:
            d = res["exceptionDetails"]
            text = (d.get("exception") or {}).get("description") or d.get("text") or "error"
            raise BrowserError(None, f"the page failed: {text.splitlines()[0][:300]}")
        return res.get("result", {}).get("value")

    def close(self) -> None:
        try:
            self._send({"id": 0, "method": "Browser.close"})
        except BrowserError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        for fd in (self._to_w,):
            try:
                os.close(fd)
            except OSError:
                pass
        self._reader.close()
        # Chromium's singleton socket lives in a folder of its own in TMPDIR (org.chromium.Chromium.*), linked from
        # the profile; a browser that did not end cleanly leaves it there. (TMPDIR inside the profile is no way out:
        # the socket's path grows past the 108 bytes a Unix socket's name may have, and Chromium aborts.)
        with contextlib.suppress(OSError):
            socket_dir = Path(os.readlink(os.path.join(self._profile, "SingletonSocket"))).parent
            if socket_dir.name.startswith("org.chromium.Chromium."):
                shutil.rmtree(socket_dir, ignore_errors=True)
        shutil.rmtree(self._profile, ignore_errors=True)
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def encode_array(a: Any) -> dict[str, Any]:
    import numpy as np

    arr = np.require(a, requirements="C")  # a 0-d array stays 0-d (np.ascontiguousarray makes it 1-d)
    return {"dtype": str(arr.dtype), "shape": list(arr.shape), "data": base64.b64encode(arr.tobytes()).decode()}


def decode_array(d: dict[str, Any]) -> Any:
    import numpy as np

    return np.frombuffer(base64.b64decode(d["data"]), dtype=d["dtype"]).reshape(d["shape"])
