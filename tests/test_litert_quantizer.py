"""LiteRT Quantizer for real: a .tflite is quantized where it is (no hop through ONNX or a SavedModel), the
result holds int8 tensors (read with the LiteRT interpreter itself), passes the drift guard on real digits,
keeps --ignore'd ops in float, and packages for TFLite Micro."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgestudio.backends.optimizers.base import OptimizationError, OptimizeOptions
from edgestudio.optimization.engine import optimize_model
from tests.conftest import SAMPLES, run_cli

pytest.importorskip("litert_quantizer")

CALIB = str(SAMPLES / "digits_calib.npz")
TEST = str(SAMPLES / "digits_test.npz")
REAL = Path(__file__).resolve().parents[1] / ".cache" / "real-models"


def _ops(model: Path) -> list[tuple[str, list[Any], list[Any]]]:
    """(op, input dtypes, output dtypes) of each op, as the LiteRT interpreter reads the file (no delegate: the
    ops as written, not XNNPACK's partitions)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(model),
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    t = {d["index"]: d["dtype"] for d in it.get_tensor_details()}
    return [(op["op_name"], [t[int(i)] for i in op["inputs"] if int(i) >= 0],
             [t[int(o)] for o in op["outputs"] if int(o) >= 0]) for op in it._get_ops_details()]  # noqa: SLF001


def _io(model: Path) -> list[Any]:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(model))
    return [d["dtype"] for d in it.get_input_details() + it.get_output_details()]


@pytest.fixture()
def user_tflite(tmp_path: Path) -> Path:
    """The sample in a folder of its own: what is beside it after optimizing is what the optimizer wrote."""
    d = tmp_path / "user"
    d.mkdir()
    return Path(shutil.copy(SAMPLES / "digits_cnn.tflite", d / "digits_cnn.tflite"))


