"""Deployment packages for real: the runner in the zip runs in a fresh venv that has only the listed
requirements and reproduces EdgeStudio's output; TFLite Micro sources compile; the CLI and the GUI make them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgestudio.core.errors import EdgeStudioError
from edgestudio.packaging.deploy import build_package
from edgestudio.packaging.tflm import arena_estimate
from tests.conftest import SAMPLES, run_cli

TEST = str(SAMPLES / "digits_test.npz")


def _unzip(z: Path, to: Path) -> Path:
    with zipfile.ZipFile(z) as zf:
        zf.extractall(to)
    (root,) = [p for p in to.iterdir() if p.is_dir()]
    return root


def test_runner_works_in_a_clean_venv(tmp_path: Path) -> None:
    """unzip, create a fresh venv with only requirements.txt, run the runner, compare with EdgeStudio."""
    x = np.load(TEST)["x"][:1]
    np.save(tmp_path / "x.npy", x)
    manifest = build_package(SAMPLES / "digits_cnn.onnx", "onnxruntime", tmp_path / "pkg.zip",
                             input_npy=tmp_path / "x.npy", dataset=TEST, iterations=20)
    assert manifest["requirements"][0].startswith("onnxruntime==") and len(manifest["requirements"]) == 2
    root = _unzip(tmp_path / "pkg.zip", tmp_path / "unzipped")
    assert sorted(p.name for p in root.iterdir()) == ["README.md", "expected_output.npy", "input.npy", "lineage.json",
                                                      "model", "report.json", "report.md", "requirements.txt", "run.py"]
    report = json.loads((root / "report.json").read_text())
    assert report["accuracy"]["top1"] > 0.96 and report["benchmark"]["latency_ms"]["p50"] > 0
    assert "onnxruntime" in report["versions"] and "## Benchmark" in (root / "report.md").read_text()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-r",
                          str(root / "requirements.txt")], capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr[-2000:]
    out = subprocess.run([str(venv / "bin" / "python"), str(root / "run.py"), "--output", str(tmp_path / "y.npy"),
                          "--runs", "5"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    printed = json.loads(out.stdout.strip().splitlines()[-1])
    assert printed["runtime"] == "onnxruntime" and printed["latency_ms_p50"] > 0
    expected = np.load(root / "expected_output.npy")
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, rtol=1e-5, atol=1e-6)
    assert printed["top1"] == [int(expected.argmax())]


@pytest.mark.parametrize("model,runtime", [("digits_cnn.tflite", "litert"), ("digits_cnn.onnx", "openvino")])
def test_runner_for_other_runtimes(tmp_path: Path, model: str, runtime: str) -> None:
    """The same check without a fresh venv (their wheels are large): the runner reproduces the output."""
    build_package(SAMPLES / model, runtime, tmp_path / "p.zip", iterations=10)
    root = _unzip(tmp_path / "p.zip", tmp_path / "u")
    out = subprocess.run([sys.executable, str(root / "run.py"), "--output", str(tmp_path / "y.npy"),
                          "--precision", "f32" if runtime == "openvino" else ""], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), np.load(root / "expected_output.npy"), rtol=1e-5, atol=1e-6)
    assert (root / "requirements.txt").read_text().startswith({"litert": "ai-edge-litert==", "openvino": "openvino=="}[runtime])


def test_tflm_sources_compile_and_hold_the_model(tmp_path: Path) -> None:
    manifest = build_package(SAMPLES / "digits_cnn.tflite", "litert", tmp_path / "m.zip", tflm=True, iterations=5)
    # conv1 (8x8x16) and conv2 (8x8x32) float outputs are alive together: 4096 + 8192 bytes at the peak
    assert manifest["tflm"]["peak_activation_bytes"] == 12288
    assert arena_estimate(SAMPLES / "digits_cnn.tflite")["arena_bytes"] == manifest["tflm"]["estimate_bytes"]
    assert manifest["tflm"]["arena_measured"]  # the header holds the arena TFLM itself needed
    root = _unzip(tmp_path / "m.zip", tmp_path / "u")
    header = (root / "tflm" / "digits_cnn_model_data.h").read_text()
    assert f"ArenaSize = {manifest['tflm']['arena_bytes']}" in header
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler on this machine")
    main = tmp_path / "main.cc"
    main.write_text('#include <cstdio>\n#include "digits_cnn_model_data.h"\nint main() {\n'
                    '  std::printf("%u %02x%02x%02x%02x\\n", digits_cnn_model_data_len, digits_cnn_model_data[4],\n'
                    '              digits_cnn_model_data[5], digits_cnn_model_data[6], digits_cnn_model_data[7]);\n}\n')
    exe = tmp_path / "check"
    subprocess.run([cxx, "-std=c++17", "-I", str(root / "tflm"), str(main), str(root / "tflm" / "digits_cnn_model_data.cc"),
                    "-o", str(exe)], check=True, capture_output=True, timeout=300)
    printed = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()
    assert printed == [str((SAMPLES / "digits_cnn.tflite").stat().st_size), b"TFL3".hex()]


@pytest.fixture(scope="module")
def digits_int8(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits model quantized to full INT8 (what TFLM runs), calibrated on the digits samples."""
    out = tmp_path_factory.mktemp("int8") / "digits_int8.tflite"
    r = run_cli("optimize", str(SAMPLES / "digits_cnn.keras"), "--method", "int8-static", "--runtime", "litert",
                "--calibration", str(SAMPLES / "digits_calib.npz"), "-o", str(out))
    assert r.returncode == 0, r.stderr
    return out


