"""The studio's second pass (issue 19): what a new user hit, fixed and tested with real widgets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLES


def test_benchmark_with_settings(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    """Benchmark ▸ with settings: the runtime, threads, iterations and warm-up asked are the ones measured."""
    (model_id,) = window.import_paths([SAMPLES / "digits_cnn.onnx"])
    dlg = window.model_action("bench_settings", model_id)
    assert [dlg.runtime.itemText(i) for i in range(dlg.runtime.count())][:2] == ["onnxruntime", "openvino"]
    assert "random values" in dlg.inputs_note.text()  # what will be fed, said before it runs
    dlg.runtime.setCurrentText("openvino")
    dlg.threads.setValue(1)
    dlg.iterations.setValue(60)
    dlg.warmup.setValue(5)
    dlg.run_button.click()
    qtbot.waitUntil(lambda: not window._bench_jobs, timeout=120_000)
    res = [r for r in window.workspace.results(model_id) if r["kind"] == "bench"][-1]["data"]
    assert res["runtime"] == "openvino" and res["threads"] == 1 and res["iterations"] == 60
    assert res["threads_source"] == "user" and "openvino" in window.live.title.text()
    if os.environ.get("EDGESTUDIO_SHOTS"):
        dlg.grab().save(str(ROOT / "docs" / "screenshots" / "benchmark-settings.png"))


def test_results_come_back_after_a_restart(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A comparison and a benchmark, then the studio is closed and opened again on the workspace: the last
    comparison is back in its view, any recorded one can be reopened from View ▸ Reopen a comparison, and the
    model's details show its last benchmark."""
    from PySide6.QtCore import QSettings

    from edgestudio.core.workspace import Workspace
    from edgestudio.gui.main_window import MainWindow
    from tests.conftest import compare_in_studio

    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    ws = Workspace(tmp_path / "ws")
    win = MainWindow(ws, use_webengine=False, settings=settings)
    qtbot.addWidget(win)
    win.show()
    (model_id,) = win.import_paths([SAMPLES / "digits_cnn.onnx"])
    compare_in_studio(qtbot, win, [model_id], [("onnxruntime", "CPU"), ("openvino", "CPU")], runs=2)
    qtbot.waitUntil(lambda: len(win.comparisons()) == 1, timeout=120_000)  # recorded once the paired round ended
    before = [(r["runtime"], r.get("rank")) for r in win.comparison.rows]
    win.shutdown()
    ws.close()
    win.close()

    ws2 = Workspace(tmp_path / "ws")
    win2 = MainWindow(ws2, use_webengine=False, settings=settings)
    qtbot.addWidget(win2)
    win2.show()
    try:
        qtbot.waitUntil(lambda: bool(win2._comparison and win2.comparison.rows), timeout=30_000)
        assert [(r["runtime"], r.get("rank")) for r in win2.comparison.rows] == before
        assert "recorded" in win2.comparison.title.text()
        win2.comparisons_menu.aboutToShow.emit()
        assert len(win2.comparisons_menu.actions()) == 1
        win2.browser.select(model_id)
        qtbot.waitUntil(lambda: "last benchmark" in win2.details.last_bench.text(), timeout=10_000)
        assert "last accuracy" in win2.details.last_bench.text()
    finally:
        win2.shutdown()
        ws2.close()


