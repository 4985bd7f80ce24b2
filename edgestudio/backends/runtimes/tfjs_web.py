"""TensorFlow.js graph models in a real browser (headless Chromium): the wasm backend (SIMD, threads where the
page is cross-origin isolated; tfjs caps them at half the cores) or the plain JS cpu backend. TF.js 4.22's core,
converter and backends are vendored from npm and served from loopback, like ONNX Runtime Web.
"""

from __future__ import annotations

from pathlib import Path

from edgestudio.backends.runtimes.base import RUNTIMES, DeviceInfo, Runtime, Session
from edgestudio.backends.runtimes.ort_web import BrowserSession, OrtWebRuntime, browser_devices, split_device
from edgestudio.core.errors import RuntimeUnavailableError
from edgestudio.core.formats import ModelFormat


class TfjsSession(BrowserSession):
    function = "runTfjs"

    def routes(self) -> dict[str, Path]:
        from edgestudio.backends.browser import runtime_files

        return {"/tfjs/core/": runtime_files("tfjs-core"), "/tfjs/cpu/": runtime_files("tfjs-cpu"),
                "/tfjs/converter/": runtime_files("tfjs-converter"), "/tfjs/wasm/": runtime_files("tfjs-wasm"),
                "/model/": self.path}


@RUNTIMES.register
class TfjsRuntime(Runtime):
    name = "tfjs"
    label = "TensorFlow.js (browser)"
    formats = frozenset({ModelFormat.TFJS})
    requires = ()
    in_browser = True
    package_kind = "web"  # packaging/web.py: model.json + shards, TF.js files, index.html, serve.py
    benchmark = OrtWebRuntime.benchmark  # timed in the page, streamed as console events

    @classmethod
    def missing_packages(cls) -> list[str]:
        from edgestudio.backends.browser import available_browsers, web_root

        missing = [] if available_browsers() else ["a browser (apt-get install chromium; or PySide6's QtWebEngine)"]
        if not (web_root() / "node_modules" / "@tensorflow" / "tfjs-backend-wasm").is_dir():
            missing.append("TF.js (npm ci in web/)")
        return missing

    def devices(self) -> list[DeviceInfo]:
        return browser_devices(self.name, [("wasm", "TF.js wasm backend"), ("js", "TF.js plain JavaScript (cpu) backend")])

    def load(self, path: str | Path, *, device: str = "wasm", threads: int | None = None,
             precision: str | None = None) -> Session:
        name, browser = split_device(device)
        backend = {"WASM": "wasm", "CPU": "wasm", "JS": "cpu"}.get(name.upper(), name.lower())
        if backend not in ("wasm", "cpu"):
            raise RuntimeUnavailableError(None, f"tfjs has no device {device!r} (available: wasm, js; "
                                                "@chromium or @qtwebengine picks the browser)")
        folder = Path(path).resolve()
        return TfjsSession(folder if folder.is_dir() else folder.parent, threads, runtime="tfjs", device=backend,
                           browser=browser)
