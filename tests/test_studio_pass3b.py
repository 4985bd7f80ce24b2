"""The studio's third pass, items 7 and 8 (issue 28): the smaller things a new user met on PP-OCR's direction
classifier (x [-1, 3, -1, -1]), a real third-party model with dynamic dims, with real widgets and runtimes."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SAMPLES
from tests.helpers import real_models as rm
from tests.test_studio_pass3 import import_ocr, job_rows, quantize_in_panel, shot

needs_ocr = pytest.mark.skipif(not rm.available(), reason="real models not fetched: make real-models")


@pytest.fixture
def ocr_lines(tmp_path: Path) -> Path:
    data = tmp_path / "lines.npz"
    np.savez(data, x=rm.ppocr_line_input(n=12))
    return data


def wait_job(qtbot, window, job: str, timeout: int = 300_000) -> str:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: window.jobs.status_of(job) in ("succeeded", "failed", "cancelled"), timeout=timeout)
    return str(window.jobs.status_of(job))


def test_the_core_s_command_line_words_are_said_in_the_studio_s_terms() -> None:
    """One function maps the core's CLI phrasing to the studio's, and names the control that fixes it."""
    from edgestudio.gui.wording import ended_html, ended_text, fix_for, studio_text

    dyn = ("ppocr_cls.onnx: input 'x' has dynamic dims [-1, 3, -1, -1]: give its shape with --shape x=1,3,N,N "
           "(or real data with --input)")
    for text in (dyn, "drift on 32 samples of your --input", "pass the original Keras/SavedModel, or pick another "
                 "--runtime", "int8-static needs calibration data: --calibration DATA (.npz/.npy, an image folder, "
                 "or 'random')", "needs --shape for x (dynamic dims)", "fix the dynamic dims with --shape NAME=dims "
                 "(or real data with --input)", "checked on random inputs only, which cannot speak for real data: "
                 "give --input, --dataset or real --calibration samples"):
        assert "--" not in studio_text(text), studio_text(text)
    assert "Details ▸ Inputs to use" in studio_text(dyn) and "x = 1,3,N,N" in studio_text(dyn)
    assert fix_for(dyn).action == "inputs" and fix_for("or pick another --runtime").action == "runtime"
    assert fix_for("a model that cannot be read") is None
    assert ended_text("cancelled", None) == "cancelled (by you)" and "None" not in ended_html("cancelled", None)
    assert ended_text("failed", "boom") == "failed: boom"


def test_a_job_log_folds_tables_and_colour_codes() -> None:
    """onnx2tf's tables (box-drawing rows, hundreds of them) fold into one line each; colour codes go."""
    from edgestudio.gui.jobs_panel import summarise_log

    table = ["┏━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━┓", "┃ ONNX output   ┃ TF output         ┃",
             "┡━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━┩", *[f"│ node_{i:<9} │ Matches           │" for i in range(40)],
             "└───────────────┴───────────────────┘"]
    raw = ["\x1b[32mINFO:\x1b[0m onnx_op_type: Conv", *table, "checked", "+-----+-----+", "| a   | b   |", "+-----+-----+",
           "saved model.tflite"]
    out = summarise_log(raw)
    assert out[0] == "INFO: onnx_op_type: Conv" and out[-1] == "saved model.tflite"
    assert out[1].startswith(f"[a table of {len(table)} lines: ONNX output TF output") and "Raw log" in out[1]
    assert out[2] == "checked" and out[3].startswith("[a table of 3 lines: a b") and len(out) == 5


