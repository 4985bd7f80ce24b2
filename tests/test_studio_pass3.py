"""The studio's third pass (issue 28): a new user on a real third-party model with dynamic input dims (PP-OCR's
direction classifier, x [-1, 3, -1, -1]), with real widgets, real runtimes and real text images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, SAMPLES
from tests.helpers import real_models as rm

needs_ocr = pytest.mark.skipif(not rm.available(), reason="real models not fetched: make real-models")
SHAPE = "1,3,48,192"


def shot(widget, name: str) -> None:  # type: ignore[no-untyped-def]
    """Save what a screen looks like (EDGESTUDIO_SHOTS=folder): each changed screen is looked at."""
    folder = os.environ.get("EDGESTUDIO_SHOTS")
    if folder:
        from PySide6.QtWidgets import QApplication

        for _ in range(3):  # the layout settles (a wrapped label's height) before the picture
            QApplication.processEvents()
        Path(folder).mkdir(parents=True, exist_ok=True)
        widget.grab().save(str(Path(folder) / f"{name}.png"))


@pytest.fixture
def ocr_lines(tmp_path: Path) -> Path:
    data = tmp_path / "lines.npz"
    np.savez(data, x=rm.ppocr_line_input(n=12))
    return data


def import_ocr(qtbot, window, data: Path | None = None) -> int:  # type: ignore[no-untyped-def]
    """Import the classifier and save its inputs in Details ▸ Inputs to use, as a user does: the shape, and the
    text lines when given."""
    (model_id,) = window.import_paths([rm.model("ppocr_cls.onnx")])
    window.browser.select(model_id)
    editor = window.details.inputs
    qtbot.waitUntil(lambda: editor.table.rowCount() == 1, timeout=60_000)
    editor.table.item(0, 3).setText(SHAPE)
    if data is not None:
        editor.data.setText(str(data))
    editor.save_button.click()
    assert window.inputs_for(model_id)["shapes"] == {"x": [1, 3, 48, 192]}
    return model_id


def quantize_in_panel(qtbot, window, runtime: str, calibration: Path, timeout: int = 300_000,  # type: ignore[no-untyped-def]
                      **fields: str):
    """INT8 (int8-static) of the selected model from the Optimize panel, calibrated on ``calibration`` (``fields``:
    the runtime's own options, as the form sets them); its job, once it has ended."""
    panel = window.optimize
    panel.runtime.setCurrentText(runtime)
    panel.method.setCurrentText("int8-static")
    for name, value in fields.items():
        panel.form.set_value(name, value)
    panel.calibration.set_text(str(calibration))
    job = panel.run()
    qtbot.waitUntil(lambda: job not in panel._jobs, timeout=timeout)
    return job


def job_rows(window) -> dict[str, tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    """job id -> (what, status, where) as the Jobs panel shows them."""
    return {j: (it.text(0), it.text(2), it.text(6)) for j, it in window.jobs._items.items()}


@needs_ocr
def test_profile_and_the_jobs_panel_use_the_model_s_saved_shape(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    """Profile layers on a model whose dims are dynamic runs on the saved shape (it failed "give its shape with
    --shape" and had no shape field); the dialog and the Jobs panel say which inputs it ran on."""
    model_id = import_ocr(qtbot, window)
    dlg = window.model_action("profile", model_id)
    qtbot.addWidget(dlg)
    assert "x=1x3x48x192" in dlg.inputs_used.text()
    qtbot.waitUntil(lambda: dlg.result is not None or "failed" in dlg.status.text(), timeout=120_000)
    assert dlg.result is not None, dlg.status.text()
    assert dlg.layers.rowCount() > 0
    rows = job_rows(window)
    assert rows[dlg.job][0] == "profile layers" and "x=1x3x48x192" in rows[dlg.job][2]
    assert window.jobs._logs[dlg.job][0] == "inputs: x=1x3x48x192"
    shot(dlg, "profile-dynamic")


@needs_ocr
def test_data_stays_with_its_model(qtbot, window, ocr_lines: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The optimize panel, the comparison and the deployment package take each model's own data: the digits'
    evaluation split never reaches the OCR model's jobs, and the OCR model's calibration never the digits'."""
    window.optimize.set_sample_dataset(str(SAMPLES / "digits_test.npz"))
    (digits,) = window.import_paths([SAMPLES / "digits_cnn.onnx"])
    window.browser.select(digits)
    panel = window.optimize
    assert panel.dataset.text() == str(SAMPLES / "digits_test.npz")
    panel.calibration.set_text(str(SAMPLES / "digits_calib.npz"))
    panel.calibration.edit.editingFinished.emit()  # what a user's typing ends with
    ocr = import_ocr(qtbot, window)
    window.browser.select(ocr)
    assert panel.calibration.text() is None and panel.dataset.text() is None  # nothing of the digits
    panel.calibration.set_text(str(ocr_lines))
    panel.calibration.changed.emit(str(ocr_lines))
    window.browser.select(digits)
    assert panel.calibration.text() == str(SAMPLES / "digits_calib.npz")
    window.browser.select(ocr)
    assert panel.calibration.text() == str(ocr_lines)
    # the comparison: each variant's own evaluation data, none for the OCR model
    dlg = window.model_action("compare", ocr)
    qtbot.addWidget(dlg)
    assert dlg.dataset.text() == ""
    dlg.set_checked([ocr], [("onnxruntime", "CPU")])
    assert "no top-1 for ppocr_cls.onnx" in dlg.data_note.text() and "digits" not in dlg.data_note.text()
    dlg.set_checked([ocr, digits], [("onnxruntime", "CPU")])
    assert "digits_cnn.onnx on digits_test.npz" in dlg.data_note.text()
    shot(dlg, "compare-setup-data")
    dlg.close()
    # the deployment package: a dialog with its options; the OCR model's own (no) evaluation data, its shape
    pkg = window.model_action("package", ocr)
    qtbot.addWidget(pkg)
    assert pkg.dataset.text() == "" and "x=1x3x48x192" in pkg.inputs_used.text()
    shot(pkg, "package-dialog")
    pkg.output.setText(str(tmp_path / "cls.zip"))
    pkg.build_button.click()
    qtbot.waitUntil(lambda: any(r[0] == "package" for r in job_rows(window).values()), timeout=10_000)
    job = next(j for j, r in job_rows(window).items() if r[0] == "package")
    assert "x=1x3x48x192" in job_rows(window)[job][2]
    qtbot.waitUntil(lambda: window.jobs.status_of(job) in ("succeeded", "failed", "cancelled"), timeout=180_000)
    assert window.jobs.status_of(job) == "succeeded", window.jobs.error_of(job)
    assert (tmp_path / "cls.zip").is_file()


@needs_ocr
def test_convert_debug_and_rescue_run_on_the_saved_inputs(qtbot, window, ocr_lines: Path) -> None:  # type: ignore[no-untyped-def]
    """The wizard's TFLite conversion (onnx2tf failed "Dimension -1 must be >= 0"), Why did accuracy drop? and Rescue
    on a variant of a model whose dims are dynamic: each runs on the shape and text lines saved with the model, and
    says so. The microcontroller plan names the conversion its run makes."""
    from edgestudio.core.formats import ModelFormat
    from tests.conftest import convert_in_wizard

    model_id = import_ocr(qtbot, window, ocr_lines)
    wizard = window.model_action("convert", model_id)
    qtbot.addWidget(wizard)
    wizard.next()
    wizard.target_page.boxes[ModelFormat.TFLITE].setChecked(True)
    assert wizard.target_page.mcu.isEnabled()
    wizard.target_page.mcu.setChecked(True)
    wizard.next()
    wizard.options_page.calibration.set_text(str(ocr_lines))
    wizard.next()
    plan = wizard.plan_page.text.text()
    assert "onnx2tf-savedmodel</b> → savedmodel → <b>int8-static (LiteRT)" in plan, plan
    assert plan.count("not installed") <= 1 and "x=1x3x48x192, " in plan or "x=1x3x48x192" in plan
    shot(wizard, "wizard-plan-dynamic")
    wizard.close()
    wizard = convert_in_wizard(qtbot, window, model_id, ModelFormat.TFLITE, timeout=600_000)
    assert not wizard.errors, wizard.errors
    (result,) = wizard.results.values()
    assert result["steps"][-1]["parity"]["verdict"] == "passed"
    assert result["steps"][-1]["parity"]["inputs"]["shapes"]["x"] == [1, 3, 48, 192]
    # Why did accuracy drop? on the conversion: onnx2tf renames every tensor, nothing pairs: no verdict from nothing
    tflite = next(m for m in window.workspace.models() if m.format is ModelFormat.TFLITE)
    why = window.model_action("why", tflite.id)
    qtbot.addWidget(why)
    qtbot.waitUntil(lambda: why.result is not None or "failed" in why.status.text(), timeout=300_000)
    assert why.result is not None, why.status.text()
    if why.result["matched"] == 0:
        assert why.result["verdict"] == "inconclusive" and "could be paired" in why.status.text()
        assert "every matched layer agrees" not in why.status.text()
    assert "8 of the 12 samples in lines.npz" in why.status.text()
    shot(why, "why-nothing-paired")
    why.close()
    # an ONNX Runtime INT8 variant from the panel, calibrated on the lines
    window.browser.select(model_id)
    quantize_in_panel(qtbot, window, "onnxruntime", ocr_lines)
    panel = window.optimize
    assert "done" in panel.message.text(), panel.message.text()
    variant = max(window.workspace.models(), key=lambda m: m.id)
    assert variant.parent_id == model_id and variant.format is ModelFormat.ONNX
    dlg = window.model_action("why", variant.id)
    qtbot.addWidget(dlg)
    assert "x=1x3x48x192" in dlg.inputs_used.text() and "lines.npz" in dlg.inputs_used.text()
    qtbot.waitUntil(lambda: dlg.result is not None or "failed" in dlg.status.text(), timeout=300_000)
    assert dlg.result is not None, dlg.status.text()
    assert dlg.result["samples"] == 8 and "8 of the 12 samples in lines.npz" in dlg.status.text()
    outs = dlg.result["outputs"]
    if dlg.result["first_diverging"] is not None and outs["verdict"] == "passed" and all(
            o["cosine"] >= 0.9999 for o in outs["outputs"]):
        assert "the child diverges" not in dlg.status.text()  # a layer inside parts, the outputs are the parent's
    elif dlg.result["first_diverging"] is not None:  # INT8 within its guard at the outputs, lossy inside: it diverges
        assert "the child diverges" in dlg.status.text()
    dlg.run_rescue()
    qtbot.waitUntil(lambda: dlg.rescue_result is not None or "rescue failed" in dlg.status.text(), timeout=600_000)
    assert dlg.rescue_result is not None, dlg.status.text()
    if dlg.rescue_result["best_step"] == 0:  # plain INT8 was the best (or met the guard): nothing added
        assert dlg.rescue_result["output"] is None and "nothing" in dlg.status.text()
    rows = job_rows(window)
    assert rows[dlg.rescue_job][0] == "rescue" and "x=1x3x48x192" in rows[dlg.rescue_job][2]
    shot(dlg, "why-dynamic")


@needs_ocr
def test_openvino_reads_a_full_int8_tflite_as_litert_does(qtbot, window, ocr_lines: Path) -> None:  # type: ignore[no-untyped-def]
    """A full-INT8 TFLite of the classifier (int8 I/O) on LiteRT and OpenVINO: OpenVINO was fed float samples cast
    to int8 (top-1 0.10 where LiteRT read 0.978). Its session now quantizes the feeds with the tensors' own
    parameters, as LiteRT's does: the comparison ranks both, flags neither, and OpenVINO called directly on the
    quantized lines gives ONNX Runtime's classes on the parent."""
    import onnxruntime as ort
    import openvino as ov
    from ai_edge_litert.interpreter import Interpreter

    from edgestudio.core.formats import ModelFormat

    model_id = import_ocr(qtbot, window)  # the shape only: random data, as the user who met it
    window.browser.select(model_id)
    quantize_in_panel(qtbot, window, "litert", ocr_lines, timeout=600_000, io_type="int8")
    panel = window.optimize
    assert "done" in panel.message.text(), panel.message.text()
    int8 = max(window.workspace.models(), key=lambda m: m.id)
    assert int8.format is ModelFormat.TFLITE and window.browser.current_id() == model_id  # the selection stays
    # independently: LiteRT's and OpenVINO's answers are the parent's (ONNX Runtime on the same lines)
    x = np.load(ocr_lines)["x"]
    ref = [int(np.argmax(ort.InferenceSession(str(rm.model("ppocr_cls.onnx"))).run(None, {"x": s})[0])) for s in x]
    (inp,) = Interpreter(model_path=int8.path).get_input_details()
    scale, zero = inp["quantization"]
    q = [np.clip(np.round(s_.transpose(0, 2, 3, 1) / scale + zero), -128, 127).astype(np.int8) for s_ in x]
    it = Interpreter(model_path=int8.path)
    it.allocate_tensors()
    got = []
    for s_ in q:
        it.set_tensor(inp["index"], s_)
        it.invoke()
        got.append(int(np.argmax(it.get_tensor(it.get_output_details()[0]["index"]))))
    compiled = ov.Core().compile_model(int8.path, "CPU")
    assert ref == got == [int(np.argmax(compiled(s_)[0])) for s_ in q]

    window.compare([int8.id], iterations=30, targets=[("litert", "CPU"), ("openvino", "CPU")])
    qtbot.waitUntil(lambda: not window._compare and window._paired_job is None and not window._agree_jobs,
                    timeout=300_000)
    rows = window.comparison.rows
    assert {r["runtime"] for r in rows} == {"litert", "openvino"} and not any(r.get("flag") for r in rows), rows
    table = window.comparison.table
    assert {table.item(i, 0).text() for i in range(table.rowCount())} <= {"#1", "#2"}


BROKEN = """
from edgestudio.backends.runtimes.base import RUNTIMES, DeviceInfo, Runtime
from edgestudio.backends.runtimes.onnxruntime import OnnxRuntime


@RUNTIMES.register
class ShiftedOrt(Runtime):
    \"\"\"ONNX Runtime whose every output comes back rolled by one class: a runtime with a wrong answer.\"\"\"
    name = "shiftedort"
    label = "Shifted ONNX Runtime"
    formats = OnnxRuntime.formats
    requires = ("onnxruntime",)

    def devices(self):
        return [DeviceInfo("shiftedort", "CPU", "a runtime with a wrong answer (test)")]

    def load(self, path, *, device="CPU", threads=None, precision=None):
        import numpy as np

        session = OnnxRuntime().load(path, threads=threads)
        run = session.run
        session.run = lambda feeds: {k: np.roll(v, 1, axis=-1) for k, v in run(feeds).items()}
        session.runtime = "shiftedort"
        return session
"""


def test_a_runtime_s_wrong_answer_is_flagged_not_ranked(qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """A runtime whose outputs depart from the model's own runtime on the same inputs (built here: ONNX Runtime with
    its classes rolled by one, declared in an extra catalog file): the comparison flags its row and says which
    runtime it disagrees with, lists it after the others, unranked, never on the Pareto front; the table shows one
    p50 per row (the paired one, with its interval), its own run on hover, and a noisy run says so."""
    from PySide6.QtCore import QSettings

    from edgestudio.core.workspace import Workspace
    from edgestudio.gui.main_window import MainWindow

    (tmp_path / "shifted_mod.py").write_text(BROKEN)
    toml = tmp_path / "extra.toml"
    toml.write_text('[[runtime]]\nname = "shiftedort"\nlabel = "Shifted ONNX Runtime"\nmodule = "shifted_mod"\n'
                    'formats = ["onnx"]\npip = ["onnxruntime"]\n')
    monkeypatch.setenv("EDGESTUDIO_CATALOG", str(toml))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), str(ROOT)]))
    monkeypatch.syspath_prepend(str(tmp_path))
    ws = Workspace(tmp_path / "ws")
    window = MainWindow(ws, use_webengine=False, settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    try:
        (model_id,) = window.import_paths([SAMPLES / "digits_cnn.onnx"])
        window.compare([model_id], iterations=30, targets=[("onnxruntime", "CPU"), ("shiftedort", "CPU")])
        qtbot.waitUntil(lambda: not window._compare and window._paired_job is None and not window._agree_jobs,
                        timeout=300_000)
        rows = window.comparison.rows
        flagged = [r for r in rows if r.get("flag")]
        assert [r["runtime"] for r in flagged] == ["shiftedort"], [(r["runtime"], r.get("flag")) for r in rows]
        assert "onnxruntime/CPU" in flagged[0]["flag"]
        assert rows[-1] is flagged[0] and not rows[-1]["pareto"]  # after the others, never on the front
        table = window.comparison.table
        assert table.item(table.rowCount() - 1, 0).text() == "⚠" and table.item(0, 0).text() == "#1"
        # no parent to tell which is right: the model's own runtime is the reference, and the row says they disagree
        assert "runtimes disagree: shiftedort/CPU" in table.item(table.rowCount() - 1, 9).text()
        assert "wrong answer" in window.comparison.title.text()
        shot(window.comparison, "comparison-flagged")
        # a noisy run (its p99 thirty times its p50) is said beside its row, in the table and the CSV
        from edgestudio.bench.compare import finalize_rows

        noisy = [dict(r) for r in rows]
        noisy[0]["p99_ms"] = 30 * noisy[0]["p50_ms"]
        window.comparison.set_rows(finalize_rows(noisy))
        i = next(k for k, r in enumerate(window.comparison.rows) if r["runtime"] == noisy[0]["runtime"])
        assert "noisy run: p99" in table.item(i, 9).text() and "30x its p50" in table.item(i, 4).toolTip()
    finally:
        window.shutdown()
        ws.close()


def test_rescue_adds_nothing_when_plain_int8_meets_the_guard(tmp_path: Path) -> None:
    """A variant with no drop: plain INT8 is what the user has already; "0 layer(s) kept in float" is no rescue."""
    from edgestudio.optimization.rescue import rescue

    d = rescue(SAMPLES / "digits_cnn.onnx", tmp_path / "rescued.onnx", runtime="onnxruntime", method="int8-static",
               options={"calibration": str(SAMPLES / "digits_calib.npz"), "dataset": str(SAMPLES / "digits_test.npz")},
               max_drop=0.05, iterations=20)
    assert d["passed"] and d["best_step"] == 0 and d["output"] is None and not (tmp_path / "rescued.onnx").exists()
    assert "nothing to rescue" in d["stopped"]


def test_a_desktop_without_qt_s_xcb_libraries_is_told_what_to_install(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    """On an X desktop lacking a library Qt's xcb plugin loads, the studio names the package instead of Qt's raw
    abort (a fresh Debian lacked libxcb-cursor0)."""
    from edgestudio.gui import app

    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.setattr(app, "XCB_LIBRARIES", {**app.XCB_LIBRARIES, "edgestudio-no-such-lib": "libxcb-cursor0"})
    assert app.main([]) == 1
    err = capsys.readouterr().err
    assert "sudo apt install libxcb-cursor0" in err and "Traceback" not in err


def test_microcontroller_rescue_and_distill_jobs_have_rows(qtbot) -> None:  # type: ignore[no-untyped-def]
    """The studio's own calls (device list, inspection) stay out of the Jobs panel; the user's work done as calls
    (microcontroller, rescue, distill, recipes, profile) gets a row, named, with its inputs, as the CLI's `jobs`."""
    from edgestudio.core.jobs import JobKind, JobSpec
    from edgestudio.gui.jobs_panel import JobsPanel

    panel = JobsPanel()
    qtbot.addWidget(panel)
    inputs = {"data": None, "shapes": {"x": [1, 3, 48, 192]}, "values": {}}
    for job, function, kwargs in (
            ("mcu", "edgestudio.app.pipelines:run_microcontroller", {"model": "m.onnx", "inputs": inputs}),
            ("rescue", "edgestudio.optimization.rescue:rescue", {"parent": "m.onnx", "inputs": inputs}),
            ("distill", "edgestudio.optimization.distill:distill", {"teacher": "t.keras"}),
            ("devices", "edgestudio.execution.remote:all_device_dicts", {})):
        panel.on_queued(job, JobSpec(JobKind.CALL, model="m.onnx", options={"function": function,
                                                                            "kwargs": kwargs}).to_dict())
    assert set(panel._items) == {"mcu", "rescue", "distill"}
    assert [panel._items[j].text(0) for j in ("mcu", "rescue", "distill")] == ["microcontroller", "rescue", "distill"]
    assert panel._items["mcu"].text(6).endswith("x=1x3x48x192") and panel._logs["rescue"] == ["inputs: x=1x3x48x192"]
