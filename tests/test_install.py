"""What an installation says about itself: the runtimes it cannot use yet and the command that adds each (CLI and
studio), and a helper process that cannot start blamed on the installation, never on the model or the device."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLES


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, EDGESTUDIO_ENVS=str(tmp_path / "no-envs"), PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "edgestudio", *args], capture_output=True, text=True, timeout=300,
                          env=env, cwd=ROOT)


def test_devices_says_what_an_environment_would_add(tmp_path: Path) -> None:
    r = _cli(tmp_path, "devices", "missing", "--json")
    assert r.returncode == 0, r.stderr
    rows = {row["runtime"]: row for row in json.loads(r.stdout)}
    for runtime in ("torch", "tvm", "executorch"):  # no environment exists under EDGESTUDIO_ENVS
        assert rows[runtime]["enable"] == f"edgestudio envs create {runtime}", rows[runtime]
        assert any("==" in need for need in rows[runtime]["needs"])  # what it would install, pinned
    assert not {"onnxruntime", "openvino", "litert"} & set(rows)  # installed here: not offered
    text = _cli(tmp_path, "devices").stdout
    assert "onnxruntime" in text and "not enabled here" in text and "edgestudio envs create tvm" in text


def test_the_studio_lists_them_with_their_commands(qtbot, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("EDGESTUDIO_ENVS", str(tmp_path / "no-envs"))
    from PySide6.QtCore import QSettings

    from edgestudio.core.workspace import Workspace
    from edgestudio.gui.main_window import MainWindow

    ws = Workspace(tmp_path / "ws")
    win = MainWindow(ws, use_webengine=False, settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(win)
    win.show()
    panel = win.docks["devices"].widget()
    qtbot.waitUntil(lambda: "envs create" in panel.more.text(), timeout=120_000)
    assert "edgestudio envs create executorch" in panel.more.text() and "ExecuTorch" in panel.more.text()
    win.shutdown()
    ws.close()


def test_a_tflm_runner_that_cannot_start_is_the_installations_fault(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The runner's module is replaced by one that is not there (what a bundle without it did): the error names
    the installation, not the model, and never says the device would fail the same way."""
    pytest.importorskip("tflite_micro")
    import edgestudio.core.process as process
    from edgestudio.core.errors import EdgeStudioError
    from edgestudio.packaging.tflm import verify_tflm

    real = process.helper_command
    monkeypatch.setattr(process, "helper_command", lambda module, python=None: real(module + "_missing", python))
    with pytest.raises(EdgeStudioError) as err:
        verify_tflm(SAMPLES / "digits_cnn.tflite")
    assert "runner did not start" in err.value.cause and "installation" in (err.value.hint or "")
    assert "device would fail" not in str(err.value)