def test_a_studio_session_becomes_a_recipe_that_replays_headless(qtbot, window, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Convert, optimize, benchmark and evaluate in the studio; File ▸ Export recipe; `edgestudio run` replays it
    from a clean folder with the same artifacts and verdicts; a gate set out of reach fails the run (exit 1); the
    studio runs the recipe too, its artifacts joining the lineage."""
    import json
    import shutil

    import numpy as np
    import yaml

    from edgestudio.core.jobs import JobKind, JobSpec
    from tests.conftest import compare_in_studio, run_cli

    work = tmp_path / "project"
    work.mkdir()
    for name in ("digits_cnn.keras", "digits_calib.npz", "digits_test.npz"):
        shutil.copy(SAMPLES / name, work / name)
    np.savez(work / "digits8.npz", image=np.load(SAMPLES / "digits_test.npz")["x"][:8].astype(np.float32)[:, None])
    (root,) = window.import_paths([work / "digits_cnn.keras"])
    window.workspace.set_inputs(root, {"data": str(work / "digits8.npz")})
    job = window.bridge.submit(JobSpec(JobKind.CONVERT, model=window.workspace.model(root).path, options={
        "to": "onnx", "convert": {"inputs": window.inputs_for(root)}}), output_name="digits_cnn.onnx")
    qtbot.waitUntil(lambda: window.bridge.get(job).status.finished, timeout=300_000)
    onnx = next(m for m in window.workspace.models() if m.format.value == "onnx")
    job = window.bridge.submit(JobSpec(JobKind.OPTIMIZE, model=onnx.path, runtime="onnxruntime", options={
        "method": "int8-static", "options": {"calibration": str(work / "digits_calib.npz"),
                                             "inputs": window.inputs_for(onnx.id)}}), output_name="digits_int8.onnx")
    qtbot.waitUntil(lambda: window.bridge.get(job).status.finished, timeout=300_000)
    window.sync()
    int8 = next(m for m in window.workspace.models() if m.options.get("method") == "int8-static")
    compare_in_studio(qtbot, window, [int8.id], [("onnxruntime", "CPU")], runs=1)  # a benchmark and an evaluation
    recipe_path = work / "digits_recipe.yaml"
    recipe = window.export_recipe(int8.id, recipe_path)
    kinds = [next(k for k in ("convert", "optimize", "bench", "eval") if k in s) for s in recipe["steps"]]
    assert kinds == ["convert", "optimize", "bench", "eval"], recipe
    text = recipe_path.read_text()
    assert "digits_calib.npz" in text and "/" not in recipe["model"] and "max_p50_ms" in text  # relative, gated

    r = run_cli("run", str(recipe_path), "-o", str(tmp_path / "replay"))  # it reads the samples' test set
    assert r.returncode == 2 and "outside the recipe's folder" in r.stderr and "digits_test.npz" in r.stderr
    r = run_cli("run", str(recipe_path), "-o", str(tmp_path / "replay"), "--allow-outside", "--json", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    d = json.loads(r.stdout)
    assert d["passed"] and [s["kind"] for s in d["steps"]] == kinds
    made = [Path(s["output"]) for s in d["steps"] if s.get("output")]
    assert [p.suffix for p in made] == [".onnx", ".onnx"] and all(p.is_file() for p in made)
    assert all(g["passed"] for s in d["steps"] for g in s["gates"])
    # the same verdict as in the studio, on the same inputs: the replayed INT8 model's top-1 within its gate
    assert d["steps"][3]["top1"] >= recipe["steps"][3]["gates"]["min_top1"]

    strict = yaml.safe_load(recipe_path.read_text())
    strict["steps"][2]["gates"]["max_p50_ms"] = 1e-6  # a latency no CPU reaches
    (work / "strict.yaml").write_text(yaml.safe_dump(strict))
    r = run_cli("run", str(work / "strict.yaml"), "-o", str(tmp_path / "strict"), "--allow-outside")
    assert r.returncode == 1 and "max_p50_ms" in r.stdout and "FAILED" in r.stdout
    bad = run_cli("run", str(SAMPLES / "digits_test.npz"))
    assert bad.returncode != 0 and "Traceback" not in bad.stderr

    from PySide6.QtWidgets import QMessageBox

    asked: list[str] = []
    monkeypatch.setattr(QMessageBox, "question", staticmethod(
        lambda parent, title, text, *a: asked.append(text) or QMessageBox.StandardButton.Yes))
    before = len(window.workspace.models())
    job = window.open_recipe(recipe_path)
    assert len(asked) == 1 and "digits_test.npz" in asked[0]  # the studio said what it reads outside, and asked
    qtbot.waitUntil(lambda: job in window.recipe_results or job not in window._recipe_jobs, timeout=300_000)
    assert window.recipe_results[job]["passed"], window.statusBar().currentMessage()
    assert len(window.workspace.models()) == before + 2  # the replayed ONNX and INT8, in the lineage
    replayed = [m for m in window.workspace.models() if m.options.get("recipe") == recipe_path.name]
    assert {m.options["kind"] for m in replayed} == {"convert", "optimize"}
    assert not any(p.name.endswith("_out") for p in work.iterdir())  # nothing written beside the user's files


def test_another_workspace_opens_now_and_the_gui_takes_one(qtbot, window, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """File ▸ Open or new workspace switches at once (a new window on it; an empty folder becomes a workspace);
    `edgestudio --workspace DIR` starts the studio on it."""
    import subprocess
    import sys

    (model_id,) = window.import_paths([SAMPLES / "digits_cnn.onnx"])
    new = window.switch_workspace(tmp_path / "other", confirm=False)
    assert new is not None
    qtbot.addWidget(new)
    try:
        assert new.workspace.root == (tmp_path / "other").resolve() and new.isVisible() and not window.isVisible()
        assert new.workspace.models() == [] and window.bridge.closed
        assert window.settings.value("workspace") == str(new.workspace.root)
    finally:
        new.shutdown()
        new.workspace.close()
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    r = subprocess.run([sys.executable, "-m", "edgestudio", "--workspace", str(tmp_path / "third")],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"workspace {(tmp_path / 'third').resolve()}" in r.stderr and (tmp_path / "third" / "workspace.db").exists()


def test_quitting_with_jobs_running_asks_first(qtbot, window, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Closing the window while a job runs asks; 'No' keeps the window and the job (offscreen nobody could answer,
    so the question is only asked on a real display: here it is switched on and answered)."""
    from PySide6.QtWidgets import QMessageBox

    (model_id,) = window.import_paths([SAMPLES / "digits_cnn.onnx"])
    job = window.benchmark(model_id, iterations=200_000)
    qtbot.waitUntil(lambda: any(r.id == job for r in window.running_jobs()), timeout=60_000)
    asked: list[str] = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.No)
    window.confirm_quit = True
    window.close()
    assert window.isVisible() and asked and "still running" in asked[0] and "bench digits_cnn.onnx" in asked[0]
    window.bridge.cancel(job)


