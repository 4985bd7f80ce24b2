"""From PyTorch to a microcontroller, for real: a small CNN trained on the digits in PyTorch, saved as an
ExportedProgram and as TorchScript, inspected, converted to ONNX (checked against PyTorch), quantized to
full-integer TFLite with int8 I/O, and run in the TFLite Micro interpreter with the arena the package states.

PyTorch runs in the catalog's ``torch`` environment (created once in ``.cache/envs``, ~250 MB from the registry;
``make test`` reuses it). Pickled modules are refused without the environment: nothing is unpickled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ENVS, ROOT, SAMPLES, ensure_env



def cli(*args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgestudio", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env=dict(os.environ, EDGESTUDIO_ENVS=str(ENVS)))


@pytest.fixture(scope="session")
def torch_env() -> Path:
    """The catalog's torch environment (created with its declared requirements when missing)."""
    return ensure_env("torch", timeout=1800)


@pytest.fixture(scope="session")
def digits_net(torch_env: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained digits CNN, saved four ways (see tests/helpers/torch_digits.py)."""
    from edgestudio.samples import load_digits_split

    folder = tmp_path_factory.mktemp("torch")
    x_train, _, y_train, _ = load_digits_split(0)
    np.savez(folder / "train.npz", x=x_train.transpose(0, 3, 1, 2), y=y_train)
    r = subprocess.run([str(torch_env), str(ROOT / "tests" / "helpers" / "torch_digits.py"), str(folder / "train.npz"),
                        str(folder)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return folder


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_real_exported_program_with_a_payload_in_its_sample_inputs_never_runs_it(digits_net: Path,
                                                                                      tmp_path: Path) -> None:
    """torch.export.load unpickles the archive's sample inputs: a .pt2 (a real one, saved by PyTorch) whose
    sample-inputs member is a pickle with a payload is refused before PyTorch sees it, in the app and in the torch
    environment alike; the untouched archive still loads."""
    import pickle
    import zipfile

    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pt2"
    with zipfile.ZipFile(digits_net / "digits_net.pt2") as zin, zipfile.ZipFile(evil, "w") as zout:
        members = zin.infolist()
        assert any("sample_inputs" in i.filename for i in members)
        for info in members:
            data = zin.read(info)
            zout.writestr(info, pickle.dumps(_Payload(marker), protocol=2) if "sample_inputs" in info.filename else data)
    for command in (["inspect", str(evil)], ["bench", str(evil)], ["convert", str(evil), "--to", "onnx"]):
        r = cli(*command)
        assert r.returncode == 1 and "would run code" in r.stderr and "posix.system" in r.stderr, r.stderr
    r = subprocess.run([str(ENVS / "torch" / "bin" / "python"), "-c",
                        "import sys; from edgestudio.core.inspection import load_torch; load_torch(sys.argv[1])",
                        str(evil)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode != 0 and "would run code" in r.stderr
    assert not marker.exists()
    assert cli("inspect", str(digits_net / "digits_net.pt2")).returncode == 0


def test_pickled_modules_and_weights_are_refused_saying_why(digits_net: Path) -> None:
    from edgestudio.core.errors import ModelFormatError
    from edgestudio.core.formats import ModelFormat, detect_format

    assert detect_format(digits_net / "digits_net.pt2") is ModelFormat.PT2
    assert detect_format(digits_net / "digits_net.pt") is ModelFormat.TORCHSCRIPT
    with pytest.raises(ModelFormatError, match=r"pickled PyTorch module .*DigitsNet.* torch\.export\.save"):
        detect_format(digits_net / "digits_net_pickled.pt")
    with pytest.raises(ModelFormatError, match="weights only"):
        detect_format(digits_net / "digits_net_weights.pt")
    r = cli("inspect", str(digits_net / "digits_net_pickled.pt"))
    assert r.returncode == 1 and "would run code" in r.stderr and "Traceback" not in r.stderr


def test_inspect_runs_in_the_torch_environment(digits_net: Path) -> None:
    r = cli("inspect", str(digits_net / "digits_net.pt2"), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["format"] == "pt2" and d["inputs"][0]["shape"] == [1, 1, 8, 8] and d["parameters"] == 3818
    assert d["ops"]["conv2d"] == 2 and d["producer"].startswith("PyTorch")
    ts = json.loads(cli("inspect", str(digits_net / "digits_net.pt"), "--json").stdout)
    assert ts["format"] == "torchscript" and ts["parameters"] == 3818
    assert "unknown rank" in (ts.get("macs_note") or "")  # TorchScript keeps no input shapes: said, not guessed


def test_pytorch_to_int8_tflite_to_tflite_micro(digits_net: Path, tmp_path: Path) -> None:
    """The whole path, from the CLI: .pt2 -> ONNX (parity vs PyTorch) -> full INT8 TFLite with int8 I/O
    (calibrated, drift-guarded) within 2 points of PyTorch's top-1 -> a package whose TFLM arena is measured."""
    test = str(SAMPLES / "digits_test.npz")  # NHWC samples: datasets adapt them to the NCHW model
    ref = cli("eval", str(digits_net / "digits_net.pt2"), "--dataset", test, "--json")
    assert ref.returncode == 0, ref.stderr
    top1_torch = json.loads(ref.stdout)["top1"]
    assert top1_torch > 0.9
    ws = tmp_path / "ws"
    r = cli("convert", str(digits_net / "digits_net.pt2"), "--to", "tflite", "--int8", "--io-type", "int8",
            "--calibration", str(SAMPLES / "digits_calib.npz"), "--workspace", str(ws), "-o",
            str(tmp_path / "digits_int8.tflite"), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    step = d["conversion"]["steps"][0]
    assert step["converter"] == "torch.onnx" and step["parity"]["verdict"] == "passed"
    assert step["parity"]["parent_runtime"] == "torch"
    assert d["details"]["drift"]["verdict"] == "passed" and d["details"]["io_type"] == "int8"
    int8 = tmp_path / "digits_int8.tflite"
    ev = json.loads(cli("eval", str(int8), "--dataset", test, "--json").stdout)
    assert ev["top1"] >= top1_torch - 0.02
    from ai_edge_litert.interpreter import Interpreter

    assert Interpreter(model_path=str(int8)).get_input_details()[0]["dtype"] == np.int8  # what an MCU feeds
    models = json.loads(cli("models", "--workspace", str(ws), "--json").stdout)
    # one lineage across environments: PyTorch -> ONNX -> FP32 TFLite (the drift reference) -> INT8 TFLite
    assert [m["format"] for m in models] == ["pt2", "onnx", "tflite", "tflite"]
    assert [m["parent_id"] for m in models] == [None] + [m["id"] for m in models[:-1]]

    pkg = cli("package", str(int8), "--tflm", "--input", test, "-o", str(tmp_path / "d.zip"), "--json")
    assert pkg.returncode == 0, pkg.stderr
    t = json.loads(pkg.stdout)["tflm"]
    assert t["arena_measured"] and t["parity"]["verdict"] == "passed" and t["flash_bytes"] == int8.stat().st_size
    with zipfile.ZipFile(tmp_path / "d.zip") as zf:
        header = next(zf.read(n).decode() for n in zf.namelist() if n.endswith("_model_data.h"))
        assert f"ArenaSize = {t['arena_bytes']};" in header
        assert any(n.endswith("tflm/main.cc") for n in zf.namelist())
    from tflite_micro.python.tflite_micro import runtime

    data = int8.read_bytes()
    runtime.Interpreter.from_bytes(data, arena_size=t["arena_bytes"])  # runs with the stated arena...
    with pytest.raises(RuntimeError):
        runtime.Interpreter.from_bytes(data, arena_size=t["arena_bytes"] - 16)  # ...and not with less


def test_torchscript_needs_its_shape_and_converts_with_it(digits_net: Path, tmp_path: Path) -> None:
    src = str(digits_net / "digits_net.pt")
    r = cli("convert", src, "--to", "onnx", "-o", str(tmp_path / "ts.onnx"))
    assert r.returncode == 1 and "unknown rank: give --shape x=" in r.stderr
    ok = cli("convert", src, "--to", "onnx", "--shape", "x=1,1,8,8", "-o", str(tmp_path / "ts.onnx"), "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["verdict"] == "passed"


@pytest.fixture
def torch_window(qtbot, tmp_path: Path, torch_env: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The studio, with the torch environment where its workers look for it."""
    monkeypatch.setenv("EDGESTUDIO_ENVS", str(ENVS))
    from PySide6.QtCore import QSettings

    from edgestudio.core.workspace import Workspace
    from edgestudio.gui.main_window import MainWindow

    ws = Workspace(tmp_path / "ws")
    win = MainWindow(ws, use_webengine=False, settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(win)
    win.show()
    yield win
    win.shutdown()
    ws.close()


@pytest.mark.slow  # faster: test_pytorch_to_int8_tflite_to_tflite_micro, test_packaging.py (wizard)
def test_the_studio_takes_a_pytorch_model_to_a_microcontroller(qtbot, torch_window, digits_net: Path) -> None:  # type: ignore[no-untyped-def]
    """Drop a .pt2: it is listed and inspected (in the torch environment); the wizard's Microcontroller target
    gives INT8 TFLite in the lineage and a summary with the arena measured in TFLM."""
    from tests.test_gui import drop_files

    win = torch_window
    drop_files(win.browser.tree, [digits_net / "digits_net.pt2"])
    qtbot.waitUntil(lambda: win.browser.count() == 1, timeout=30_000)
    root = win.browser.current_id()
    assert win.browser.item_for(root).text(1) == "ExportedProgram"
    assert win.browser.item_for(root).toolTip(1) == "PyTorch ExportedProgram"
    qtbot.waitUntil(lambda: win.details.ops.rowCount() > 0, timeout=120_000)  # inspected by PyTorch itself
    assert "PyTorch" in win.details.summary.text()
    wizard = win.model_action("convert", root)
    qtbot.addWidget(wizard)
    wizard.next()
    from edgestudio.core.formats import ModelFormat

    assert wizard.target_page.boxes[ModelFormat.ONNX].isEnabled()  # torch.onnx, from the torch environment
    wizard.target_page.mcu.setChecked(True)
    wizard.next()
    assert not wizard.options_page.isComplete()  # calibration data first
    wizard.options_page.calibration.set_text(str(SAMPLES / "digits_calib.npz"))
    assert wizard.options_page.isComplete()
    wizard.next()
    assert "TFLite Micro" in wizard.plan_page.text.text() and "torch.onnx" in wizard.plan_page.text.text()
    wizard.next()
    qtbot.waitUntil(lambda: wizard.run_page.isComplete(), timeout=600_000)
    assert not wizard.errors, wizard.errors
    summary = wizard.run_page.mcu_summary.text()
    assert "measured in the TFLM interpreter" in summary and "unsupported: none" in summary
    formats = [m.format.value for m in win.workspace.models()]
    assert formats[:2] == ["pt2", "onnx"] and formats.count("tflite") == 2
    (ROOT / "build").mkdir(exist_ok=True)
    wizard.run_page.grab().save(str(ROOT / "build" / "wizard-microcontroller.png"))


@pytest.fixture(scope="session")
def litert_torch_env(torch_env: Path) -> Path:
    """The catalog's litert-torch environment (torch + LiteRT Torch, ~2 GB: JAX and the LiteRT converter come with
    it), created once in ``.cache/envs``."""
    return ensure_env("litert-torch")


_TORCH_OUT = """
import sys, numpy as np, torch
x = torch.from_numpy(np.load(sys.argv[2]))
if sys.argv[1].endswith(".pt2"):
    m = torch.export.load(sys.argv[1]).module()
else:
    m = torch.jit.load(sys.argv[1])
np.save(sys.argv[3], np.concatenate([m(x[k:k + 1]).detach().numpy() for k in range(len(x))]))
"""


def test_pytorch_to_tflite_with_litert_torch(litert_torch_env: Path, digits_net: Path, tmp_path: Path) -> None:
    """PyTorch -> TFLite in one hop with LiteRT Torch (no ONNX in between), from an ExportedProgram and from
    TorchScript (through torch.export), checked against PyTorch by the hop and here with PyTorch and LiteRT
    called directly on the same digits."""
    from ai_edge_litert.interpreter import Interpreter

    test = np.load(SAMPLES / "digits_test.npz")["x"][:16].transpose(0, 3, 1, 2).astype(np.float32)
    np.save(tmp_path / "x.npy", test)
    data = tmp_path / "x.npz"
    np.savez(data, x=test[:4])
    for name, extra in (("digits_net.pt2", []), ("digits_net.pt", ["--shape", "x=1,1,8,8"])):
        out = tmp_path / f"{name}.tflite"
        r = cli("convert", str(digits_net / name), "--to", "tflite", "--input", str(data), *extra, "-o", str(out),
                "--json")
        assert r.returncode == 0, r.stderr
        (step,) = json.loads(r.stdout)["steps"]
        assert step["converter"] == "litert-torch" and step["parity"]["verdict"] == "passed", step
        assert not step["parity"]["inputs"].get("random")
        # independently: PyTorch in its environment, LiteRT here, on 16 digits one at a time
        subprocess.run([str(litert_torch_env), "-c", _TORCH_OUT, str(digits_net / name), str(tmp_path / "x.npy"),
                        str(tmp_path / "want.npy")], check=True, capture_output=True, timeout=300)
        want = np.load(tmp_path / "want.npy")
        interp = Interpreter(model_path=str(out))
        interp.allocate_tensors()
        i, o = interp.get_input_details()[0], interp.get_output_details()[0]
        got = []
        for x in test:
            interp.set_tensor(i["index"], x[None])
            interp.invoke()
            got.append(interp.get_tensor(o["index"])[0])
        np.testing.assert_allclose(np.stack(got), want, rtol=1e-4, atol=1e-4)
        assert (np.stack(got).argmax(1) == want.argmax(1)).all()


@pytest.fixture(scope="session")
def executorch_env(torch_env: Path) -> Path:
    """The catalog's executorch environment (torch + ExecuTorch 1.5, ~1.5 GB), created once in ``.cache/envs``."""
    return ensure_env("executorch")


_ET_OUT = """
import sys, numpy as np, torch
from executorch.runtime import Runtime
method = Runtime.get().load_program(sys.argv[1]).load_method("forward")
x = np.load(sys.argv[2])
np.save(sys.argv[3], np.concatenate([method.execute([torch.from_numpy(x[k:k + 1])])[0].numpy() for k in range(len(x))]))
"""


def test_pytorch_to_executorch_inspected_benchmarked_and_compared(executorch_env: Path, digits_net: Path,
                                                                  tmp_path: Path) -> None:
    """.pt2 -> .pte (XNNPACK) in the executorch environment, checked against PyTorch by the hop; the .pte is
    recognised by its bytes, inspected and benchmarked (forwarded to its environment) and compared beside ONNX
    Runtime; independently, ExecuTorch's runtime and PyTorch called directly agree on 16 digits."""
    test = np.load(SAMPLES / "digits_test.npz")["x"][:16].transpose(0, 3, 1, 2).astype(np.float32)
    np.save(tmp_path / "x.npy", test)
    data = tmp_path / "x.npz"
    np.savez(data, x=test[:4])
    pte = tmp_path / "digits.pte"
    r = cli("convert", str(digits_net / "digits_net.pt2"), "--to", "executorch", "--input", str(data), "-o", str(pte),
            "--json")
    assert r.returncode == 0, r.stderr
    (step,) = json.loads(r.stdout)["steps"]
    assert step["converter"] == "executorch" and step["parity"]["verdict"] == "passed", step
    info = json.loads(cli("inspect", str(pte), "--json").stdout)
    assert info["format"] == "pte" and info["inputs"][0]["shape"] == [1, 1, 8, 8]
    bench = cli("bench", str(pte), "--iterations", "30", "--json")
    assert bench.returncode == 0, bench.stderr
    assert json.loads(bench.stdout)["runtime"] == "executorch" and json.loads(bench.stdout)["latency_ms"]["p50"] > 0
    onnx = tmp_path / "digits.onnx"
    assert cli("convert", str(digits_net / "digits_net.pt2"), "--to", "onnx", "-o", str(onnx)).returncode == 0
    cmp = cli("compare", str(pte), str(onnx), "--iterations", "30", "--json")
    assert cmp.returncode == 0, cmp.stderr
    rows = json.loads(cmp.stdout)
    rows = rows if isinstance(rows, list) else rows["rows"]
    assert {r["runtime"] for r in rows} == {"executorch", "onnxruntime"} and all(r["p50_ms"] for r in rows), rows
    # independently: ExecuTorch's runtime against PyTorch, both called directly
    subprocess.run([str(executorch_env), "-c", _ET_OUT, str(pte), str(tmp_path / "x.npy"), str(tmp_path / "got.npy")],
                   check=True, capture_output=True, timeout=300)
    subprocess.run([str(executorch_env), "-c", _TORCH_OUT, str(digits_net / "digits_net.pt2"), str(tmp_path / "x.npy"),
                    str(tmp_path / "want.npy")], check=True, capture_output=True, timeout=300)
    np.testing.assert_allclose(np.load(tmp_path / "got.npy"), np.load(tmp_path / "want.npy"), rtol=1e-4, atol=1e-4)
    # INT8: PT2E with the XNNPACK quantizer, calibrated on the digits, drift-guarded against PyTorch
    int8 = tmp_path / "digits_int8.pte"
    r = cli("optimize", str(digits_net / "digits_net.pt2"), "--method", "int8-static", "--runtime", "executorch",
            "--calibration", str(SAMPLES / "digits_calib.npz"), "-o", str(int8), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["details"]["drift"]["verdict"] == "passed" and int8.stat().st_size < 0.7 * pte.stat().st_size
    subprocess.run([str(executorch_env), "-c", _ET_OUT, str(int8), str(tmp_path / "x.npy"), str(tmp_path / "q.npy")],
                   check=True, capture_output=True, timeout=300)
    q, want = np.load(tmp_path / "q.npy"), np.load(tmp_path / "want.npy")
    assert not np.array_equal(q, want)  # really quantized...
    assert (q.argmax(1) == want.argmax(1)).mean() >= 0.9  # ...and still the digits
    # a deployment package of the INT8 program: its run.py reproduces the expected output with ExecuTorch's runtime
    r = cli("package", str(int8), "-o", str(tmp_path / "et.zip"), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["requirements"][:2] == ["executorch==1.5.1", "torch==2.13.0"]
    with zipfile.ZipFile(tmp_path / "et.zip") as zf:
        zf.extractall(tmp_path / "pkg")
    (root,) = (tmp_path / "pkg").iterdir()
    assert "executor_runner --model_path=" in (root / "README.md").read_text()  # the device's C++ runner, said how
    subprocess.run([str(executorch_env), str(root / "run.py"), "--output", str(tmp_path / "y.npy")], check=True,
                   capture_output=True, timeout=300, cwd=root)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), np.load(root / "expected_output.npy"), rtol=1e-5, atol=1e-6)


def test_the_wizard_offers_executorch_and_tflite_for_a_pytorch_model(qtbot, torch_window, executorch_env: Path,  # type: ignore[no-untyped-def]
                                                                    litert_torch_env: Path, digits_net: Path) -> None:
    """A .pt2 in the studio: the wizard's targets include ExecuTorch (and TFLite, through LiteRT Torch); for an ONNX
    model ExecuTorch is offered disabled, saying why."""
    from edgestudio.core.formats import ModelFormat

    (pt2,) = torch_window.import_paths([digits_net / "digits_net.pt2"])
    (onnx_id,) = torch_window.import_paths([SAMPLES / "digits_cnn.onnx"])
    for model_id, pte_ok in ((pt2, True), (onnx_id, False)):
        wizard = torch_window.model_action("convert", model_id)
        wizard.next()
        page = wizard.currentPage()
        assert page.boxes[ModelFormat.PTE].isEnabled() is pte_ok and page.boxes[ModelFormat.TFLITE].isEnabled()
        if not pte_ok:
            assert page.boxes[ModelFormat.PTE].toolTip()  # the reason (no converter reads ONNX into a .pte)
        wizard.close()


def test_the_pytorch_sample_goes_to_executorch_checked_against_pytorch(executorch_env: Path, tmp_path: Path) -> None:
    """resources/samples/digits_cnn.pt2 (make samples, in the torch environment): one hop to a .pte, each output
    checked against PyTorch's on the same inputs."""
    r = cli("convert", str(SAMPLES / "digits_cnn.pt2"), "--to", "executorch", "-o", str(tmp_path / "d.pte"), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    parity = d["steps"][0]["parity"]
    assert d["verdict"] == "passed" and parity["parent_runtime"] == "torch" and parity["child_runtime"] == "executorch"


def test_a_pte_without_a_delegate_is_debugged_op_by_op_from_the_cli(executorch_env: Path, tmp_path: Path) -> None:
    """XNNPACK blocks hide their insides from ETDump; --executorch-delegate none / --delegate none make FP32 and INT8
    programs of portable ops, which debug compares op by op (every op paired, none opaque)."""
    cal, x8 = tmp_path / "cal.npz", tmp_path / "x8.npz"
    np.savez(cal, x=np.load(SAMPLES / "digits_calib.npz")["x"].transpose(0, 3, 1, 2).astype(np.float32))
    test = np.load(SAMPLES / "digits_test.npz")["x"][:8].transpose(0, 3, 1, 2).astype(np.float32)
    np.savez(x8, x=test[:, None])  # 8 samples of [1, 1, 8, 8]
    fp32, int8 = tmp_path / "f.pte", tmp_path / "q.pte"
    r = cli("convert", str(SAMPLES / "digits_cnn.pt2"), "--to", "executorch", "--executorch-delegate", "none", "-o",
            str(fp32), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["verdict"] == "passed", r.stderr
    r = cli("optimize", str(SAMPLES / "digits_cnn.pt2"), "--runtime", "executorch", "--method", "int8-static",
            "--delegate", "none", "--calibration", str(cal), "-o", str(int8), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["details"]["drift"]["verdict"] == "passed", r.stderr
    r = cli("debug", str(int8), "--parent", str(fp32), "--input", str(x8), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["matched"] >= 5 and d["verdict"] == "agrees" and not d.get("opaque"), {k: d.get(k) for k in (
        "verdict", "matched", "opaque", "note")}