@needs_ocr
def test_cli_words_become_studio_terms_with_a_button_that_fixes_it(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    """The classifier imported as it is (no shape saved): the details say its MACs need a shape, with a link; a
    benchmark fails for want of one, and the Jobs panel says so in the studio's words with a button that opens
    Details ▸ Inputs to use. Why did accuracy drop? is not offered on an imported model (it has no parent)."""
    (model_id,) = window.import_paths([rm.model("ppocr_cls.onnx")])
    window.browser.select(model_id)
    qtbot.waitUntil(lambda: "MACs" in window.details.summary.text(), timeout=60_000)
    summary = window.details.summary.text()
    assert "--shape" not in summary and "needs a shape for x" in summary and "href='inputs'" in summary
    window.details.summary.linkActivated.emit("inputs")
    assert window.details.tabs.currentWidget() is window.details.inputs
    window.details.tabs.setCurrentIndex(0)
    assert not window.actions_["why"].isEnabled() and not window.actions_["explore_parent"].isEnabled()
    assert "no parent" in window.actions_["why"].toolTip()

    job = window.benchmark(model_id, iterations=20)
    assert wait_job(qtbot, window, job, 120_000) == "failed"
    item = window.jobs._items[job]
    assert "--" not in item.text(2) and "Details ▸ Inputs to use" in item.text(2), item.text(2)
    window.jobs.tree.setCurrentItem(item)
    assert window.jobs.fix_button.isVisible() and window.jobs.fix_button.text() == "Set the inputs…"
    assert "--shape" not in window.jobs.log.toPlainText()
    shot(window.jobs, "jobs-fix-button")
    window.jobs.fix_button.click()
    assert window.details.tabs.currentWidget() is window.details.inputs
    assert window.browser.current_id() == model_id


@needs_ocr
def test_an_int8_model_larger_than_its_parent_is_said_and_the_panel_stays_on_the_parent(  # type: ignore[no-untyped-def]
        qtbot, window, ocr_lines: Path) -> None:
    """ONNX Runtime INT8 of the classifier: 572 -> 737 KB (BatchNormalization left unfolded). The panel, the job's
    log, the status bar and the variant's details say it is larger and why; the selection and the optimize panel
    stay on the parent, so a second click quantizes the parent again, never the quantized model."""
    model_id = import_ocr(qtbot, window, ocr_lines)
    parent = window.workspace.model(model_id)
    qtbot.waitUntil(lambda: parent.path in window._info, timeout=60_000)  # its ops: the cause is named
    job = quantize_in_panel(qtbot, window, "onnxruntime", ocr_lines)
    panel = window.optimize
    variant = max(window.workspace.models(), key=lambda m: m.id)
    assert variant.parent_id == model_id
    grew = variant.size_bytes > parent.size_bytes
    text = panel.message.text()
    assert "done" in text, text
    if grew:
        assert "larger than its parent" in text and "BatchNormalization" in text, text
        assert any(line.startswith("note:") and "larger than its parent" in line for line in window.jobs._logs[job])
    shot(panel, "optimize-larger-than-parent")
    # the selection and the panel stay on the parent; a second run quantizes the parent again
    assert window.browser.current_id() == model_id and panel.entry.id == model_id
    assert "ppocr_cls.onnx" in panel.model_label.text()
    second = panel.run()
    assert window.bridge.get(second).spec.model == parent.path
    window.bridge.cancel(second)
    # the variant's details say it too
    window.browser.select(variant.id)
    assert window.actions_["why"].isEnabled()  # a variant has a parent to compare with
    qtbot.waitUntil(lambda: variant.path in window._info, timeout=60_000)
    if grew:
        assert window.details.size_note.isVisible() and "larger than its parent" in window.details.size_note.text()
    shot(window.details, "details-larger-than-parent")


@needs_ocr
def test_benchmark_settings_are_remembered_and_memory_is_the_model_s_own(qtbot, window, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Benchmark with settings, for a duration: the job says runs and seconds (it said "iteration 0 — 12 s"), the
    live panel gives the model's own memory beside the worker's peak, the details keep both, and the dialog opens
    next time with the same settings. A restored session shows the last benchmark on the live chart and where each
    job ran."""
    from PySide6.QtCore import QSettings

    from edgestudio.core.workspace import Workspace
    from edgestudio.gui.main_window import MainWindow

    model_id = import_ocr(qtbot, window)
    dlg = window.model_action("bench_settings", model_id)
    qtbot.addWidget(dlg)
    dlg.runtime.setCurrentText("onnxruntime")
    dlg.use_duration.setChecked(True)
    dlg.duration.setValue(2.0)
    dlg.warmup.setValue(3)
    dlg.run_button.click()
    job = next(j for j in window._bench_jobs)
    messages: list[str] = []
    window.bridge.progress.connect(lambda j, f, m: messages.append(m) if j == job else None)
    assert wait_job(qtbot, window, job, 120_000) == "succeeded", window.jobs.error_of(job)
    runs = [m for m in messages if "runs," in m]
    assert runs and not any(m == "iteration 0" for m in messages), messages
    result = window.bridge.get(job).result
    assert result["iterations"] > 20  # the duration decided, not the iteration count's 300 cap
    model_mb, peak_mb = result["model_rss_mb"], result["peak_rss_mb"]
    assert model_mb is not None and 0 <= model_mb < peak_mb
    assert window.live.stats["model memory"].text().endswith("MB") and window.live.stats["peak RSS"].text().endswith(
        "MB")
    qtbot.waitUntil(lambda: "memory: model" in window.details.last_bench.text(), timeout=10_000)
    shot(window.live, "live-memory")
    again = window.model_action("bench_settings", model_id)
    qtbot.addWidget(again)
    assert again.use_duration.isChecked() and again.duration.value() == 2.0 and again.warmup.value() == 3
    again.reject()

    # a restored session: the same workspace in a new window
    root = window.workspace.root
    window.shutdown()
    window.workspace.close()
    ws = Workspace(root)
    restored = MainWindow(ws, use_webengine=False, settings=QSettings(str(tmp_path / "s2.ini"),
                                                                      QSettings.Format.IniFormat))
    qtbot.addWidget(restored)
    try:
        restored.show()
        qtbot.waitUntil(lambda: restored._live is not None and "Last benchmark" in restored.live.title.text(),
                        timeout=10_000)
        assert restored.live.stats["p50"].text().endswith("ms") and restored.live.stats["model memory"].text() != "-"
        where = job_rows(restored)[job][2]
        assert where.startswith("onnxruntime/CPU") and "x=1x3x48x192" in where, where
        shot(restored.live, "live-restored")
    finally:
        restored.shutdown()
        ws.close()


@needs_ocr
def test_a_recipe_s_steps_have_rows_with_their_results(qtbot, window, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """*Run a recipe* on the classifier: INT8 then a benchmark with a gate no CPU meets. Each step gets a row under
    the recipe's job, with its verdict, figures, time and artifact; the recipe's row says a step failed."""
    work = tmp_path / "proj"
    work.mkdir()
    shutil.copy(rm.model("ppocr_cls.onnx"), work / "cls.onnx")
    np.savez(work / "lines.npz", x=rm.ppocr_line_input(n=12))
    recipe = work / "cls.yaml"
    recipe.write_text("edgestudio_recipe: 1\nmodel: cls.onnx\ninputs: {shapes: {x: [1, 3, 48, 192]}}\nsteps:\n"
                      "- {id: int8, optimize: {method: int8-static, runtime: onnxruntime, "
                      "options: {calibration: lines.npz}}}\n"
                      "- {id: speed, bench: {from: int8, runtime: onnxruntime, iterations: 20}, "
                      "gates: {max_p50_ms: 0.000001}}\n")
    job = window.open_recipe(recipe)
    qtbot.waitUntil(lambda: job not in window._recipe_jobs, timeout=300_000)
    result = window.recipe_results[job]
    item = window.jobs._items[job]
    assert item.childCount() == 2, window.jobs.error_of(job)
    first, second = item.child(0), item.child(1)
    assert first.text(0) == "step 1 optimize (int8)" and first.text(2).startswith("passed")
    assert first.text(1).endswith(".onnx") and Path(first.text(6)).is_file()
    assert second.text(0) == "step 2 bench (speed)" and second.text(2).startswith("failed: max_p50_ms")
    assert not result["passed"] and "1 step failed" in item.text(2)
    assert "(each step in Jobs)" in window.statusBar().currentMessage()
    window.jobs.tree.setCurrentItem(item)
    shot(window.jobs, "jobs-recipe-steps")


@needs_ocr
def test_cancelling_a_conversion_stops_its_hop_and_says_cancelled(qtbot, window, ocr_lines: Path) -> None:  # type: ignore[no-untyped-def]
    """The wizard's TFLite conversion of the classifier (onnx2tf, tens of seconds): its log in the Jobs panel is
    summarised (onnx2tf's tables folded, the raw log one tick away). A second one cancelled while its hop runs: the
    worker running the hop is stopped, and every place says "cancelled", never "cancelled: None"."""
    from edgestudio.core.formats import ModelFormat
    from tests.conftest import convert_in_wizard

    model_id = import_ocr(qtbot, window, ocr_lines)
    wizard = convert_in_wizard(qtbot, window, model_id, ModelFormat.TFLITE, timeout=600_000)
    assert not wizard.errors, wizard.errors
    (done,) = list(wizard.jobs)
    raw = window.jobs._logs[done]
    window.jobs.tree.setCurrentItem(window.jobs._items[done])
    shown = window.jobs.log.toPlainText()
    assert "\x1b[" not in shown
    tables = [line for line in raw if line.strip()[:1] in ("┏", "┃", "│", "+", "━", "┡")]
    if len(tables) >= 3:  # onnx2tf printed its tables: folded into a line each
        assert "a table of" in shown and len(shown.splitlines()) < len(raw)
    window.jobs.raw_log.setChecked(True)
    assert len(window.jobs.log.toPlainText().splitlines()) >= len(raw)
    window.jobs.raw_log.setChecked(False)
    shot(window.jobs, "jobs-summarised-log")
    wizard.close()

    wizard = window.model_action("convert", model_id)
    qtbot.addWidget(wizard)
    wizard.next()
    wizard.target_page.boxes[ModelFormat.TFLITE].setChecked(True)
    wizard.next()
    wizard.next()
    wizard.next()
    (job,) = list(wizard.jobs)
    pool = window.bridge.manager.pool
    qtbot.waitUntil(lambda: window.jobs.status_of(job) == "running", timeout=120_000)
    qtbot.waitUntil(lambda: any(w.job_id == job for w in pool._workers), timeout=30_000)
    (worker,) = [w for w in pool._workers if w.job_id == job]
    qtbot.wait(3000)  # into the hop (onnx2tf runs for tens of seconds here)
    assert window.jobs.status_of(job) == "running"
    wizard.run_page.cancel_jobs()
    qtbot.waitUntil(lambda: window.jobs.status_of(job) == "cancelled", timeout=20_000)
    qtbot.waitUntil(lambda: not worker.proc.is_alive() or worker.job_id is None, timeout=10_000)
    report = [wizard.run_page.report.item(r, 6).text() for r in range(wizard.run_page.report.rowCount())
              if wizard.run_page.report.item(r, 6) is not None]
    # how the job ended: the row's status, the bar, the status bar and the report never say None; the logs (whose
    # converter lines may say None: onnx2tf prints shapes with it) never say "cancelled: None"
    said = [window.jobs._items[job].text(2), wizard.run_page.bars[job].format(), window.statusBar().currentMessage(),
            *report]
    assert not any("None" in t for t in said), said
    logs = [wizard.run_page.log.toPlainText(), *window.jobs._logs[job]]
    assert not any(re.search(r"cancel\w*\W*None", t) for t in logs), logs
    assert "cancelled" in window.jobs._items[job].text(2)
    assert not window.bridge.get(job).spec.output or not Path(window.bridge.get(job).spec.output).exists()
    shot(wizard, "wizard-cancelled")


@needs_ocr
def test_the_comparison_s_picture_and_bars(qtbot, window, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The classifier and its INT8 variant compared (no labeled data: the accuracy plot says it needs some). The
    exported figure is the comparison (no export buttons, the whole table, no scroll bar); the p50 written on each
    bar is shown only where the bars are wide enough for it."""
    from PySide6.QtGui import QImage

    model_id = import_ocr(qtbot, window)
    entry = window.workspace.model(model_id)
    window.compare([model_id], iterations=20, targets=[("onnxruntime", "CPU"), ("openvino", "CPU")])
    qtbot.waitUntil(lambda: not window._compare and window._paired_job is None and not window._agree_jobs,
                    timeout=300_000)
    view = window.comparison
    assert len(view.rows) == 2 and all(r.get("p50_ms") is not None for r in view.rows), view.rows
    assert "labeled" in view.no_accuracy.toPlainText()
    out = view.export_figure(tmp_path / "fig.png")
    image = QImage(str(out))
    assert image.width() >= 1400 and view.png_button.isVisible() is view.isVisible()
    assert not view.table.verticalScrollBar().isVisible()
    shot(view, "comparison-ocr")
    if os.environ.get("EDGESTUDIO_SHOTS"):
        shutil.copy(out, Path(os.environ["EDGESTUDIO_SHOTS"]) / "comparison-ocr-export.png")
    # the same rows in a view of its own, wide then as narrow as a docked panel can be
    from edgestudio.gui.comparison_view import ComparisonView

    def overlap(labels: list) -> bool:  # type: ignore[type-arg]
        rects = [t.sceneBoundingRect() for t in labels if t.isVisible()]
        return any(a.intersects(b) for k, a in enumerate(rects) for b in rects[k + 1:])

    alone = ComparisonView()
    qtbot.addWidget(alone)
    alone.set_rows([dict(r) for r in view.rows] * 4, view.title.text())  # eight bars: a four-variant comparison
    alone.resize(1400, 700)
    alone.show()
    qtbot.waitUntil(lambda: all(t.isVisible() for t in alone.bar_labels), timeout=5_000)
    qtbot.wait(300)  # laid out at its size
    shot(alone, "comparison-wide")
    assert not overlap(alone.bar_labels)
    alone.resize(420, 700)
    qtbot.waitUntil(lambda: not any(t.isVisible() for t in alone.bar_labels), timeout=5_000)
    assert "Too narrow" in alone.bars.toolTip()
    shot(alone, "comparison-narrow")
    assert entry.path  # (the model stays in the workspace)


def test_the_browser_shows_format_and_size_whole_in_its_dock(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    """A SavedModel and a long-named variant in the Models dock at its default width: Format ("SavedModel") and
    Size are shown whole, with no horizontal scroll bar; the name is shortened in the middle instead."""
    from PySide6.QtWidgets import QApplication

    (saved,) = window.import_paths([SAMPLES / "digits_cnn_savedmodel"])
    window.import_paths([SAMPLES / "digits_cnn.onnx"])
    for _ in range(5):
        QApplication.processEvents()
    tree = window.browser.tree
    fm = tree.fontMetrics()
    item = window.browser.item_for(saved)
    assert item.text(1) == "SavedModel"
    shot(window.browser, "browser-columns")
    # each column as wide as Qt needs for its whole text (its own size hint: text, icon and margins)
    for col in (1, 2):
        assert tree.columnWidth(col) >= max(tree.sizeHintForColumn(col), fm.horizontalAdvance(item.text(col)))
    assert tree.columnWidth(0) >= min(tree.sizeHintForColumn(0), tree.viewport().width() // 3)  # names stay legible
    assert not tree.horizontalScrollBar().isVisible()
    total = sum(tree.columnWidth(c) for c in range(4))
    assert total <= tree.viewport().width() + 1
