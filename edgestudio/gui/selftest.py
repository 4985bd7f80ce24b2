"""``edgestudio --self-test [CAPABILITY ...]``: check that an installation works, capability by capability.

First the studio: the main window offscreen, an inspection, a conversion and a benchmark on the bundled sample
through the worker pool. Then every capability the installation claims, each through the real command a user runs
(the installed executable itself, in a fresh HOME): each runtime, each converter family (OpenVINO, TFLite, TF.js),
INT8, TensorFlow Lite Micro, a browser runtime, a Python environment (with the system's python3) and the device
agent on loopback. Prints a table, then one JSON line; exits 0 when nothing failed (1 otherwise). A capability that
cannot be checked here (no browser, no system Python, the package registry unreachable) is "skipped" with why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def native_benches() -> list[tuple[str, str]]:
    """The self-test's benchmarks: each sample format's own runtime (the catalog's), on the sample or the file an
    earlier check converted it to."""
    from edgestudio.core.catalog import native_runtime
    from edgestudio.core.formats import ModelFormat

    files = (("digits_cnn.onnx", ModelFormat.ONNX), ("digits.xml", ModelFormat.OPENVINO),
             ("digits_cnn.tflite", ModelFormat.TFLITE))
    return [(f, rt) for f, fmt in files if (rt := native_runtime(fmt.value))]


def run_self_test(only: list[str] | None = None) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from edgestudio.core.jobs import JobKind, JobSpec
    from edgestudio.core.workspace import Workspace
    from edgestudio.gui.app import apply_theme
    from edgestudio.gui.main_window import MainWindow
    from edgestudio.samples import samples_dir

    t0 = time.perf_counter()
    app = QApplication.instance() or QApplication([])
    apply_theme(app)
    tmp = Path(tempfile.mkdtemp(prefix="edgestudio-selftest-"))
    ws = Workspace(tmp / "workspace")
    window = MainWindow(ws, use_webengine=False, settings=QSettings(str(tmp / "s.ini"), QSettings.Format.IniFormat))
    window.show()
    app.processEvents()
    report: dict[str, object] = {"window_shown_s": round(time.perf_counter() - t0, 2)}
    window._warm_up()  # the charts (pyqtgraph) are built after the window is shown: check they load here too
    report["charts"] = type(window.live).__name__
    sample = samples_dir() / "digits_cnn.onnx"
    jobs = {
        "inspect": JobSpec(JobKind.INSPECT, model=str(sample)),
        "convert": JobSpec(JobKind.CONVERT, model=str(sample), options={"to": "openvino"},
                           output=str(tmp / "digits_cnn.xml")),
        "bench": JobSpec(JobKind.BENCH, model=str(sample), options={"iterations": 200}),  # its format's runtime
    }
    ok = True
    for name, spec in jobs.items():
        job = window.bridge.submit(spec)
        deadline = time.monotonic() + 300
        while not window.bridge.get(job).status.finished and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.01)
        rec = window.bridge.get(job)
        ok &= rec.status.value == "succeeded"
        r = rec.result or {}
        if name == "inspect":
            report[name] = {"status": rec.status.value, "format": r.get("format"), "parameters": r.get("parameters")}
        elif name == "convert":
            report[name] = {"status": rec.status.value, "error": rec.error,
                            "parity": [s.get("parity", {}).get("passed") for s in r.get("steps", [])]}
        else:
            report[name] = {"status": rec.status.value, "error": rec.error,
                            "p50_ms": (r.get("latency_ms") or {}).get("p50")}
    window.shutdown()
    ws.close()
    window.close()  # the window saves its state in its settings on close: removed after it
    window.deleteLater()
    app.processEvents()
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)  # its workspace, settings and converted model: nothing left behind
    rows = capabilities(only)
    print(table(rows), flush=True)
    report["capabilities"] = rows
    report["ok"] = bool(ok) and all(r["status"] != "failed" for r in rows)
    report["seconds"] = round(time.perf_counter() - t0, 2)
    print(json.dumps(report), flush=True)
    sys.stdout.flush()
    return 0 if report["ok"] else 1


def _cli() -> list[str]:
    """The installed executable: the bundle's own, or this Python's ``-m edgestudio``."""
    from edgestudio.core.process import frozen

    return [sys.executable] if frozen() else [sys.executable, "-m", "edgestudio"]


class Skip(Exception):
    """A capability that cannot be checked on this machine (said why)."""


def capabilities(only: list[str] | None = None) -> list[dict[str, Any]]:
    """Run each capability check through the CLI, in a fresh HOME and workspace; one row per check."""
    import shutil

    from edgestudio.samples import samples_dir

    tmp = Path(tempfile.mkdtemp(prefix="edgestudio-selftest-cli-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "EDGESTUDIO_", "XDG_"))}
    env.update(HOME=str(tmp / "home"), XDG_CONFIG_HOME=str(tmp / "config"), XDG_DATA_HOME=str(tmp / "data"),
               XDG_CACHE_HOME=str(tmp / "cache"), EDGESTUDIO_ENVS=str(tmp / "envs"), QT_QPA_PLATFORM="offscreen")
    if os.environ.get("PYTHONPATH") and "-m" in _cli():  # from source: the package as this process found it
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    s = samples_dir()

    def cli(*args: str, timeout: float = 600) -> Any:
        r = subprocess.run([*_cli(), *args, "--json"], capture_output=True, text=True, env=env, cwd=tmp,
                           timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError((r.stderr.strip().splitlines() or [f"exit code {r.returncode}"])[-1][:300])
        return json.loads(r.stdout)

    def p50(d: dict[str, Any]) -> str:
        v = (d.get("latency_ms") or {}).get("p50")
        if not v or v <= 0:
            raise RuntimeError(f"no latency measured: {d}")
        return f"p50 {v:.3f} ms on {d.get('runtime')}/{d.get('device')}"

    def checked(d: dict[str, Any]) -> str:
        steps = d.get("steps") or []
        if d.get("verdict") != "passed" or not steps:
            raise RuntimeError(f"verdict {d.get('verdict')}: " + "; ".join(
                str((st.get("parity") or {}).get("summary")) for st in steps))
        return " -> ".join(str(st.get("converter")) for st in steps) + ": " + str(
            (steps[-1].get("parity") or {}).get("summary", "checked"))[:90]

    def have(module: str) -> None:
        import importlib.util

        if importlib.util.find_spec(module) is None:
            raise Skip(f"{module} is not in this installation")

    def inspect() -> str:
        d = cli("inspect", str(s / "digits_cnn.onnx"))
        return f"{d['format']}, {d['parameters']} parameters"

    def to_openvino() -> str:
        return checked(cli("convert", str(s / "digits_cnn.onnx"), "--to", "openvino", "-o", "digits.xml"))

    def to_tflite() -> str:
        have("onnx2tf")
        return checked(cli("convert", str(s / "digits_cnn.onnx"), "--to", "tflite", "-o", "digits.tflite"))

    def to_tfjs() -> str:
        have("tensorflowjs")
        return checked(cli("convert", str(s / "digits_cnn.keras"), "--to", "tfjs", "-o", "digits_tfjs"))

    def int8_tflite() -> str:
        have("tensorflow")
        d = cli("convert", str(s / "digits_cnn.keras"), "--to", "tflite", "--int8", "--io-type", "int8",
                "--calibration", str(s / "digits_calib.npz"), "-o", "digits_int8.tflite")
        drift = (d.get("details") or {}).get("drift") or {}
        if drift.get("verdict") != "passed":
            raise RuntimeError(f"drift from the float model: {drift.get('verdict')} {drift.get('worst')}")
        return (f"{d['size_bytes']['after'] / 1e3:.0f} kB, int8 in and out; drift from float: worst cosine "
                f"{drift['worst']['cosine']:.4f} on {drift.get('samples')} samples")

    def tflm() -> str:
        have("tflite_micro")
        model = tmp / "digits_int8.tflite"
        if not model.is_file():
            raise Skip("needs the INT8 TFLite model of the 'int8 tflite' check")
        d = cli("package", str(model), "--tflm", "--input", str(s / "digits_test.npz"), "-o", "digits_mcu.zip")
        t = d.get("tflm") or {}
        if not t.get("arena_bytes"):
            raise RuntimeError(f"no arena measured: {t}")
        return f"arena {t['arena_bytes']:,} bytes; {t.get('parity', {}).get('verdict', '?')} against LiteRT"

    def int8_onnx() -> str:
        d = cli("optimize", str(s / "digits_cnn.onnx"), "--method", "int8-static", "--calibration",
                str(s / "digits_calib.npz"), "--dataset", str(s / "digits_test.npz"), "-o", "digits_int8.onnx")
        a, size = d.get("accuracy") or {}, d.get("size_bytes") or {}
        if not a.get("passed"):
            raise RuntimeError(f"accuracy {a}")
        return (f"{size.get('before', 0) / 1e3:.0f} -> {size.get('after', 0) / 1e3:.0f} kB, top-1 "
                f"{a['before']:.3f} -> {a['after']:.3f} on {a.get('n')} samples")

    def bench(model: str, runtime: str, *extra: str) -> Callable[[], str]:
        def run() -> str:
            path = tmp / model if not (s / model).exists() else s / model
            if not path.exists():
                raise Skip(f"needs {model} from an earlier check")
            return p50(cli("bench", str(path), "--runtime", runtime, "--iterations", "50", *extra))
        return run

    def browser() -> str:
        from edgestudio.backends.browser import available_browsers

        if not available_browsers():
            raise Skip("no Chromium-family browser and no QtWebEngine here (apt-get install chromium)")
        from edgestudio.backends.runtimes import RUNTIMES
        from edgestudio.core.formats import ModelFormat

        web = next(n for n, c in RUNTIMES.all().items() if c.in_browser and ModelFormat.ONNX in c.formats)
        return p50(cli("bench", str(s / "digits_cnn.onnx"), "--runtime", web, "--iterations", "20"))

    def environment() -> str:
        from edgestudio.core.process import base_python

        python = base_python()
        if python is None:
            raise Skip("no system python3 (apt-get install python3 python3-venv)")
        from importlib.metadata import version

        try:  # the app's own versions, so the environment's wheels are the ones the app was tested with
            cli("envs", "create", "selftest", *(f"{d}=={version(d)}" for d in ("onnxruntime", "numpy")), timeout=900)
        except RuntimeError as exc:
            if "pip could not install" in str(exc):
                raise Skip(f"the package registry is not reachable: {exc}") from None
            raise
        d = cli("bench", str(s / "digits_cnn.onnx"), "--env", "selftest", "--iterations", "20")
        return f"created with {python}; " + p50(d) + f" by {(d.get('executed_by') or {}).get('python')}"

    def agent() -> str:
        proc = subprocess.Popen([*_cli(), "agent", "serve", "--host", "127.0.0.1", "--port", "0", "--dir",
                                 str(tmp / "agent")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env, cwd=tmp)
        try:
            port = token = None
            deadline = time.monotonic() + 120
            assert proc.stdout is not None
            while time.monotonic() < deadline and not (port and token):
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"the agent did not start: {(proc.stderr.read() if proc.stderr else '')[-300:]}")
                if "listening on" in line:
                    port = line.split("127.0.0.1:")[1].split()[0]
                if line.startswith("token"):
                    token = line.rsplit(" ", 1)[1].strip()
            if not (port and token):
                raise RuntimeError("the agent printed no port or token")
            cli("devices", "add", "selftest", "--host", "127.0.0.1", "--port", port, "--token", token)
            return p50(cli("bench", str(s / "digits_cnn.onnx"), "--target", "agent:selftest", "--iterations", "50"))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()

    checks: list[tuple[str, Callable[[], str]]] = [
        ("inspect", inspect), ("convert openvino", to_openvino), ("convert tflite", to_tflite),
        ("convert tfjs", to_tfjs), ("int8 onnx", int8_onnx), ("int8 tflite", int8_tflite), ("tflm", tflm),
        *((f"bench {rt}", bench(f, rt)) for f, rt in native_benches()),
        ("bench browser", browser), ("environment", environment), ("agent", agent)]
    rows = []
    for name, check in checks:
        if only and name not in only and name.split()[0] not in only:
            continue
        t = time.perf_counter()
        try:
            row = {"capability": name, "status": "ok", "detail": check()}
        except Skip as exc:
            row = {"capability": name, "status": "skipped", "detail": str(exc)}
        except Exception as exc:  # noqa: BLE001 - a failed check is a row of the table, never a traceback
            row = {"capability": name, "status": "failed", "detail": f"{type(exc).__name__}: {exc}"[:400]}
        row["seconds"] = round(time.perf_counter() - t, 1)
        rows.append(row)
    shutil.rmtree(tmp, ignore_errors=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    return "\n".join(f"{r['capability']:<18} {r['status']:<8} {r['seconds']:>6.1f} s  {r['detail']}" for r in rows)
