"""Screenshots of the main screens, made from the real app (offscreen) driving the real flow:
python docs/make_screenshots.py  ->  docs/screenshots/*.png"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "docs" / "screenshots"
SAMPLES = ROOT / "resources" / "samples"


def wait(app, cond, timeout: float = 300.0) -> None:  # type: ignore[no-untyped-def]
    t0 = time.monotonic()
    while not cond():
        app.processEvents()
        time.sleep(0.02)
        if time.monotonic() - t0 > timeout:
            raise TimeoutError("the app did not get there in time")


def main() -> int:
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from edgestudio.core.formats import ModelFormat
    from edgestudio.core.workspace import Workspace
    from edgestudio.gui.app import apply_theme
    from edgestudio.gui.main_window import MainWindow

    app = QApplication([])
    apply_theme(app)
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="edgestudio-shots-"))
    ws = Workspace(tmp / "ws")
    win = MainWindow(ws, use_webengine=False, settings=QSettings(str(tmp / "s.ini"), QSettings.Format.IniFormat))
    win.resize(1500, 900)
    win.show()
    win.optimize.set_sample_dataset(str(SAMPLES / "digits_test.npz"))  # the samples' models are judged on it
    (keras_id,) = win.import_paths([SAMPLES / "digits_cnn.keras"])
    # the conversion wizard, to OpenVINO
    wiz = win.model_action("convert", keras_id)
    wiz.resize(760, 600)
    wiz.next()
    for fmt in (ModelFormat.ONNX, ModelFormat.OPENVINO):
        wiz.target_page.boxes[fmt].setChecked(True)
    wiz.next()
    wiz.grab().save(str(OUT / "wizard-options.png"))
    wiz.next()
    wiz.next()
    wait(app, wiz.run_page.isComplete)
    wiz.grab().save(str(OUT / "wizard-parity-report.png"))
    wiz.close()
    tfl = win.convert_dropped(keras_id, "tflite")
    wait(app, lambda: win.jobs.status_of(tfl) == "succeeded")
    models = {m.format.value: m for m in ws.models()}
    onnx = models["onnx"]
    win.browser.select(onnx.id)
    win.details.tabs.setCurrentIndex(1)
    wait(app, lambda: win.details.ops.rowCount() > 0)
    # the optimization panel: INT8 static for ONNX Runtime with the digits calibration set
    win.model_action("optimize", onnx.id)
    win.optimize.runtime.setCurrentText("onnxruntime")
    win.optimize.method.setCurrentText("int8-static")
    win.optimize.calibration.set_text(str(SAMPLES / "digits_calib.npz"))
    win.grab().save(str(OUT / "optimize-panel.png"))
    job = win.optimize.run()
    wait(app, lambda: win.jobs.status_of(job) == "succeeded")
    # the quantized variant: its drift from the FP32 parent, next to it in Details
    app.processEvents()
    variant = max(ws.models(), key=lambda m: m.id)
    win.browser.select(variant.id)
    win.details.tabs.setCurrentIndex(0)
    wait(app, lambda: "drift" in win.details.title.text())
    win.grab().save(str(OUT / "variant-drift.png"))
    # the Inputs editor on a real stateful model (silero-vad: a sample rate that must be 16000)
    from tests.helpers import real_models

    if real_models.available():
        import numpy as np

        (vad,) = win.import_paths([real_models.model("silero_vad.onnx")])
        win.browser.select(vad)
        wait(app, lambda: win.details.inputs.table.rowCount() == 3)
        np.savez(tmp / "vad.npz", **real_models.vad_inputs(4))
        win.details.inputs.data.setText(str(tmp / "vad.npz"))
        win.details.inputs.table.item(2, 4).setText("16000")
        win.details.inputs.save_button.click()
        win.details.tabs.setCurrentWidget(win.details.inputs)
        app.processEvents()
        win.grab().save(str(OUT / "inputs-editor.png"))
        win.details.tabs.setCurrentIndex(0)
    # a live benchmark, caught while it runs
    bench = win.benchmark(models["openvino"].id, iterations=40_000)
    wait(app, lambda: win.live.points > 8000)
    settle = time.monotonic() + 0.6  # let the throttled redraw catch up with the stream
    wait(app, lambda: time.monotonic() > settle)
    win.grab().save(str(OUT / "live-benchmark.png"))
    wait(app, lambda: win.jobs.status_of(bench) == "succeeded")
    app.processEvents()
    win.grab().save(str(OUT / "main-window.png"))
    # the comparison of all variants, with the Pareto front
    ids = [m.id for m in ws.models() if m.format.value in ("onnx", "tflite", "openvino") and "silero" not in m.name]
    win.browser.select(ids[0])
    setup = win.compare_dialog(ids)
    setup.resize(560, 620)
    app.processEvents()
    setup.grab().save(str(OUT / "compare-setup.png"))
    setup.iterations.setValue(200)
    setup.run_button.click()
    wait(app, lambda: win.comparison.rows and not win._compare and win.comparisons())  # the paired round too
    app.processEvents()
    win.docks["charts"].setMinimumWidth(900)
    app.processEvents()
    win.grab().save(str(OUT / "comparison.png"))
    win.comparison.export_figure(OUT / "comparison-view.png")  # what File ▸ Export as PNG writes
    win.shutdown()
    ws.close()
    # the graph view needs QtWebEngine set up before Qt starts: a process of its own
    import subprocess

    subprocess.run([sys.executable, "-m", "tests.helpers.netron_probe", str(SAMPLES / "digits_cnn.onnx"),
                    str(OUT / "netron-graph.png")], cwd=ROOT, check=False, timeout=300)
    print("\n".join(str(p) for p in sorted(OUT.glob("*.png"))), flush=True)
    win.close()
    app.processEvents()
    shutil.rmtree(tmp, ignore_errors=True)  # the session's workspace (os._exit runs no clean-up)
    sys.stderr.flush()
    os._exit(0)  # PySide6 can crash while finalizing the interpreter after a session like this one


if __name__ == "__main__":
    raise SystemExit(main())
