"""A web deployment package: a static folder that runs a model in the browser, an ONNX model with ONNX Runtime
Web or a TF.js graph model with TensorFlow.js (wasm backend).

It holds the model, the runtime's files (onnxruntime-web's wasm build, or TF.js core, converter and the wasm
backend: vendored from npm), an
``index.html`` that loads the model, runs the packaged input, shows the output and the latency, a ``serve.py``
(standard library) that serves the folder with the cross-origin-isolation headers wasm threads need, and the
report (EdgeStudio's expected output, the browser benchmark). Opened in the headless browser before it is
zipped: a package whose page fails or disagrees with native ONNX Runtime is not written.
"""

from __future__ import annotations

import html
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgestudio import __version__
from edgestudio.core.errors import EdgeStudioError, display
from edgestudio.core.progress import CancelToken, ProgressCallback, noop_progress

SERVE = '''#!/usr/bin/env python3
"""Serve this folder on http://127.0.0.1:8000 with the headers wasm threads need (COOP/COEP). Standard library."""
import http.server, sys

class Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript",
                      ".wasm": "application/wasm"}

    def end_headers(self):
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        super().end_headers()

port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
print(f"open http://127.0.0.1:{port}/index.html")
http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
'''


def web_runtimes() -> dict[str, Any]:
    """The runtimes whose deployment package is a static web folder (``Runtime.package_kind == "web"``)."""
    from edgestudio.backends.runtimes import RUNTIMES

    return {name: cls for name, cls in RUNTIMES.all().items() if cls.package_kind == "web"}


def build_web_package(model: str | Path, out_zip: str | Path, *, runtime: str | None = None, inputs: Any = None,
                      iterations: int = 100, progress: ProgressCallback = noop_progress,
                      cancel: CancelToken | None = None) -> dict[str, Any]:
    """Write the package for ``runtime`` (a web runtime; by default the first that runs the model's format), after
    benchmarking the model in the browser and opening the package's own page there: its output must equal the
    native run (ONNX Runtime; TF.js: the graph model run back in TensorFlow)."""
    from edgestudio.backends.browser import encode_array, open_browser, runtime_files
    from edgestudio.backends.runtimes import get_runtime
    from edgestudio.bench.latency import BenchConfig, run_benchmark
    from edgestudio.core.formats import detect_format
    from edgestudio.core.inputspec import InputSpec, make_feeds
    from edgestudio.packaging.deploy import (copy_package_files, copy_regular_file, naming_the_model, package_files,
                                             safe_name, write_package_zip)

    model = Path(model)
    cancel = cancel or CancelToken()
    fmt = detect_format(model)
    web = web_runtimes()
    runtime = runtime or next((n for n, c in web.items() if fmt in c.formats), None)
    if runtime not in web:
        raise EdgeStudioError(model, f"no web package for runtime {runtime!r} (web runtimes: {', '.join(web)})"
                              if runtime else f"no web runtime runs {fmt.label} models (web runtimes: {', '.join(web)})")
    rt = web[runtime]
    if fmt not in rt.formats:
        what = " or ".join(sorted(f.label for f in rt.formats))
        raise EdgeStudioError(model, f"a {runtime} web package runs {what} models ({rt.label}), not {fmt.label}; "
                                     "convert it first")
    files = package_files(model, fmt)  # each a regular file inside the model's folder (no link, no device)
    spec = InputSpec.from_dict(inputs) if isinstance(inputs, dict) else (inputs or InputSpec())
    native_name = rt.web_reference or runtime
    name = safe_name(model.stem if model.is_file() else model.name)
    with tempfile.TemporaryDirectory(prefix="edgestudio-web-") as tmp:
        root = Path(tmp) / name
        (root / "model").mkdir(parents=True)
        # the model's files first, checked: the native run, the benchmark and the page all use the package's copy
        if rt.web_model == "file":
            staged = copy_package_files(model, fmt, files, root / "model", name)
            model_file = staged.name  # sanitized, with the suffix of its real format
        else:
            staged, model_file = root / "model", "model.json"
            for src, rel in files:  # model.json and the weight shards it lists
                copy_regular_file(src, root / "model" / rel, model)
        with naming_the_model(model, staged):
            native = get_runtime(native_name).load(staged)
            feeds = make_feeds(native.inputs, spec, count=1, model=model).samples[0]
            expected = np.asarray(next(iter(native.run(feeds).values())))
            progress(0.1, "benchmarking in the browser")
            bench = run_benchmark(staged, BenchConfig(runtime=runtime, device="wasm", iterations=iterations,
                                                      warmup=5, inputs=spec), cancel=cancel)
        cancel.check()
        (root / rt.web_dir).mkdir()
        for kind, f in rt.web_files:
            shutil.copy2(runtime_files(kind) / f, root / rt.web_dir / f)
        index = index_html(runtime, model.name, model_file,
                           [rel for _, rel in files if rel and rt.web_model == "file"])
        (root / "input.json").write_text(json.dumps({k: encode_array(v) for k, v in feeds.items()}))
        (root / "index.html").write_text(index)
        (root / "serve.py").write_text(SERVE)
        np.save(root / "expected_output.npy", expected)
        progress(0.7, "opening the package in the browser")
        got, browser_version = open_package_page(root, open_browser)
        if got.get("error"):
            raise EdgeStudioError(model, f"the web package's page failed in {browser_version}: {got['error']}")
        out = np.asarray(got["output"], dtype=np.float64).reshape(got["shape"])
        diff = float(np.max(np.abs(out - expected))) if expected.size else 0.0
        if diff > rt.web_atol:
            raise EdgeStudioError(model, f"the web package's output differs from the native run ({native_name}) "
                                         f"by {diff:.3g}")
        manifest = {"package": name, "runtime": runtime, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "model": model_file, "benchmark": bench.to_dict(),
                    "page_check": {"browser": browser_version, "native_runtime": native_name,
                                   "max_abs_diff_vs_native": diff, "p50_ms": got.get("p50_ms"),
                                   "threads": got.get("threads"), "crossOriginIsolated": got.get("crossOriginIsolated")},
                    "files": sorted(str(f.relative_to(root)) for f in root.rglob("*") if f.is_file())}
        (root / "report.json").write_text(json.dumps(manifest, indent=2, default=str))
        out_zip = write_package_zip(root, Path(out_zip))
    progress(1.0, "done")
    manifest["output"] = str(out_zip)
    manifest["size_bytes"] = out_zip.stat().st_size
    return manifest


