"""The web as an edge target: TF.js export (graph models, float16/uint8 weights) checked by running the result
(TF.js graph in TensorFlow, through tfjs-graph-converter), and browser runtimes in headless Chromium."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLES, compare_in_studio, run_cli


def _page_equals_native(model: Path, *, samples: int, device: str = "wasm") -> None:
    """The digits test images run by ONNX Runtime Web in the browser give native ONNX Runtime's outputs."""
    import numpy as np

    from edgestudio.backends.runtimes import get_runtime

    x = np.load(SAMPLES / "digits_test.npz")["x"][:samples].astype(np.float32)
    web = get_runtime("ort-web").load(model, device=device)
    try:
        got = next(iter(web.run({"image": x}).values()))
    finally:
        web.close()  # type: ignore[attr-defined]
    native = next(iter(get_runtime("onnxruntime").load(model).run({"image": x}).values()))
    np.testing.assert_allclose(got, native, atol=1e-5)


def _serve_and_open(root: Path) -> dict:  # type: ignore[type-arg]
    """Start the package's own serve.py on a free port, open its index.html in headless Chromium, wait for the
    page's ``window.result``."""
    import socket
    import subprocess
    import sys
    import time

    from edgestudio.backends.browser import Browser

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "serve.py", str(port)], cwd=root, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        with Browser() as browser:
            browser.navigate(f"http://127.0.0.1:{port}/index.html")
            got = browser.evaluate("new Promise(r => { const w = () => window.result ? r(window.result) : "
                                   "setTimeout(w, 20); w(); })")
    finally:
        server.kill()
        server.wait()
    return got  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def tfjs_export(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """``tfjs_export(sample)``: the sample converted to TF.js by the CLI (``convert --to tfjs --json``), once per
    module: the folder (``<stem>_web``, in a folder of its own) and the CLI's JSON report. The tests only read it."""
    made: dict[str, tuple[Path, dict]] = {}  # type: ignore[type-arg]

    def export(sample: str) -> tuple[Path, dict]:  # type: ignore[type-arg]
        if sample not in made:
            out = tmp_path_factory.mktemp("tfjs") / f"{Path(sample).stem}_web"
            r = run_cli("convert", str(SAMPLES / sample), "--to", "tfjs", "-o", str(out), "--json", timeout=600)
            assert r.returncode == 0, r.stderr
            made[sample] = out, json.loads(r.stdout)
        return made[sample]

    return export


@pytest.mark.parametrize("sample", ["digits_cnn.keras", "digits_cnn_savedmodel"])
def test_tfjs_export_runs_and_matches(sample: str, tfjs_export) -> None:  # type: ignore[no-untyped-def]
    out, d = tfjs_export(sample)
    step = d["steps"][-1]
    assert step["converter"] == "tensorflowjs" and step["parity"]["verdict"] == "passed"
    assert step["parity"]["child_runtime"] == "tfjs-graph" and step["parity"]["max_abs_diff"] < 1e-5
    browser = step["parity"]["also"]["tfjs"]  # and run where it will be deployed: TF.js in a real browser
    assert browser["verdict"] == "passed" and browser["child_runtime"] == "tfjs" and browser["max_abs_diff"] < 1e-4
    doc = json.loads((out / "model.json").read_text())
    assert doc["format"] == "graph-model"  # Keras-3 layers models do not load in tfjs: graph models do
    assert not list(out.parent.glob("*.keras.*"))  # nothing unpacked beside the input
    info = json.loads(run_cli("inspect", str(out), "--json").stdout)
    assert info["format"] == "tfjs" and info["parameters"] > 10_000


def test_tfjs_uint8_weights_are_smaller_and_checked_with_a_cosine_floor(tmp_path: Path, tfjs_export) -> None:  # type: ignore[no-untyped-def]
    full, small = tfjs_export("digits_cnn.keras")[0], tmp_path / "u8"
    r = run_cli("convert", str(SAMPLES / "digits_cnn.keras"), "--to", "tfjs", "--tfjs-quantization", "uint8", "-o",
                str(small), "--json", timeout=600)
    assert r.returncode == 0, r.stderr
    parity = json.loads(r.stdout)["steps"][-1]["parity"]
    assert parity["mode"] == "lossy" and parity["cosine"] >= 0.999 and parity["max_abs_diff"] > 1e-5

    def size(folder: Path) -> int:
        return sum(f.stat().st_size for f in folder.glob("*.bin"))

    assert size(small) * 3 < size(full)


def test_ort_web_runs_in_headless_chromium_with_native_outputs_and_live_samples(tmp_path: Path) -> None:
    """ONNX Runtime Web (wasm, threads) in a real browser: the page is cross-origin isolated, the latencies are
    measured in the page and stream out one by one, the outputs equal native ONNX Runtime's."""

    from edgestudio.bench.latency import BenchConfig, run_benchmark

    model = SAMPLES / "digits_cnn.onnx"
    seen: list[tuple[int, float]] = []
    res = run_benchmark(model, BenchConfig(runtime="ort-web", device="wasm", iterations=60, warmup=5, threads=2),
                        on_sample=lambda i, ms: seen.append((i, ms)))
    assert res.iterations == 60 and [i for i, _ in seen] == list(range(60))
    assert res.warmup_runs == 5  # the page's untimed runs, said (the text said "warm-up None runs")
    assert res.target["crossOriginIsolated"] is True and res.target["threads"] == 2
    assert res.target["browser"].startswith(("Chromium", "Google Chrome")) and res.latency_ms.p50 > 0
    _page_equals_native(model, samples=1)
    r = run_cli("bench", str(model), "--runtime", "ort-web", "--iterations", "20", "--json", timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["target"]["runtime"].startswith("onnxruntime-web")


def test_the_studio_compares_native_and_browser_side_by_side(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    """The comparison dialog offers ONNX Runtime Web next to the native runtimes; its rows carry the browser's
    measurements and top-1 like any other."""
    from edgestudio.gui.main_window import MainWindow

    assert isinstance(window, MainWindow)
    (model_id,) = window.import_paths([SAMPLES / "digits_cnn.onnx"])
    qtbot.waitUntil(lambda: any(d["runtime"] == "ort-web" for d in getattr(window, "devices", [])), timeout=120_000)
    found = compare_in_studio(qtbot, window, [model_id], [("onnxruntime", "CPU"), ("ort-web", "wasm")], runs=2)
    rows = {r["runtime"]: r for r in found}
    assert set(rows) == {"onnxruntime", "ort-web"}, [r.get("error") for r in found]
    assert rows["ort-web"]["p50_ms"] > 0 and abs(rows["ort-web"]["accuracy"] - rows["onnxruntime"]["accuracy"]) < 1e-9
    if os.environ.get("EDGESTUDIO_SHOTS"):
        window.comparison.export_figure(ROOT / "docs" / "screenshots" / "comparison-browser.png")


def test_web_package_serves_itself_and_runs_in_the_browser(tmp_path: Path) -> None:
    """package --runtime ort-web: a static folder whose own serve.py (with the COOP/COEP headers) serves a page
    that runs the model in headless Chromium and gives EdgeStudio's expected output."""
    import zipfile

    import numpy as np


    r = run_cli("package", str(SAMPLES / "digits_cnn.onnx"), "--runtime", "ort-web", "-o", str(tmp_path / "w.zip"),
                "--json", timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["page_check"]["max_abs_diff_vs_native"] < 1e-5
    with zipfile.ZipFile(tmp_path / "w.zip") as zf:
        zf.extractall(tmp_path / "u")
    root = tmp_path / "u" / "digits_cnn"
    assert {"index.html", "serve.py", "model/digits_cnn.onnx", "ort/ort.wasm.min.mjs"} <= {
        str(f.relative_to(root)) for f in root.rglob("*") if f.is_file()}
    got = _serve_and_open(root)
    assert "error" not in got and got["crossOriginIsolated"] is True
    np.testing.assert_allclose(np.asarray(got["output"]).reshape(got["shape"]), np.load(root / "expected_output.npy"),
                               atol=1e-5)


def test_tfjs_runs_in_the_browser_with_the_exports_outputs(tfjs_export) -> None:  # type: ignore[no-untyped-def]
    """A TF.js export benchmarked with TF.js itself in headless Chromium (wasm and plain-JS backends): the
    page's outputs equal the export run back in TensorFlow."""
    import numpy as np

    from edgestudio.backends.runtimes import get_runtime
    from edgestudio.bench.latency import BenchConfig, run_benchmark

    out = tfjs_export("digits_cnn.keras")[0]
    res = run_benchmark(out, BenchConfig(runtime="tfjs", device="wasm", iterations=30, warmup=3))
    assert res.iterations == 30 and res.target["runtime"].startswith("tfjs 4.22") and "(wasm)" in res.target["runtime"]
    # asked for the same threads as every runtime; the row says what the page really ran with (tfjs-backend-wasm
    # caps it at hardwareConcurrency/2)
    assert res.threads == res.target["threads"] and res.threads_source.startswith("equal default")
    from edgestudio.core.machine import default_threads

    if res.threads != default_threads():
        assert f"asked {default_threads()}, the browser's runtime ran {res.threads}" in res.threads_source
    x = np.load(SAMPLES / "digits_test.npz")["x"][:1].astype(np.float32)
    ref = next(iter(get_runtime("tfjs-graph").load(out).run({get_runtime("tfjs-graph").load(out).inputs[0].name: x})
                    .values()))
    for device in ("wasm", "js"):
        web = get_runtime("tfjs").load(out, device=device)
        try:
            got = next(iter(web.run({web.inputs[0].name: x}).values()))
        finally:
            web.close()  # type: ignore[attr-defined]
        np.testing.assert_allclose(got, ref, atol=1e-5)


def test_qtwebengine_is_the_other_browser_with_the_same_answers(tmp_path: Path) -> None:
    """--browser qtwebengine (the studio's own Chromium, in a process of its own): the same page, cross-origin
    isolated with wasm threads, and outputs equal to native ONNX Runtime; the result names the browser."""


    model = SAMPLES / "digits_cnn.onnx"
    r = run_cli("bench", str(model), "--runtime", "ort-web", "--browser", "qtwebengine", "--threads", "2",
                "--iterations", "30", "--json", timeout=300)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["device"] == "wasm@qtwebengine" and d["target"]["browser"].startswith("QtWebEngine")
    assert d["target"]["crossOriginIsolated"] is True and d["target"]["threads"] == 2 and d["iterations"] == 30
    assert d["parity_vs_native"]["verdict"] == "passed" and d["parity_vs_native"]["child_runtime"] == "ort-web"
    _page_equals_native(model, samples=2, device="wasm@qtwebengine")
    bad = run_cli("bench", str(model), "--browser", "qtwebengine")  # onnxruntime is not a browser runtime
    assert bad.returncode != 0 and "--browser applies to the browser runtimes" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize("browser", ["chromium", "qtwebengine"])
def test_a_browser_that_dies_mid_benchmark_is_a_failed_job(browser: str, tmp_path: Path) -> None:
    """The browser is a process of its own: killed mid-benchmark, the job fails with the reason in one line, and
    what it had in the temporary folder goes (Chromium's org.chromium.Chromium.* socket folder was left)."""
    import signal
    import subprocess
    import sys
    import time

    import psutil

    proc = subprocess.Popen([sys.executable, "-m", "edgestudio", "bench", str(SAMPLES / "digits_cnn.onnx"),
                             "--runtime", "ort-web", "--browser", browser, "--duration", "60", "--iterations",
                             "10000000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(tmp_path)})
    try:
        name = "chromium" if browser == "chromium" else "webengine"
        victim = None
        deadline = time.monotonic() + 120
        while victim is None and time.monotonic() < deadline and proc.poll() is None:
            for child in psutil.Process(proc.pid).children(recursive=True):
                try:
                    cmdline = " ".join(child.cmdline())  # not `chromium --version`, asked first and gone at once
                    if name in cmdline and "--version" not in cmdline and child.ppid() == proc.pid:
                        victim = child
                except psutil.Error:
                    pass
            time.sleep(0.5)
        why = proc.stderr.read() if proc.poll() else ""  # ended: its one-line error
        assert victim is not None, f"the browser never started ({proc.poll()}): {why}"
        time.sleep(3)  # the page is loaded and measuring by now
        victim.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=150)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert "Traceback" not in err and lines and lines[-1].startswith("error:"), err
    assert any(w in lines[-1] for w in ("browser", "QtWebEngine")), lines[-1]
    assert not list(tmp_path.rglob("org.chromium.*")), list(tmp_path.rglob("*"))


def test_tfjs_web_package_runs_its_page_with_the_exports_outputs(tmp_path: Path, tfjs_export) -> None:  # type: ignore[no-untyped-def]
    """package of a TF.js model (default runtime: tfjs): model.json + shards, TF.js files, index.html and
    serve.py; served by its own server, the page's output equals the export run in TensorFlow."""
    import zipfile

    import numpy as np


    web = tfjs_export("digits_cnn.keras")[0]
    r = run_cli("package", str(web), "-o", str(tmp_path / "w.zip"), "--json", timeout=300)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["runtime"] == "tfjs" and d["page_check"]["native_runtime"] == "tfjs-graph"
    assert d["page_check"]["max_abs_diff_vs_native"] < 1e-4 and d["benchmark"]["runtime"] == "tfjs"
    with zipfile.ZipFile(tmp_path / "w.zip") as zf:
        zf.extractall(tmp_path / "u")
    root = tmp_path / "u" / web.name
    files = {str(f.relative_to(root)) for f in root.rglob("*") if f.is_file()}
    assert {"index.html", "serve.py", "model/model.json", "tfjs/tf-core.min.js",
            "tfjs/tfjs-backend-wasm-simd.wasm"} <= files
    got = _serve_and_open(root)
    assert "error" not in got and got["crossOriginIsolated"] is True
    np.testing.assert_allclose(np.asarray(got["output"]).reshape(got["shape"]), np.load(root / "expected_output.npy"),
                               atol=1e-4)


def test_the_wizard_exports_tfjs_checked_in_a_real_browser(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    """The conversion wizard offers TF.js (a web format) with its weight quantization option; the report says the
    export was checked in TensorFlow and again in a real browser; the web model joins the lineage and packages as a
    page."""
    from edgestudio.core.formats import ModelFormat
    from edgestudio.gui.model_actions import package_runtimes_for

    (model_id,) = window.import_paths([SAMPLES / "digits_cnn.keras"])
    wizard = window.model_action("convert", model_id)
    qtbot.addWidget(wizard)
    wizard.next()
    box = wizard.target_page.boxes[ModelFormat.TFJS]
    assert box.isEnabled() and box.text() == "TensorFlow.js"
    box.setChecked(True)
    wizard.next()  # the options the planned converters honour: TF.js weight quantization among them
    assert "opt_tfjs_quantization" in [e.objectName() for e in wizard.options_page.form._editors.values()]
    wizard.next()
    wizard.next()
    qtbot.waitUntil(lambda: wizard.run_page.isComplete(), timeout=600_000)
    assert not wizard.errors, wizard.errors
    report = wizard.run_page.report
    last = report.item(report.rowCount() - 1, 6).text()
    assert last.startswith("✓ passed") and "in tfjs: ✓ passed" in last, last
    qtbot.waitUntil(lambda: any(m.format.value == "tfjs" for m in window.workspace.models()), timeout=30_000)
    web = next(m for m in window.workspace.models() if m.format.value == "tfjs")
    assert window.workspace.lineage(web.id)[0].id == model_id
    assert [rt for rt, _ in package_runtimes_for("tfjs")] == ["tfjs"]  # a TF.js model packages as a web page
