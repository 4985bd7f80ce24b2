"""The command-line contract, run as a real process: JSON shapes, exit codes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import SAMPLES, run_cli, zoo_models
from tests.test_inspection import _bad_files

BENCH_KEYS = {"runtime", "device", "model", "iterations", "latency_ms", "throughput_fps", "load_ms",
              "first_inference_ms", "peak_rss_mb"}


@pytest.mark.parametrize("name", ["digits_cnn.onnx", "digits_cnn.tflite", "digits_cnn.keras", "digits_cnn_savedmodel"])
def test_inspect_json(name: str) -> None:
    r = run_cli("inspect", str(SAMPLES / name), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert {"format", "path", "size_bytes", "inputs", "outputs", "ops", "parameters", "macs", "opset"} <= set(d)
    assert d["inputs"][0]["shape"][1:] == [8, 8, 1] and d["inputs"][0]["dtype"] == "float32"


def test_inspect_zoo_json() -> None:
    model = zoo_models()[0]
    d = json.loads(run_cli("inspect", str(model), "--json").stdout)
    assert d["format"] == "onnx" and d["opset"] and d["ops"]


def test_inspect_text() -> None:
    r = run_cli("inspect", str(SAMPLES / "digits_cnn.onnx"))
    assert r.returncode == 0 and "parameters" in r.stdout and "Conv x2" in r.stdout


def test_devices_json() -> None:
    r = run_cli("devices", "--json")
    assert r.returncode == 0, r.stderr
    devices = json.loads(r.stdout)
    assert {d["runtime"] for d in devices} >= {"onnxruntime", "openvino", "litert", "tensorflow", "tfjs-graph"}
    assert all(set(d) == {"runtime", "device", "description"} for d in devices)


@pytest.mark.parametrize("name,rt", [("digits_cnn.onnx", "onnxruntime"), ("digits_cnn.onnx", "openvino"),
                                     ("digits_cnn.tflite", "litert"), ("digits_cnn.keras", "tensorflow"),
                                     ("digits_cnn_savedmodel", "tensorflow")])
def test_bench_json(name: str, rt: str) -> None:
    r = run_cli("bench", str(SAMPLES / name), "--runtime", rt, "--iterations", "30", "--warmup", "2",
                "--threads", "1", "--shape", "2,8,8,1", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert BENCH_KEYS <= set(d)
    assert d["runtime"] == rt and d["device"] == "CPU" and d["iterations"] == 30
    assert set(d["latency_ms"]) == {"mean", "std", "min", "p50", "p90", "p95", "p99", "max"}
    assert list(d["input_shapes"].values()) == [[2, 8, 8, 1]]


def test_bench_zoo_default_runtime() -> None:
    model = [m for m in zoo_models() if m.stem == "light_squeezenet"][0]
    d = json.loads(run_cli("bench", str(model), "--iterations", "3", "--json").stdout)
    assert d["runtime"] == "onnxruntime" and d["iterations"] == 3


def _assert_one_line_error(r, path: Path | None = None) -> None:  # type: ignore[no-untyped-def]
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and r.stdout == ""
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, r.stderr
    if path is not None:
        assert lines[0].startswith(f"error: {path}: "), lines[0]


def test_bad_files_exit_1_with_one_line(tmp_path: Path) -> None:
    files = _bad_files(tmp_path, SAMPLES / "digits_cnn.onnx", SAMPLES / "digits_cnn.tflite")
    for what in ("empty", "truncated onnx", "truncated tflite", "random bytes", "zip not keras", "corrupt tflite"):
        _assert_one_line_error(run_cli("inspect", str(files[what]), "--json"), files[what])
    _assert_one_line_error(run_cli("bench", str(files["truncated onnx"])), files["truncated onnx"])


def test_wrong_runtime_for_format() -> None:
    r = run_cli("bench", str(SAMPLES / "digits_cnn.onnx"), "--runtime", "litert")
    _assert_one_line_error(r, SAMPLES / "digits_cnn.onnx")
    assert "does not run ONNX" in r.stderr


def test_usage_errors_exit_2() -> None:
    assert run_cli("bench").returncode == 2
    assert run_cli("frobnicate").returncode == 2
    r = run_cli("bench", str(SAMPLES / "digits_cnn.onnx"), "--shape", "1,2,a")
    assert r.returncode == 2 and "bad --shape" in r.stderr and "Traceback" not in r.stderr


def test_workspace_records_cli_jobs(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    r = run_cli("import", str(SAMPLES / "digits_cnn.keras"), "--workspace", ws, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["format"] == "keras"
    r = run_cli("bench", str(SAMPLES / "digits_cnn.onnx"), "--iterations", "20", "--workspace", ws, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["iterations"] == 20 and "samples_ms" not in json.loads(r.stdout)
    r = run_cli("inspect", str(SAMPLES / "digits_cnn.tflite"), "--workspace", ws, "--json")
    assert json.loads(r.stdout)["format"] == "tflite"
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07" + b"\x00" * 20)
    _assert_one_line_error(run_cli("inspect", str(bad), "--workspace", ws), bad)
    jobs = json.loads(run_cli("jobs", "--workspace", ws, "--json").stdout)
    assert sorted((j["kind"], j["status"]) for j in jobs) == [("bench", "succeeded"), ("inspect", "succeeded")]
    models = json.loads(run_cli("models", "--workspace", ws, "--json").stdout)
    assert [m["name"] for m in models] == ["digits_cnn.keras", "digits_cnn.onnx", "digits_cnn.tflite"]
    assert "digits_cnn.onnx" in run_cli("models", "--workspace", ws).stdout


def test_failed_job_in_workspace_is_one_line(tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    r = run_cli("bench", str(SAMPLES / "digits_cnn.onnx"), "--device", "NPU7", "--workspace", ws)
    assert r.returncode == 1 and "no device 'NPU7'" in r.stderr and "Traceback" not in r.stderr
    jobs = json.loads(run_cli("jobs", "--workspace", ws, "--json").stdout)
    assert jobs[0]["status"] == "failed" and "NPU7" in jobs[0]["error"]
