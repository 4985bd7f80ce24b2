"""The studio's second pass (issue 19): what a new user hit, fixed and tested with real widgets."""

from __future__ import annotations

import os
from pathlib import Path

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
