"""Never change anything beside the user's model: every command works on private copies (ONNX Runtime's quantizer
writes ``<model>-inferred.onnx`` beside its input and removes it, which once deleted a user's file of that name;
onnx2tf rewrites its input; tensorflowjs unzips beside it). Files planted beside the model must come out of every
command byte for byte, and nothing may be added there but the output asked for."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLES


def _state(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    folder = tmp_path / "user"
    folder.mkdir()
    shutil.copy(SAMPLES / "digits_cnn.onnx", folder / "m.onnx")
    shutil.copy(SAMPLES / "digits_cnn.keras", folder / "k.keras")
    shutil.copy(SAMPLES / "digits_cnn.tflite", folder / "t.tflite")
    for name in ("m-inferred.onnx", "m-opt.onnx", "m_int8.onnx.tmp", "k_savedmodel", "augmented_model.onnx",
                 "m.data", "notes.txt"):
        (folder / name).write_text(f"the user's own {name}")
    return folder


@pytest.mark.parametrize("command", [
    ["optimize", "m.onnx", "--method", "int8-static", "--runtime", "onnxruntime", "--calibration", "CALIB"],
    ["optimize", "m.onnx", "--method", "int8-static", "--runtime", "openvino", "--calibration", "CALIB"],
    ["optimize", "m.onnx", "--method", "fp16", "--runtime", "onnxruntime"],
    ["convert", "m.onnx", "--to", "openvino"],
    ["convert", "m.onnx", "--to", "tflite"],
    ["convert", "k.keras", "--to", "tfjs"],
    ["bench", "m.onnx", "--iterations", "5"],
    ["debug", "m.onnx", "--parent", "m.onnx"],
    ["profile", "m.onnx", "--runs", "3"],
    ["inspect", "m.onnx"],
    ["optimize", "t.tflite", "--method", "int8-static", "--runtime", "litert", "--calibration", "CALIB"],
    ["convert", "t.tflite", "--to", "onnx"],
    ["package", "m.onnx"],
], ids=lambda c: "-".join(c[:1] + c[2:5]))
def test_nothing_beside_the_model_changes(planted: Path, tmp_path: Path, command: list[str]) -> None:
    before = _state(planted)
    out = tmp_path / "out"
    out.mkdir()
    args = [a.replace("CALIB", str(SAMPLES / "digits_calib.npz")) for a in command]
    args = [str(planted / a) if a in ("m.onnx", "k.keras", "t.tflite") else a for a in args]
    if args[0] in ("optimize", "convert", "package"):
        args += ["-o", str(out)]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    r = subprocess.run([sys.executable, "-m", "edgestudio", *args], capture_output=True, text=True, timeout=900,
                       env=env, cwd=planted)
    assert r.returncode == 0, r.stderr[-1500:]
    after = _state(planted)
    changed = {k for k in before if after.get(k) != before[k]}
    added = set(after) - set(before)
    assert not changed and not added, f"changed {sorted(changed)}, added {sorted(added)}"
    if args[0] in ("optimize", "convert"):
        assert any(out.iterdir())
    assert ROOT.exists()
