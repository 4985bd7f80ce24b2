"""Format detection from content and inspection of real models: samples, built models, the onnx model zoo."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgestudio.core.errors import ModelFormatError, UnsafeModelError
from edgestudio.core.formats import ModelFormat, detect_format
from edgestudio.core.inspection import inspect_model
from tests.conftest import zoo_models

DIGITS_PARAMS = 38282  # conv1 160 + conv2 4640 + fc1 32832 + probs 650


@pytest.mark.parametrize("name,fmt", [
    ("digits_cnn.keras", ModelFormat.KERAS), ("digits_cnn_savedmodel", ModelFormat.SAVED_MODEL),
    ("digits_cnn.onnx", ModelFormat.ONNX), ("digits_cnn.tflite", ModelFormat.TFLITE),
])
def test_detects_samples(samples: Path, name: str, fmt: ModelFormat) -> None:
    assert detect_format(samples / name) is fmt


def test_detection_ignores_extension(tmp_path: Path, sample_onnx: Path, sample_tflite: Path) -> None:
    shutil.copy(sample_onnx, tmp_path / "model.tflite")
    shutil.copy(sample_tflite, tmp_path / "model.onnx")
    assert detect_format(tmp_path / "model.tflite") is ModelFormat.ONNX
    assert detect_format(tmp_path / "model.onnx") is ModelFormat.TFLITE


@pytest.mark.parametrize("name", ["digits_cnn.keras", "digits_cnn_savedmodel", "digits_cnn.onnx", "digits_cnn.tflite"])
def test_inspect_samples(samples: Path, name: str) -> None:
    info = inspect_model(samples / name)
    assert info.size_bytes > 10_000
    assert len(info.inputs) == 1 and len(info.outputs) == 1
    inp, out = info.inputs[0], info.outputs[0]
    assert inp.dtype == "float32" and inp.shape[1:] == [8, 8, 1] and not isinstance(inp.shape[0], int)
    assert out.shape[1:] == [10]
    # Converters add a few shape constants; the weights are the Keras model's 38,282.
    assert DIGITS_PARAMS <= info.parameters <= DIGITS_PARAMS + 32
    if info.format is not ModelFormat.SAVED_MODEL:
        assert info.macs == 8 * 8 * 16 * 9 + 8 * 8 * 32 * 144 + 512 * 64 + 64 * 10
    assert sum(info.ops.values()) >= 5
    json.dumps(info.to_dict())


def test_inspect_onnx_details(sample_onnx: Path) -> None:
    info = inspect_model(sample_onnx)
    assert info.opset == 17 and info.ops["Conv"] == 2
    assert info.producer is not None and info.producer.startswith("tf2onnx ") and "None" not in info.producer


def test_inspect_h5_and_ir(sample_h5: Path, sample_ir: Path) -> None:
    h5 = inspect_model(sample_h5)
    assert h5.format is ModelFormat.KERAS_H5 and h5.parameters == DIGITS_PARAMS
    ir = inspect_model(sample_ir)
    assert ir.format is ModelFormat.OPENVINO and ir.opset == 11
    assert ir.size_bytes == sample_ir.stat().st_size + sample_ir.with_suffix(".bin").stat().st_size
    assert ir.ops["Convolution"] == 2 and ir.macs == 8 * 8 * 16 * 9 + 8 * 8 * 32 * 144 + 512 * 64 + 64 * 10
    assert ir.inputs[0].shape[1:] == [8, 8, 1]


def test_inspect_tfjs_layers_model(tmp_path: Path) -> None:
    folder = tmp_path / "web_model"
    folder.mkdir()
    doc = {
        "format": "layers-model", "generatedBy": "keras v2.15", "convertedBy": "TensorFlow.js Converter v4.22",
        "modelTopology": {"class_name": "Sequential", "config": {"name": "s", "layers": [
            {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 4], "dtype": "float32", "name": "x"}},
            {"class_name": "Dense", "config": {"units": 3, "name": "d"}}]}},
        "weightsManifest": [{"paths": ["group1-shard1of1.bin"], "weights": [
            {"name": "d/kernel", "shape": [4, 3], "dtype": "float32"}, {"name": "d/bias", "shape": [3], "dtype": "float32"}]}],
    }
    (folder / "model.json").write_text(json.dumps(doc))
    (folder / "group1-shard1of1.bin").write_bytes(np.zeros(15, np.float32).tobytes())
    info = inspect_model(folder)
    assert info.format is ModelFormat.TFJS and info.parameters == 15 and info.ops == {"Dense": 1}
    assert info.inputs[0].shape == ["batch", 4]


@pytest.mark.parametrize("model", zoo_models(), ids=lambda p: p.stem)
def test_inspect_model_zoo(model: Path) -> None:
    info = inspect_model(model)
    assert info.format is ModelFormat.ONNX
    assert info.inputs and info.inputs[0].shape == [1, 3, 224, 224]
    assert info.parameters and info.parameters > 1_000_000
    assert info.macs and info.macs > 100_000_000
    if model.stem == "light_resnet50":
        assert 25_500_000 < info.parameters < 25_700_000 and 4.0e9 < info.macs < 4.2e9


# ------------------------------------------------------------------------------------------ bad input
def _bad_files(tmp: Path, onnx_src: Path, tflite_src: Path) -> dict[str, Path]:
    files = {}
    (tmp / "empty.onnx").write_bytes(b"")
    files["empty"] = tmp / "empty.onnx"
    data = onnx_src.read_bytes()
    (tmp / "truncated.onnx").write_bytes(data[: len(data) // 2])
    files["truncated onnx"] = tmp / "truncated.onnx"
    data = tflite_src.read_bytes()
    (tmp / "truncated.tflite").write_bytes(data[: len(data) // 3])
    files["truncated tflite"] = tmp / "truncated.tflite"
    (tmp / "random.onnx").write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    files["random bytes"] = tmp / "random.onnx"
    (tmp / "notes.txt").write_text("hello, not a model\n")
    files["text"] = tmp / "notes.txt"
    with zipfile.ZipFile(tmp / "fake.keras", "w") as zf:
        zf.writestr("readme.txt", "nothing")
    files["zip not keras"] = tmp / "fake.keras"
    (tmp / "bad.xml").write_text("<?xml version='1.0'?><net name='x' version='11'><layers/></net>")
    files["ir without bin"] = tmp / "bad.xml"
    (tmp / "empty_dir").mkdir()
    files["empty folder"] = tmp / "empty_dir"
    (tmp / "broken.json").write_text("{ not json")
    files["broken json"] = tmp / "broken.json"
    import pickle

    (tmp / "evil.onnx").write_bytes(pickle.dumps({"a": 1}))
    files["pickle"] = tmp / "evil.onnx"
    (tmp / "garbage.tflite").write_bytes(b"\x10\x00\x00\x00TFL3" + b"\xff" * 200)
    files["corrupt tflite"] = tmp / "garbage.tflite"
    return files


def test_bad_files_give_one_line_errors(tmp_path: Path, sample_onnx: Path, sample_tflite: Path) -> None:
    for what, path in _bad_files(tmp_path, sample_onnx, sample_tflite).items():
        with pytest.raises(ModelFormatError) as err:
            inspect_model(path)
        msg = str(err.value)
        assert msg.startswith(str(path) + ": "), (what, msg)
        assert "\n" not in msg and len(msg) < 600, (what, msg)


def test_missing_file() -> None:
    with pytest.raises(ModelFormatError, match="no such file"):
        detect_format("/nonexistent/model.onnx")


def test_h5_weights_only_is_refused(tmp_path: Path) -> None:
    import h5py

    with h5py.File(tmp_path / "w.h5", "w") as f:
        f.create_dataset("dense/kernel", data=np.zeros((2, 2)))
    with pytest.raises(ModelFormatError, match="no Keras model"):
        detect_format(tmp_path / "w.h5")


def test_lambda_layer_is_never_executed(lambda_keras: Path) -> None:
    with pytest.raises(UnsafeModelError, match="arbitrary Python code"):
        inspect_model(lambda_keras)