def index_html(runtime: str, source_name: str, model_file: str = "model.json", external: list[str] | None = None
               ) -> str:
    """The package's page (the runtime's ``web_page``): the user's file name ``source_name`` only as HTML-escaped
    text, the packaged file names (``model_file``, ONNX ``external`` data files) only as escaped JavaScript string
    literals (:func:`js_literal`)."""
    from edgestudio.backends.runtimes import RUNTIMES

    return RUNTIMES.get(runtime).web_page(title=html.escape(display(source_name)), version=html.escape(__version__),
                                          model_js=js_literal(model_file), external_js=js_literal(list(external or [])))


def js_literal(value: Any) -> str:
    """``value`` as a JavaScript literal safe inside an HTML ``<script>``: JSON, ASCII only (U+2028/2029 and
    undecodable bytes escaped), with ``<``, ``>`` and ``&`` as ``\\u`` escapes (no ``</script>``, no ``<!--``)."""
    text = json.dumps(value, ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def open_package_page(root: Path, open_browser: Any, browser: str | None = None) -> tuple[dict[str, Any], str]:
    """Serve ``root`` from loopback (with the headers), open its index.html, and wait for ``window.result``."""
    from edgestudio.backends.browser import WebServer

    server = WebServer({"/": root})
    try:
        with open_browser(browser) as page:
            page.navigate(f"{server.url}/index.html")
            got = page.evaluate("new Promise(r => { const w = () => window.result ? r(window.result) : "
                                "setTimeout(w, 20); w(); })")
            return got, page.version
    finally:
        server.close()
