"""``edgestudio --self-test``: open the main window offscreen, run an inspection, a conversion and a
benchmark on the bundled sample through the worker pool, print the results, exit 0 (1 on any failure).
It checks that an installed bundle works: Qt, the worker processes, the runtimes and the converters."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path


def run_self_test() -> int:
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
        "bench": JobSpec(JobKind.BENCH, model=str(sample), runtime="onnxruntime", options={"iterations": 200}),
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
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)  # its workspace and converted model: nothing left behind
    report["ok"] = bool(ok)
    report["seconds"] = round(time.perf_counter() - t0, 2)
    print(json.dumps(report), flush=True)
    window.close()
    sys.stdout.flush()
    return 0 if ok else 1
