"""Python environments in the studio: created from the dialog (a pool job running pip), listed, a model
benchmarked in one with its samples streaming to the live chart, removed."""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import pytest

from edgestudio.gui.main_window import MainWindow
from tests.conftest import ROOT, SAMPLES

LONG = 300_000


@pytest.fixture(autouse=True)
def envs_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Environments in the test's folder: set before the studio's pool starts its workers (autouse fixtures
    come first)."""
    monkeypatch.setenv("EDGESTUDIO_ENVS", str(tmp_path / "envs"))
    return tmp_path / "envs"


@pytest.mark.slow  # environments, faster: test_envs.py (create, a job in one, its executor)
def test_create_an_environment_and_benchmark_in_it(qtbot, window: MainWindow, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (model_id,) = window.import_paths([SAMPLES / "digits_cnn.onnx"])
    window.browser.select(model_id)
    dlg = window.environments_dialog()
    qtbot.waitUntil(lambda: not dlg._jobs, timeout=60_000)
    assert dlg.table.rowCount() == 0
    dlg.name.setText("ortonly")
    dlg.requirements.setText(f"onnxruntime=={importlib.metadata.version('onnxruntime')} "
                             f"numpy=={importlib.metadata.version('numpy')}")
    dlg.create_button.click()
    assert dlg.progress.isVisible()
    qtbot.waitUntil(lambda: dlg.table.rowCount() == 1, timeout=LONG)
    assert dlg.table.item(0, 0).text() == "ortonly" and dlg.table.item(0, 1).text() == "ok"
    dlg.grab().save(str(tmp_path / "envs-dialog.png"))
    if os.environ.get("EDGESTUDIO_SHOTS"):
        dlg.grab().save(str(ROOT / "docs" / "screenshots" / "environments.png"))
    job = dlg.benchmark_selected()
    assert job is not None
    qtbot.waitUntil(lambda: window.bridge.manager.get(job).status.finished, timeout=LONG)
    rec = window.bridge.manager.get(job)
    assert rec.status.value == "succeeded", rec.error
    assert rec.result["executed_by"]["prefix"] == str(tmp_path / "envs" / "ortonly")
    qtbot.waitUntil(lambda: "In ortonly: p50" in dlg.status.text(), timeout=30_000)  # its finished signal is queued
    qtbot.waitUntil(lambda: window.live.points >= 300, timeout=30_000)  # the environment's samples reached the chart
    dlg.table.selectRow(0)
    dlg.remove_selected(confirm=False)
    qtbot.waitUntil(lambda: dlg.table.rowCount() == 0 and not dlg._jobs, timeout=60_000)
    assert not (tmp_path / "envs" / "ortonly").exists()
    assert os.environ["EDGESTUDIO_ENVS"] == str(tmp_path / "envs")
