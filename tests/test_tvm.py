"""Apache TVM as a compiler backend, for real: the digits CNN compiled from ONNX for this CPU with the Relax frontend,
checked against ONNX Runtime on real inputs, inspected, benchmarked and compared beside the other runtimes; tuning
stops at the user's time budget; the studio's wizard compiles it and its comparison shows it.

TVM runs in the catalog's ``tvm`` environment (created once in ``.cache/envs``: apache-tvm, its FFI, xgboost-cpu for
MetaSchedule, ~450 MB from the registry; ``make test`` reuses it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ENVS, ROOT, SAMPLES, ensure_env



def cli(*args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgestudio", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env=dict(os.environ, EDGESTUDIO_ENVS=str(ENVS)))


@pytest.fixture(scope="session")
def tvm_env() -> Path:
    return ensure_env("tvm", timeout=1800)


@pytest.fixture(scope="module")
def real_inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    x = np.load(SAMPLES / "digits_test.npz")["x"][:8].astype(np.float32)[:, None]
    path = tmp_path_factory.mktemp("inputs") / "digits8.npz"
    np.savez(path, image=x)
    return path


@pytest.fixture(scope="module")
def compiled(tvm_env: Path, real_inputs: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:  # type: ignore[type-arg]
    out = tmp_path_factory.mktemp("tvm") / "digits_tvm"
    r = cli("convert", str(SAMPLES / "digits_cnn.onnx"), "--to", "tvm", "-o", str(out), "--input", str(real_inputs),
            "--json")
    assert r.returncode == 0, r.stderr
    return out, json.loads(r.stdout)


def test_tvm_compiles_an_onnx_model_for_this_cpu_checked_against_onnx_runtime(tvm_env: Path, compiled) -> None:  # type: ignore[no-untyped-def]
    out, d = compiled
    step = d["steps"][-1]
    assert step["converter"] == "tvm-relax" and step["parity"]["verdict"] == "passed"
    assert step["parity"]["parent_runtime"] == "onnxruntime" and step["parity"]["child_runtime"] == "tvm"
    assert step["parity"]["max_abs_diff"] < 1e-5 and step["parity"]["inputs"]["random"] is False  # real inputs
    doc = json.loads((out / "tvm.json").read_text())
    host = subprocess.run([str(tvm_env), "-c", "import tvm; print(tvm.target.codegen.llvm_get_system_cpu())"],
                          capture_output=True, text=True).stdout.strip()
    assert doc["target"]["kind"] == "llvm" and doc["target"]["mcpu"] == host and (out / "model.so").is_file()
    assert doc["tuning"] is None and doc["inputs"][0]["shape"] == [1, 8, 8, 1]  # the dynamic batch fixed to 1
    info = json.loads(cli("inspect", str(out), "--json").stdout)
    assert info["format"] == "tvm" and info["parameters"] == 38_282 and "untuned" in info["producer"]


def test_tvm_benchmarks_and_compares_beside_the_other_runtimes(compiled) -> None:  # type: ignore[no-untyped-def]
    out, _ = compiled
    r = cli("bench", str(out), "--iterations", "100", "--json")
    assert r.returncode == 0, r.stderr
    b = json.loads(r.stdout)
    assert b["runtime"] == "tvm" and b["latency_ms"]["p50"] > 0 and b["threads"] >= 1
    assert b["target"]["target"]["kind"] == "llvm"
    r = cli("compare", str(SAMPLES / "digits_cnn.onnx"), str(out), "--runtime", "onnxruntime", "--runtime", "openvino",
            "--runtime", "tvm", "--dataset", str(SAMPLES / "digits_test.npz"), "--iterations", "60", "--json")
    assert r.returncode == 0, r.stderr
    rows = {(Path(x["model"]).name, x["runtime"]): x for x in json.loads(r.stdout)}
    tvm = rows[("digits_tvm", "tvm")]
    ort = rows[("digits_cnn.onnx", "onnxruntime")]
    assert tvm["p50_ms"] > 0 and tvm["accuracy"] == ort["accuracy"]  # the same answers on the test split
    # in the paired round too: its blocks timed in the tvm environment's process, alternating with the others'
    assert tvm["rank"] >= 1 and tvm["paired_p50_ms"] > 0 and ort["rank"] >= 1
    assert sorted(x["rank"] for x in rows.values() if x.get("rank")) == [1, 2, 3]


def test_tuning_stops_at_the_time_budget_and_keeps_what_it_measured(tvm_env: Path, tmp_path: Path,
                                                                    real_inputs: Path) -> None:
    out = tmp_path / "tuned"
    r = cli("convert", str(SAMPLES / "digits_cnn.onnx"), "--to", "tvm", "-o", str(out), "--input", str(real_inputs),
            "--tvm-trials", "1000", "--tvm-minutes", "0.3", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["steps"][-1]["parity"]["verdict"] == "passed"
    tuning = json.loads((out / "tvm.json").read_text())["tuning"]
    assert tuning["stopped_by_budget"] and tuning["trials"] == 1000 and 18 <= tuning["seconds"] <= 45, tuning
    bad = cli("convert", str(SAMPLES / "digits_cnn.onnx"), "--to", "tvm", "--tvm-trials", "-1")
    assert bad.returncode != 0 and "tvm-trials -1 is out of range" in bad.stderr and "Traceback" not in bad.stderr


def test_keras_to_tvm_runs_each_hop_where_its_converter_lives(tvm_env: Path, tmp_path: Path, real_inputs: Path) -> None:
    """Keras -> ONNX (tf2onnx, here) -> TVM (in the tvm environment): one chain, each hop checked against its
    parent, both in the lineage."""
    ws = tmp_path / "ws"
    r = cli("convert", str(SAMPLES / "digits_cnn.keras"), "--to", "tvm", "--workspace", str(ws), "--json", timeout=900)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert [(s["converter"], s["parity"]["verdict"]) for s in d["steps"]] == [("tf2onnx", "passed"),
                                                                              ("tvm-relax", "passed")]
    from edgestudio.core.workspace import Workspace

    with Workspace(ws) as w:
        fmts = {m.format.value: m for m in w.models()}
        assert set(fmts) == {"keras", "onnx", "tvm"}
        assert fmts["tvm"].parent_id == fmts["onnx"].id and fmts["onnx"].parent_id == fmts["keras"].id


def test_the_studio_compiles_with_tvm_and_compares_it(qtbot, tmp_path: Path, tvm_env: Path,  # type: ignore[no-untyped-def]
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGESTUDIO_ENVS", str(ENVS))
    from PySide6.QtCore import QSettings

    from edgestudio.core.formats import ModelFormat
    from edgestudio.core.workspace import Workspace
    from edgestudio.gui.main_window import MainWindow
    from tests.conftest import compare_in_studio

    ws = Workspace(tmp_path / "ws")
    win = MainWindow(ws, use_webengine=False, settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(win)
    win.show()
    try:
        (root,) = win.import_paths([SAMPLES / "digits_cnn.onnx"])
        wizard = win.model_action("convert", root)
        qtbot.addWidget(wizard)
        wizard.next()
        box = wizard.target_page.boxes[ModelFormat.TVM]
        assert box.isEnabled()  # the tvm-relax converter, from the tvm environment
        for fmt, b in wizard.target_page.boxes.items():
            b.setChecked(fmt is ModelFormat.TVM)
        wizard.next()
        assert {"tvm_trials", "tvm_minutes"} <= set(wizard.options_page.form._editors)  # its own options
        wizard.next()
        assert "tvm-relax" in wizard.plan_page.text.text()
        wizard.next()
        qtbot.waitUntil(lambda: wizard.run_page.isComplete(), timeout=300_000)
        assert not wizard.errors, wizard.errors
        compiled = [m for m in win.workspace.models() if m.format is ModelFormat.TVM]
        assert len(compiled) == 1 and compiled[0].parent_id == root
        rows = compare_in_studio(qtbot, win, [root, compiled[0].id], [("onnxruntime", "CPU"), ("tvm", "CPU")], runs=2)
        measured = {r["runtime"]: r for r in rows if r.get("p50_ms") is not None}
        assert set(measured) == {"onnxruntime", "tvm"} and measured["tvm"]["accuracy"] > 0.9
        if os.environ.get("EDGESTUDIO_SHOTS"):
            win.comparison.export_figure(ROOT / "docs" / "screenshots" / "comparison-tvm.png")
    finally:
        win.shutdown()
        ws.close()