def test_tflm_arena_is_measured_in_the_real_interpreter(digits_int8: Path) -> None:
    """The arena comes from TFLM itself: it runs the model with that arena and fails with 16 bytes less (the old
    estimate, 5,120 bytes, failed AllocateTensors on a device). TFLM's outputs match LiteRT's."""
    from tflite_micro.python.tflite_micro import runtime

    from edgestudio.packaging.tflm import verify_tflm

    v = verify_tflm(digits_int8, {"data": str(SAMPLES / "digits_test.npz")})
    data = digits_int8.read_bytes()
    it = runtime.Interpreter.from_bytes(data, arena_size=v["arena_bytes"])
    x = np.load(SAMPLES / "digits_test.npz")["x"][:1].astype(np.float32)
    it.set_input(x, 0)
    assert it.invoke() == 0
    with pytest.raises(RuntimeError):
        runtime.Interpreter.from_bytes(data, arena_size=v["arena_bytes"] - 16)
    assert v["arena_bytes"] > v["estimate_bytes"] == 5120
    assert v["arena_parts"]["head"] + v["arena_parts"]["tail"] == v["arena_bytes"]
    assert v["parity"]["verdict"] == "passed" and not v["parity"]["random_inputs"]
    assert "CONV_2D" in v["ops"] and v["flash_bytes"] == len(data)


def test_tflm_names_the_ops_it_lacks(tmp_path: Path) -> None:
    """A model using an op TFLM has no kernel for is refused, naming the op (no package that fails on the MCU)."""
    import tensorflow as tf

    from edgestudio.packaging.tflm import TflmError, verify_tflm

    class M(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32)])
        def __call__(self, x):  # noqa: ANN001, ANN204
            return tf.math.top_k(x, k=2).values  # TOPK_V2: in LiteRT, not in TFLM

    m = M()
    conv = tf.lite.TFLiteConverter.from_concrete_functions([m.__call__.get_concrete_function()], m)
    path = tmp_path / "topk.tflite"
    path.write_bytes(conv.convert())
    with pytest.raises(TflmError, match="no kernel for TOPK_V2"):
        verify_tflm(path)


def test_package_errors(tmp_path: Path) -> None:
    with pytest.raises(EdgeStudioError, match="litert does not run ONNX"):
        build_package(SAMPLES / "digits_cnn.onnx", "litert", tmp_path / "x.zip")
    with pytest.raises(EdgeStudioError, match="TFLite Micro export needs a .tflite"):
        build_package(SAMPLES / "digits_cnn.onnx", "onnxruntime", tmp_path / "x.zip", tflm=True)
    assert not (tmp_path / "x.zip").exists()


def test_cli_package_with_workspace_lineage(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    conv = json.loads(run_cli("convert", str(SAMPLES / "digits_cnn.keras"), "--to", "tflite", "--workspace", ws,
                              "--json").stdout)
    r = run_cli("package", conv["output"], "--workspace", ws, "-o", str(tmp_path / "d.zip"), "--tflm", "--json",
                "--iterations", "10")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["runtime"] == "litert" and d["package"] == str((tmp_path / "d.zip").resolve())
    lineage = json.loads(zipfile.ZipFile(tmp_path / "d.zip").read("digits_cnn/lineage.json"))
    names = [s["name"] for s in lineage["lineage"]]
    assert names == ["digits_cnn.keras", "digits_cnn.tflite"]
    assert lineage["lineage"][1]["options"]["converter"] == "tf-tflite" and "tensorflow-cpu" in lineage["versions"]


TOPK_MODEL = '''
import sys

import numpy as np
import tensorflow as tf


class M(tf.Module):
    def __init__(self):
        self.w = tf.Variable(np.random.default_rng(0).normal(size=(8, 8)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32)])
    def __call__(self, x):
        return tf.math.top_k(tf.matmul(x, self.w), k=2).values  # TOPK_V2: in LiteRT, not in TFLM


m = M()
tf.saved_model.save(m, sys.argv[1], signatures=m.__call__.get_concrete_function())
np.savez(sys.argv[2], x=np.random.default_rng(1).normal(size=(32, 1, 8)).astype(np.float32))
'''


def test_the_wizard_says_which_ops_a_microcontroller_lacks(qtbot, window, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The studio's microcontroller target on a model with an op TFLM has no kernel for: the INT8 model is made and
    checked, then the wizard says in red which op the microcontroller lacks, and no package is written."""
    import subprocess
    import sys

    script = tmp_path / "make_topk.py"
    script.write_text(TOPK_MODEL)
    sm, calib = tmp_path / "topk_savedmodel", tmp_path / "calib.npz"
    subprocess.run([sys.executable, str(script), str(sm), str(calib)], check=True, capture_output=True, timeout=300)
    (model_id,) = window.import_paths([sm])
    wizard = window.model_action("convert", model_id)
    qtbot.addWidget(wizard)
    wizard.next()
    assert wizard.target_page.mcu.isEnabled()
    wizard.target_page.mcu.setChecked(True)
    wizard.next()
    wizard.options_page.calibration.set_text(str(calib))
    wizard.next()
    wizard.next()
    qtbot.waitUntil(lambda: wizard.run_page.isComplete(), timeout=600_000)
    summary = wizard.run_page.mcu_summary.text()
    assert wizard.errors and "no kernel for TOPK_V2" in summary and "#c0392b" in summary, summary
    assert "replace those layers" in summary  # what to do about it
    assert not list((window.workspace.root / "artifacts").rglob("*.zip"))  # no package that fails on the MCU
