"""A workspace many processes share: recovery only touches the jobs of dead processes, schema creation is
serialized, concurrent imports of one file make one model (each reproduced the defect before the fix)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT, SAMPLES


def _cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "edgestudio", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_listing_jobs_during_a_convert_does_not_disturb_it(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    conv = _cli("convert", str(SAMPLES / "digits_cnn.keras"), "--to", "openvino", "--workspace", ws, "--json")
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "ws").glob("artifacts/*/.*.partial-*")):
        time.sleep(0.05)
    assert list((tmp_path / "ws").glob("artifacts/*/.*.partial-*")), "the convert never started"
    for _ in range(3):  # opening the workspace used to mark the running job failed and delete its staging
        lst = subprocess.run([sys.executable, "-m", "edgestudio", "jobs", "--workspace", ws, "--json"], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
        assert lst.returncode == 0, lst.stderr
    out, err = conv.communicate(timeout=300)
    assert conv.returncode == 0, err
    jobs = json.loads(subprocess.run([sys.executable, "-m", "edgestudio", "jobs", "--workspace", ws, "--json"],
                                     cwd=ROOT, capture_output=True, text=True).stdout)
    assert [j["status"] for j in jobs] == ["succeeded"]


def test_eight_processes_on_a_fresh_workspace(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    procs = [_cli("models", "--workspace", ws) for _ in range(8)]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    assert all(rc == 0 for rc, _ in results), [e for _, e in results if e]  # "table models already exists"


def test_concurrent_imports_of_one_file_make_one_model(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    assert subprocess.run([sys.executable, "-m", "edgestudio", "models", "--workspace", ws], cwd=ROOT).returncode == 0
    procs = [_cli("import", str(SAMPLES / "digits_cnn.onnx"), "--workspace", ws, "--json") for _ in range(6)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    ids = {json.loads(o)[0]["id"] for o, _ in outs}
    assert len(ids) == 1
    models = json.loads(subprocess.run([sys.executable, "-m", "edgestudio", "models", "--workspace", ws, "--json"],
                                       cwd=ROOT, capture_output=True, text=True).stdout)
    assert len(models) == 1


def test_the_studio_sees_another_process_write(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A CLI importing into the studio's workspace: the browser shows the model within a few seconds."""
    from PySide6.QtCore import QSettings

    from edgestudio.core.workspace import Workspace
    from edgestudio.gui.main_window import MainWindow

    ws = Workspace(tmp_path / "ws")
    win = MainWindow(ws, use_webengine=False, settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(win)
    try:
        assert win.browser.count() == 0
        r = subprocess.run([sys.executable, "-m", "edgestudio", "import", str(SAMPLES / "digits_cnn.onnx"),
                            "--workspace", str(tmp_path / "ws")], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        qtbot.waitUntil(lambda: win.browser.count() == 1, timeout=10_000)
        b = subprocess.run([sys.executable, "-m", "edgestudio", "bench", str(SAMPLES / "digits_cnn.onnx"),
                            "--workspace", str(tmp_path / "ws"), "--iterations", "5"], cwd=ROOT, capture_output=True,
                           text=True)
        assert b.returncode == 0, b.stderr
        qtbot.waitUntil(lambda: len(win.jobs._items) == 1, timeout=10_000)  # the CLI's job, in the Jobs panel
        # only the rows that changed are touched: the first model's row survives a second process's conversion
        first = win.browser.item_for(win.browser.current_id() or ws.models()[0].id)
        c = subprocess.run([sys.executable, "-m", "edgestudio", "convert", str(SAMPLES / "digits_cnn.onnx"), "--to",
                            "ort", "--workspace", str(tmp_path / "ws")], cwd=ROOT, capture_output=True, text=True)
        assert c.returncode == 0, c.stderr
        qtbot.waitUntil(lambda: win.browser.count() == 2, timeout=10_000)
        assert win.browser.item_for(ws.models()[0].id) is first and first.childCount() == 1
        assert first.child(0).text(3).startswith("parity")  # the child's badge, from the other process's check
        ws.remove_model(ws.models()[1].id)  # a removal elsewhere takes just that row away
        qtbot.waitUntil(lambda: win.browser.count() == 1, timeout=10_000)
        assert win.browser.item_for(ws.models()[0].id) is first and first.childCount() == 0
    finally:
        win.shutdown()
        ws.close()
