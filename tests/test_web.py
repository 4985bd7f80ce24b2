"""The web as an edge target: TF.js export (graph models, float16/uint8 weights) checked by running the result
(TF.js graph in TensorFlow, through tfjs-graph-converter), and browser runtimes in headless Chromium."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import SAMPLES, run_cli


@pytest.mark.parametrize("sample", ["digits_cnn.keras", "digits_cnn_savedmodel"])
def test_tfjs_export_runs_and_matches(sample: str, tmp_path: Path) -> None:
    out = tmp_path / "web"
    r = run_cli("convert", str(SAMPLES / sample), "--to", "tfjs", "-o", str(out), "--json", timeout=600)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    step = d["steps"][-1]
    assert step["converter"] == "tensorflowjs" and step["parity"]["verdict"] == "passed"
    assert step["parity"]["child_runtime"] == "tfjs-graph" and step["parity"]["max_abs_diff"] < 1e-5
    doc = json.loads((out / "model.json").read_text())
    assert doc["format"] == "graph-model"  # Keras-3 layers models do not load in tfjs: graph models do
    assert not list(out.parent.glob("*.keras.*"))  # nothing unpacked beside the input
    info = json.loads(run_cli("inspect", str(out), "--json").stdout)
    assert info["format"] == "tfjs" and info["parameters"] > 10_000


def test_tfjs_uint8_weights_are_smaller_and_checked_with_a_cosine_floor(tmp_path: Path) -> None:
    full, small = tmp_path / "f32", tmp_path / "u8"
    assert run_cli("convert", str(SAMPLES / "digits_cnn.keras"), "--to", "tfjs", "-o", str(full)).returncode == 0
    r = run_cli("convert", str(SAMPLES / "digits_cnn.keras"), "--to", "tfjs", "--tfjs-quantization", "uint8", "-o",
                str(small), "--json", timeout=600)
    assert r.returncode == 0, r.stderr
    parity = json.loads(r.stdout)["steps"][-1]["parity"]
    assert parity["mode"] == "lossy" and parity["cosine"] >= 0.999 and parity["max_abs_diff"] > 1e-5

    def size(folder: Path) -> int:
        return sum(f.stat().st_size for f in folder.glob("*.bin"))

    assert size(small) * 3 < size(full)