def test_reveal_says_where_and_dialogs_remember_the_folder(qtbot, window, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Reveal in folder names the folder (and copies it when no file manager answers); file dialogs start where
    the user last picked something."""
    from PySide6.QtWidgets import QApplication

    from edgestudio.gui.paths import remember, start_dir

    (model_id,) = window.import_paths([SAMPLES / "digits_cnn.onnx"])
    window.model_action("reveal", model_id)
    folder = str(Path(window.workspace.model(model_id).path).parent)
    message = window.statusBar().currentMessage()
    assert folder in message
    if "copied" in message:
        assert QApplication.clipboard().text() == folder
    remember(tmp_path / "some.npz")
    assert start_dir() == str(tmp_path)


def test_the_jobs_panel_reads_and_clears(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    """A failed job: its error in full (status column and tooltip, log, 'Copy the error'), no Cancel button left on
    finished rows; the filter finds failed ones; Clear finished empties the list."""
    (model_id,) = window.import_paths([SAMPLES / "digits_cnn.onnx"])
    ok = window.benchmark(model_id, iterations=20)
    bad = window.benchmark(model_id, runtime="litert", iterations=20)  # LiteRT does not run ONNX
    qtbot.waitUntil(lambda: window.jobs.status_of(ok) == "succeeded" and window.jobs.status_of(bad) == "failed",
                    timeout=60_000)
    panel = window.jobs
    error = panel.error_of(bad)
    assert error and "litert" in error.lower()
    assert error in panel._items[bad].text(2) and panel._items[bad].toolTip(2) == error
    assert panel.cancel_button(ok).isHidden() and panel.cancel_button(bad).isHidden()
    # where it ran, and on what (the model's saved inputs; none saved here)
    assert panel._items[bad].text(6) == "litert/CPU · random inputs" and "/CPU · " in panel._items[ok].text(6)
    panel.filter.setText("failed")
    assert panel._items[ok].isHidden() and not panel._items[bad].isHidden()
    panel.filter.setText("")
    assert panel.clear_finished() >= 2 and ok not in panel._items and bad not in panel._items


def test_a_queued_job_says_what_it_waits_for(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    (model_id,) = window.import_paths([SAMPLES / "digits_cnn.onnx"])
    first = window.benchmark(model_id, iterations=300_000)
    second = window.benchmark(model_id, iterations=20)
    qtbot.waitUntil(lambda: window.jobs.status_of(first) == "running", timeout=60_000)
    qtbot.waitUntil(lambda: window.jobs._items[second].text(2) == "queued behind bench digits_cnn.onnx",
                    timeout=10_000)
    # a running job with no progress news for a while (a converter's one long call) shows its elapsed time
    import time

    window.jobs._last_progress[first] = time.monotonic() - 10
    window.jobs._tick()
    assert window.jobs._bars[first].format().endswith(" s") and "— " in window.jobs._bars[first].format()
    window.bridge.cancel(first)
    qtbot.waitUntil(lambda: window.jobs.status_of(second) == "succeeded", timeout=60_000)


def test_the_optimize_panel_reports_and_stays_on_its_model(qtbot, window, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """After a run the panel still points at the model it optimized (the browser shows the new variant), and says
    how it went: drift, size and path. The samples' labeled split is offered for sample models only."""
    import shutil

    window.optimize.set_sample_dataset(str(SAMPLES / "digits_test.npz"))
    (sample_id,) = window.import_paths([SAMPLES / "digits_cnn.onnx"])
    window.browser.select(sample_id)
    assert window.optimize.dataset.text() == str(SAMPLES / "digits_test.npz")
    other = tmp_path / "other.tflite"
    shutil.copy(SAMPLES / "digits_cnn.tflite", other)
    (other_id,) = window.import_paths([other])
    window.browser.select(other_id)
    assert window.optimize.dataset.text() is None  # not pre-filled for a model of the user's
    window.browser.select(sample_id)
    panel = window.optimize
    panel.runtime.setCurrentText("onnxruntime")
    panel.method.setCurrentText("int8-static")
    panel.calibration.set_text(str(SAMPLES / "digits_calib.npz"))
    job = panel.run()
    qtbot.waitUntil(lambda: "done" in panel.message.text() or "failed" in panel.message.text(), timeout=120_000)
    assert "int8-static for onnxruntime done" in panel.message.text() and "KB" in panel.message.text()
    assert "drift passed" in panel.message.text() and "top-1" in panel.message.text()
    # the variant shown in the browser, the selection and the panel kept: a second click never quantizes the INT8 one
    assert panel.entry.id == sample_id and window.browser.current_id() == sample_id
    assert job not in panel._jobs


def test_live_figures_and_help(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    """The live panel ends with mean, std, first inference and peak RSS beside the percentiles; Help lists the
    keyboard shortcuts."""
    (model_id,) = window.import_paths([SAMPLES / "digits_cnn.onnx"])
    job = window.benchmark(model_id, iterations=100)
    qtbot.waitUntil(lambda: window.jobs.status_of(job) == "succeeded", timeout=60_000)
    qtbot.waitUntil(lambda: window.live.stats["peak RSS"].text().endswith("MB"), timeout=10_000)
    for key in ("mean", "std", "first"):
        assert window.live.stats[key].text().endswith("ms"), key
    assert "Ctrl+B" in window.shortcuts_text() and "Benchmark" in window.shortcuts_text()
    window.show_shortcuts()
    assert window.shortcuts_box.isVisible()
    window.shortcuts_box.close()


def test_models_of_one_name_are_told_apart(qtbot, window, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    shutil.copy(SAMPLES / "digits_cnn.onnx", a / "model.onnx")
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(SAMPLES / "digits_cnn.onnx"))  # another model of the same name: other weights
    init = m.graph.initializer[0]
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 2, init.name))
    onnx.save(m, str(b / "model.onnx"))
    first, second = window.import_paths([a / "model.onnx", b / "model.onnx"])
    texts = {window.browser.item_for(i).text(0) for i in (first, second)}
    assert len(texts) == 2 and all(t.startswith("model.onnx  (from ") for t in texts), texts


