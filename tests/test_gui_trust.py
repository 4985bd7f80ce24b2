"""The trust issue's face in the studio: the Inputs editor (remembered per model, used by every job), parity
verdicts in the wizard, drift figures next to optimized variants. Real widgets, real jobs, offscreen."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from edgestudio.gui.main_window import MainWindow
from tests.conftest import SAMPLES
from tests.helpers import real_models as rm

LONG = 240_000


@pytest.mark.skipif(not rm.available(), reason="real models not fetched")
def test_inputs_editor_is_remembered_and_drives_the_benchmark(qtbot, window: MainWindow, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (model_id,) = window.import_paths([rm.model("silero_vad.onnx")])
    window.show_model(model_id)
    editor = window.details.inputs
    qtbot.waitUntil(lambda: editor.table.rowCount() == 3, timeout=60_000)
    assert [editor.table.item(r, 0).text() for r in range(3)] == ["input", "state", "sr"]
    data = tmp_path / "vad.npz"
    np.savez(data, **rm.vad_inputs(2))
    editor.data.setText(str(data))
    editor.table.item(2, 4).setText("16000")  # sr: a fixed value
    window.details.tabs.setCurrentWidget(editor)
    editor.save_button.click()
    assert window.workspace.inputs_for(model_id) == {"data": str(data), "shapes": {}, "values": {"sr": 16000.0}}
    editor.grab().save(str(tmp_path / "inputs-editor.png"))
    job = window.benchmark(model_id, iterations=20)
    qtbot.waitUntil(lambda: window.bridge.manager.get(job).status.finished, timeout=LONG)
    rec = window.bridge.manager.get(job)
    assert rec.status.value == "succeeded", rec.error  # without the inputs it cannot run at all
    assert rec.result["input_shapes"] == {"input": [1, 512], "state": [2, 1, 128], "sr": []}
    # a bad name in the data file is one line in the editor, nothing saved
    np.savez(tmp_path / "bad.npz", audio=np.zeros((1, 512), np.float32))
    editor.data.setText(str(tmp_path / "bad.npz"))
    editor.save_button.click()
    assert "not an input of this model" in editor.status.text()
    assert window.workspace.inputs_for(model_id)["data"] == str(data)


def test_optimized_variant_shows_its_drift(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    (model_id,) = window.import_paths([SAMPLES / "digits_cnn.onnx"])
    window.show_model(model_id)
    panel = window.optimize
    panel.runtime.setCurrentText("onnxruntime")
    panel.method.setCurrentText("int8-static")
    panel.calibration.set_text(str(SAMPLES / "digits_calib.npz"))
    job = panel.run()
    qtbot.waitUntil(lambda: window.bridge.manager.get(job).status.finished, timeout=LONG)
    assert window.bridge.manager.get(job).status.value == "succeeded", window.bridge.manager.get(job).error
    qtbot.waitUntil(lambda: len(window.workspace.children(model_id)) >= 1, timeout=30_000)
    child = window.workspace.children(model_id)[-1]
    leaf = (window.workspace.children(child.id) or [child])[-1]
    window.show_model(leaf.id)
    text = window.details.title.text()
    assert "drift vs FP32" in text and "passed" in text and "cosine" in text, text
    window.refresh()
    badge = window.browser.item_for(leaf.id).text(3)  # the figure next to the variant in the browser
    assert re.fullmatch(r"cos [01]\.\d{5} ✓", badge), badge


def test_devices_are_detected_at_start(qtbot, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    """The start-up device job once failed (run_call passed ctx= to device_dicts): every runtime showed only CPU
    and none came from the runtimes themselves."""
    qtbot.waitUntil(lambda: bool(window.devices), timeout=60_000)
    runtimes = {d["runtime"] for d in window.devices}
    assert {"onnxruntime", "openvino", "litert"} <= runtimes
    assert all(d["description"] for d in window.devices)  # as the runtimes describe them, not a placeholder