@pytest.fixture(scope="module")
def digits_int8(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The digits .tflite in full INT8 through the real command line, calibrated on the digits samples and
    guarded on the held-out test split."""
    out = tmp_path_factory.mktemp("lq") / "digits_int8.tflite"
    r = run_cli("optimize", str(SAMPLES / "digits_cnn.tflite"), "--method", "int8-static", "--runtime", "litert",
                "--calibration", CALIB, "--dataset", TEST, "-o", str(out), "--json")
    assert r.returncode == 0, r.stderr
    return out, json.loads(r.stdout)


def test_tflite_int8_static_is_quantized_where_it_is(digits_int8: tuple[Path, dict[str, Any]]) -> None:
    out, report = digits_int8
    assert report["details"]["quantizer"].startswith("litert-quantizer ")
    assert report["source_format"] == "tflite" and report["steps"] == []  # no ONNX, no SavedModel on the way
    assert "onnx" not in json.dumps(report["steps"]).lower()
    assert report["size_bytes"]["after"] == out.stat().st_size < report["size_bytes"]["before"] / 3
    drift = report["details"]["drift"]
    assert drift["verdict"] == "passed" and drift["data"] == "held-out samples of --dataset"
    assert drift["worst"]["cosine"] >= 0.99
    assert report["accuracy"]["passed"]
    check = report["details"]["tensor_check"]  # the quantizer's own per-tensor comparison
    assert check["tensors"] > 0 and all(o["cosine"] > 0.99 for o in check["outputs"].values())
    # full INT8: every conv / dense op takes int8 activations and weights (int32 bias), writes int8
    ops = _ops(out)
    compute = [o for o in ops if o[0] in ("CONV_2D", "FULLY_CONNECTED")]
    assert len(compute) == 4
    for name, ins, outs in compute:
        assert ins[:2] == [np.int8, np.int8] and ins[2] == np.int32 and outs == [np.int8], name
    assert _io(out) == [np.float32, np.float32]  # a drop-in model: float at the edges (--io-type float)
    assert [o[0] for o in ops].count("QUANTIZE") == 1


def test_the_users_file_is_only_read(user_tflite: Path, tmp_path: Path) -> None:
    before = user_tflite.read_bytes()
    out = tmp_path / "out" / "d.tflite"
    report = optimize_model(user_tflite, "int8-static", runtime="litert", output=out,
                            options=OptimizeOptions(calibration=CALIB, io_type="int8"))
    assert user_tflite.read_bytes() == before and sorted(p.name for p in user_tflite.parent.iterdir()) == [
        user_tflite.name]
    assert report.details["drift"]["verdict"] == "passed"
    assert _io(out) == [np.int8, np.int8]  # --io-type int8: what a microcontroller feeds it


def test_ignore_a_type_keeps_those_ops_in_float(user_tflite: Path, tmp_path: Path) -> None:
    out = tmp_path / "fc_float.tflite"
    report = optimize_model(user_tflite, "int8-static", runtime="litert", output=out, options=OptimizeOptions(
        calibration=CALIB, dataset=TEST, ignored_scope=["type:FULLY_CONNECTED"]))
    assert report.details["kept_in_float"] == ["type:FULLY_CONNECTED"]
    ops = _ops(out)
    fc = [o for o in ops if o[0] == "FULLY_CONNECTED"]
    conv = [o for o in ops if o[0] == "CONV_2D"]
    assert fc and all(ins[0] == np.float32 and outs == [np.float32] for _, ins, outs in fc)
    assert conv and all(ins[:2] == [np.int8, np.int8] and outs == [np.int8] for _, ins, outs in conv)
    assert report.details["drift"]["verdict"] == "passed"


def test_ignore_what_the_model_lacks_is_refused_in_one_line(user_tflite: Path, tmp_path: Path) -> None:
    for item, said in (("type:LSTM", "no op of the TFLite model has that type"),
                       ("no_such_tensor", "no op of the TFLite model writes a tensor of that name")):
        with pytest.raises(OptimizationError) as exc:
            optimize_model(user_tflite, "int8-static", runtime="litert", output=tmp_path / "x.tflite",
                           options=OptimizeOptions(calibration=CALIB, ignored_scope=[item]))
        msg = str(exc.value)
        assert said in msg and item in msg and "\n" not in msg
        assert not (tmp_path / "x.tflite").exists()


@pytest.mark.parametrize("method", ["int8-dynamic", "weights-int8"])
def test_dynamic_range_and_weight_only_recipes(method: str, user_tflite: Path, tmp_path: Path) -> None:
    out = tmp_path / f"{method}.tflite"
    report = optimize_model(user_tflite, method, runtime="litert", output=out,
                            options=OptimizeOptions(calibration=CALIB))
    assert report.steps == [] and report.details["quantizer"].startswith("litert-quantizer ")
    assert report.size_after < report.size_before / 2
    assert report.details["drift"]["verdict"] == "passed"
    ops = _ops(out)
    dense = [o for o in ops if o[0] == "FULLY_CONNECTED"]
    if method == "int8-dynamic":  # int8 weights read by the op itself, float activations
        assert all(ins[0] == np.float32 and ins[1] == np.int8 and outs == [np.float32] for _, ins, outs in dense)
    else:  # int8 weights dequantized for a float op
        assert all(ins[:2] == [np.float32, np.float32] for _, ins, _ in dense)
        assert any(name == "DEQUANTIZE" and ins == [np.int8] for name, ins, _ in ops)


def test_an_old_schema_model_without_a_signature(tmp_path: Path) -> None:
    """MediaPipe's .tflite files have no SignatureDef and keep op types in ``deprecated_builtin_code`` (the
    quantizer then read every op as an ADD and wrote a model LiteRT cannot load). The digits model written that
    way quantizes like the original, and the result keeps the parent's interface (no signature added)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_litert.tools import flatbuffer_utils

    m = flatbuffer_utils.read_model_from_bytearray(bytearray((SAMPLES / "digits_cnn.tflite").read_bytes()))
    m.signatureDefs = []
    for code in m.operatorCodes:
        if code.builtinCode < schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES:
            code.deprecatedBuiltinCode, code.builtinCode = code.builtinCode, 0
    old = tmp_path / "digits_old.tflite"
    old.write_bytes(flatbuffer_utils.convert_object_to_bytearray(m))
    out = tmp_path / "old_int8.tflite"
    report = optimize_model(old, "int8-static", runtime="litert", output=out,
                            options=OptimizeOptions(calibration=CALIB, dataset=TEST))
    assert report.details["drift"]["verdict"] == "passed"
    assert Interpreter(model_path=str(out)).get_signature_list() == {}
    assert [o[1][:2] for o in _ops(out) if o[0] == "CONV_2D"] == [[np.int8, np.int8]] * 2


def test_tflm_package_of_the_result(digits_int8: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    from edgestudio.packaging.deploy import build_package

    out, _ = digits_int8
    manifest = build_package(out, "litert", tmp_path / "m.zip", tflm=True, iterations=5)
    tflm = manifest["tflm"]
    assert tflm["arena_measured"] and tflm["arena_bytes"] > 0
    from edgestudio.packaging.tflm import verify_tflm

    v = verify_tflm(out, {"data": TEST})
    assert v["parity"]["verdict"] == "passed" and not v["parity"]["random_inputs"]


@pytest.mark.heavy
@pytest.mark.skipif(not (REAL / "iris_landmark.tflite").is_file(), reason="no real MediaPipe model fetched")
def test_a_real_mediapipe_model(tmp_path: Path) -> None:
    """A downloaded model, read only: fp32, no signature, an older schema. Random calibration: the drift check
    can only be inconclusive, but the result loads and is full INT8."""
    src = REAL / "iris_landmark.tflite"
    out = tmp_path / "iris_int8.tflite"
    report = optimize_model(src, "int8-static", runtime="litert", output=out,
                            options=OptimizeOptions(calibration="random"))
    assert report.size_after < report.size_before / 2
    assert report.details["drift"]["verdict"] in ("inconclusive", "passed")
    convs = [o for o in _ops(out) if o[0] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    assert convs and all(ins[:2] == [np.int8, np.int8] and ins[2] == np.int32 for _, ins, _ in convs)