def test_a_short_job_runs_beside_a_long_one(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    """One worker busy with a long job (onnx2tf for minutes, here a sleep): a small ONNX -> OpenVINO IR conversion
    dropped on its format runs beside it in a worker of its own, and its log says so; the long job goes on."""
    from edgestudio.core.jobs import JobKind, JobSpec

    window.bridge.manager.pool.max_workers = 1  # type: ignore[attr-defined]  # as on two cores
    (model_id,) = window.import_paths([SAMPLES / "digits_cnn.onnx"])
    long = window.bridge.submit(JobSpec(JobKind.CALL, options={"function": "tests.helpers.jobs:sleep",
                                                               "kwargs": {"seconds": 60}}))
    pool = window.bridge.manager  # its get() waits for the background submission
    qtbot.waitUntil(lambda: pool.get(long).status.value == "running", timeout=60_000)
    job = window.convert_dropped(model_id, "openvino")
    qtbot.waitUntil(lambda: window.jobs.status_of(job) == "succeeded", timeout=50_000)
    assert pool.get(long).status.value == "running"  # not behind it: beside it
    assert any("runs beside call" in line for line in window.jobs._logs[job])
    assert any(m.format.value == "openvino" for m in window.workspace.models())
    window.bridge.cancel(long)
    qtbot.waitUntil(lambda: pool.get(long).status.value == "cancelled", timeout=30_000)


def test_the_graph_detaches_and_comes_back(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    """Ctrl+G moves the graph to a window of its own (the tab says where it went); closing that window puts it back."""
    (model_id,) = window.import_paths([SAMPLES / "digits_cnn.onnx"])
    window.browser.select(model_id)
    assert "Ctrl+G" in window.shortcuts_text()
    window.actions_["graph_window"].trigger()
    gw = window.details.graph_window
    assert gw is not None and gw.isVisible() and window.details.graph.window() is gw
    assert "Graph ↗" in [window.details.tabs.tabText(i) for i in range(window.details.tabs.count())]
    assert gw.windowTitle() == "Graph of digits_cnn.onnx — EdgeStudio"
    qtbot.waitUntil(lambda: "Graph served at http://localhost" in window.details.graph.status.text(), timeout=20_000)
    gw.close()
    assert window.details.graph_window is None and window.details.tabs.indexOf(window.details.graph) >= 0
    assert window.details.graph.detach_button.text() == "Open in its own window"


def test_the_wizard_says_close_and_cancels_its_conversions(qtbot, window) -> None:  # type: ignore[no-untyped-def]
    """On the run page the wizard's Cancel is labelled for what it does (Close: the jobs go on); its own button
    cancels the conversions still queued or running; once nothing is left the buttons say so."""
    from PySide6.QtWidgets import QWizard

    from edgestudio.core.formats import ModelFormat
    from edgestudio.core.jobs import JobKind, JobSpec

    window.bridge.manager.pool.max_workers = 1  # type: ignore[attr-defined]
    (model_id,) = window.import_paths([SAMPLES / "digits_cnn.onnx"])
    busy = window.bridge.submit(JobSpec(JobKind.CALL, options={"function": "tests.helpers.jobs:sleep",
                                                               "kwargs": {"seconds": 60}}))
    qtbot.waitUntil(lambda: window.bridge.manager.get(busy).status.value == "running", timeout=60_000)
    wizard = window.model_action("convert", model_id)
    qtbot.addWidget(wizard)
    wizard.next()
    wizard.target_page.boxes[ModelFormat.TFLITE].setChecked(True)  # onnx2tf: not a quick job, it queues
    wizard.next()
    wizard.next()
    wizard.next()
    assert wizard.buttonText(QWizard.WizardButton.CancelButton) == "Close (jobs go on)"
    cancel = wizard.button(QWizard.WizardButton.CustomButton1)
    assert cancel.isVisible() and cancel.text() == "Cancel the conversions"
    cancel.click()
    qtbot.waitUntil(lambda: wizard.run_page.isComplete(), timeout=30_000)
    (job,) = wizard.jobs
    assert window.bridge.manager.get(job).status.value == "cancelled" and wizard.errors[job]
    assert wizard.buttonText(QWizard.WizardButton.CancelButton) == "Close" and not cancel.isVisible()
    assert not any(m.format.value == "tflite" for m in window.workspace.models())
    window.bridge.cancel(busy)
