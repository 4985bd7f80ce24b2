"""Browser runtimes. ONNX Runtime Web (wasm, SIMD, threads) in a real browser: headless Chromium found on the system, the page
served from loopback with the cross-origin-isolation headers, onnxruntime-web's files vendored from npm.

Latencies are measured in the page and streamed live; results carry the browser, its version, the effective
number of wasm threads and ``crossOriginIsolated`` (without it threads silently drop to one). ``run`` (for parity
checks) sends the inputs to the page and brings the outputs back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgestudio.backends.browser import RUNTIME_FILES
from edgestudio.backends.runtimes.base import RUNTIMES, DeviceInfo, Measured, Runtime, Session
from edgestudio.core.errors import RuntimeUnavailableError
from edgestudio.core.formats import ModelFormat


class BrowserSession(Session):
    """A model served to the browser; each :meth:`run` is one page call (a browser starts on first use).
    ``function`` is the page's entry (``runOrt``, ``runTfjs``), ``routes`` the runtime files it loads."""

    function = "runOrt"

    def __init__(self, path: Path, threads: int | None, *, runtime: str = "ort-web", device: str = "wasm",
                 browser: str | None = None) -> None:
        from edgestudio.core.inspection import inspect_model

        info = inspect_model(path)
        self.path = path
        self.threads = threads
        self.runtime = runtime
        self.backend = device  # the page's backend (wasm; TF.js: wasm or cpu)
        self.browser = browser  # chromium, qtwebengine, or None: the first this machine has
        self.device = f"{device}@{browser}" if browser else device
        self.inputs = info.inputs
        self.outputs = info.outputs
        self.precision = None
        self.facts: dict[str, Any] = {}
        self._browser: Any = None
        self._server: Any = None

    def routes(self) -> dict[str, Path]:
        from edgestudio.backends.browser import runtime_files

        return {"/ort/": runtime_files("ort"), "/model/": self.path.parent}

    def _page(self) -> Any:
        from edgestudio.backends.browser import WebServer, open_browser, web_root

        if self._browser is None:
            self._server = WebServer({**self.routes(), "/bench.html": web_root() / "bench.html"})
            try:
                self._browser = open_browser(self.browser)
                self._browser.navigate(f"{self._server.url}/bench.html")
            except BaseException:
                if self._browser is not None:
                    self._browser.close()
                    self._browser = None
                self._server.close()
                raise
            self.facts = {"browser": self._browser.version, "browser_kind": self._browser.kind}
        return self._browser

    def call(self, feeds: dict[str, np.ndarray], *, iterations: int = 0, warmup: int = 0,
             duration_s: float | None = None, on_event: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        import json

        from edgestudio.backends.browser import encode_array

        page = self._page()
        page.on_event = on_event or (lambda msg: None)
        cfg = {"file": self.path.name, "threads": self.threads or 0, "iterations": iterations, "warmup": warmup,
               "duration_s": duration_s, "backend": self.backend, "inputs": {k: encode_array(v) for k, v in feeds.items()},
               "order": [s.name for s in self.inputs]}
        page.evaluate("new Promise(r => { const w = () => window.ready ? r() : setTimeout(w, 10); w(); })")
        result = page.evaluate(f"window.{self.function}({json.dumps(cfg)})")
        self.facts.update({k: result[k] for k in ("threads", "crossOriginIsolated", "hardwareConcurrency", "userAgent",
                                                  "webgpu", "runtime")})
        self.facts["page_load_ms"] = round(float(result["loadMs"]), 3)
        return result  # type: ignore[no-any-return]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from edgestudio.backends.browser import decode_array

        result = self.call(feeds)
        values = [decode_array(a) for a in result["outputs"].values()]
        names = [s.name for s in self.outputs] if len(self.outputs) == len(values) else list(result["outputs"])
        return dict(zip(names, values))

    def bind(self, feeds: dict[str, np.ndarray]) -> Callable[[], Any]:
        return lambda: self.run(feeds)  # a round trip to the page: benchmarks use OrtWebRuntime.benchmark

    def close(self) -> None:
        """Stop the browser and the server (a browser left running also exits when this process does: its
        DevTools pipe closes)."""
        if self._browser is not None:
            self._browser.close()
            self._server.close()
            self._browser = None


def split_device(device: str) -> tuple[str, str | None]:
    """A browser runtime's device: ``BACKEND[@BROWSER]`` (``wasm``, ``wasm@qtwebengine``) -> (backend, browser)."""
    from edgestudio.backends.browser import BROWSER_KINDS

    backend, _, browser = device.partition("@")
    if browser and browser.lower() not in BROWSER_KINDS:
        raise RuntimeUnavailableError(None, f"unknown browser {browser!r} in device {device!r} "
                                            f"(known: {', '.join(BROWSER_KINDS)})")
    return backend, (browser.lower() or None)


def browser_device(runtime: str, device: str | None, browser: str | None) -> str:
    """The device string that runs ``runtime`` in ``browser`` (``--browser``): ``wasm@qtwebengine``. Runtimes that
    do not run in a browser refuse a browser; without one the device is unchanged."""
    from edgestudio.backends.browser import BROWSER_KINDS
    from edgestudio.backends.runtimes import RUNTIMES
    from edgestudio.core.errors import UsageError

    if not browser:
        return device or "CPU"
    if browser not in BROWSER_KINDS:
        raise UsageError(None, f"unknown browser {browser!r} (known: {', '.join(BROWSER_KINDS)})")
    if not getattr(RUNTIMES.get(runtime), "in_browser", False):
        raise UsageError(None, f"--browser applies to the browser runtimes (ort-web, tfjs), not {runtime}")
    backend = (device or "wasm").partition("@")[0]
    return f"{'wasm' if backend.upper() == 'CPU' else backend}@{browser}"


def browser_devices(runtime: str, backends: list[tuple[str, str]]) -> list[DeviceInfo]:
    """Each backend in the default browser (the first found), and ``@qtwebengine``/``@chromium`` spelled out
    for the others this machine has."""
    from edgestudio.backends.browser import available_browsers, find_browser

    have = available_browsers()
    out = []
    for i, kind in enumerate(have):
        where = (find_browser() or ("", "Chromium"))[1] if kind == "chromium" else "QtWebEngine"
        for backend, what in backends:
            out.append(DeviceInfo(runtime, backend if i == 0 else f"{backend}@{kind}", f"{what} in {where}"))
    return out


@RUNTIMES.register
class OrtWebRuntime(Runtime):
    name = "ort-web"
    label = "ONNX Runtime Web (browser)"
    formats = frozenset({ModelFormat.ONNX, ModelFormat.ORT})
    requires = ()
    in_browser = True
    package_kind = "web"  # packaging/web.py: model, runtime files, index.html, serve.py
    web_files = tuple(("ort", f) for f in RUNTIME_FILES["ort"])
    web_dir = "ort"
    web_reference = "onnxruntime"

    @classmethod
    def web_page(cls, *, title: str, version: str, model_js: str, external_js: str) -> str:
        return PAGE.format(version=version, title=title, model_js=model_js, external_js=external_js)

    @classmethod
    def missing_packages(cls) -> list[str]:
        from edgestudio.backends.browser import available_browsers, web_root

        missing = [] if available_browsers() else ["a browser (apt-get install chromium; or PySide6's QtWebEngine)"]
        if not (web_root() / "node_modules" / "onnxruntime-web").is_dir():
            missing.append("onnxruntime-web (npm ci in web/)")
        return missing

    def devices(self) -> list[DeviceInfo]:
        return browser_devices(self.name, [("wasm", "onnxruntime-web wasm (SIMD, threads)")])

    def load(self, path: str | Path, *, device: str = "wasm", threads: int | None = None,
             precision: str | None = None) -> Session:
        backend, browser = split_device(device)
        if backend.upper() not in ("WASM", "CPU"):
            raise RuntimeUnavailableError(None, f"ort-web has no device {device!r} (available: wasm, "
                                                "wasm@chromium, wasm@qtwebengine)")
        return BrowserSession(Path(path).resolve(), threads, browser=browser)

    def benchmark(self, session: Session, feeds: dict[str, np.ndarray], *, iterations: int, warmup: int,
                  duration_s: float | None = None, on_sample: Any = None, cancel: Any = None,
                  progress: Callable[[float, str], None] = lambda f, m="": None) -> Measured:
        """Timed in the page; each latency arrives as a DevTools console event and goes to ``on_sample``."""
        import json

        assert isinstance(session, BrowserSession)
        n_seen = [0]
        total = iterations if not duration_s else 0

        def on_event(msg: dict[str, Any]) -> None:
            if msg.get("method") != "Runtime.consoleAPICalled":
                return
            args = msg.get("params", {}).get("args") or []
            text = str(args[0].get("value", "")) if args else ""
            if text.startswith("ES_SAMPLES "):
                for i, ms in json.loads(text[len("ES_SAMPLES "):]):
                    if on_sample is not None:
                        on_sample(int(i), float(ms))
                    n_seen[0] += 1
                if total:
                    progress(0.1 + 0.9 * n_seen[0] / total, f"iteration {n_seen[0]}/{total} in the browser")
                if cancel is not None and cancel.cancelled:
                    session.close()  # the page call then fails: the job ends as cancelled

        progress(0.05, "starting the browser")
        try:
            result = session.call(feeds, iterations=iterations if not duration_s else 10_000_000, warmup=warmup,
                                  duration_s=duration_s, on_event=on_event)
        except Exception:
            if cancel is not None:
                cancel.check()
            raise
        return Measured(float(result["firstMs"]), np.asarray(result["samples"], dtype=np.float64),
                        float(result["wallS"]), warmup_runs=warmup)  # the page runs exactly that many, untimed


#: a web package's index.html (packaging/web.py fills it: escaped title and version, the model as JS literals)
PAGE = """<!doctype html>
<!-- Generated by EdgeStudio {version}: a model with ONNX Runtime Web (wasm). Serve with `python serve.py`. -->
<html><head><meta charset="utf-8"><title>{title}</title></head>
<body><h3>{title} in the browser</h3><pre id="out">running…</pre>
<script type="module">
import * as ort from "./ort/ort.wasm.min.mjs";
const MODEL = {model_js};  // the packaged model's file name, and its external data files (JSON, escaped)
const EXTERNAL = {external_js};
const url = p => "./model/" + p.split("/").map(encodeURIComponent).join("/");
ort.env.wasm.wasmPaths = new URL("./ort/", location.href).href;  // absolute: relative paths resolve from the module
const DT = {{float32: Float32Array, int32: Int32Array, int64: BigInt64Array, uint8: Uint8Array, int8: Int8Array}};
async function main() {{
  const spec = await (await fetch("./input.json")).json();
  const feeds = {{}};
  for (const [name, a] of Object.entries(spec)) {{
    const bytes = Uint8Array.from(atob(a.data), c => c.charCodeAt(0));
    feeds[name] = new ort.Tensor(a.dtype, new DT[a.dtype](bytes.buffer), a.shape);
  }}
  const options = {{executionProviders: ["wasm"]}};
  if (EXTERNAL.length) options.externalData = EXTERNAL.map(p => ({{path: p, data: url(p)}}));
  const session = await ort.InferenceSession.create(url(MODEL), options);
  let out = await session.run(feeds);
  const times = [];
  for (let i = 0; i < 50; i++) {{ const t = performance.now(); out = await session.run(feeds); times.push(performance.now() - t); }}
  times.sort((a, b) => a - b);
  const first = out[session.outputNames[0]];
  window.result = {{output: Array.from(first.data, Number), shape: first.dims, p50_ms: times[25],
                   threads: ort.env.wasm.numThreads, crossOriginIsolated: self.crossOriginIsolated}};
  document.getElementById("out").textContent = JSON.stringify(window.result, null, 1);
}}
main().catch(e => {{ window.result = {{error: String(e)}}; document.getElementById("out").textContent = String(e); }});
</script></body></html>
"""
