"""The conversion engine for real: every converter on the samples, multi-hop plans, parity after every hop,
the onnx model-zoo graphs, and errors a user can act on."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgestudio.backends.converters.base import CONVERTERS, ConversionError, Converter, ConvertOptions
from edgestudio.conversion.engine import convert_model, default_output
from edgestudio.conversion.planner import plan_conversion
from edgestudio.core.errors import Cancelled
from edgestudio.core.formats import ModelFormat as F
from edgestudio.core.formats import detect_format
from edgestudio.core.inspection import inspect_model
from edgestudio.core.progress import CancelToken
from tests.conftest import SAMPLES, run_cli, softmax_like_zoo, zoo_body, zoo_expected, zoo_params


def _digest(p: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p.rglob("*")) if p.is_dir() else [p]:
        if f.is_file():
            h.update(f.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Copies of the samples: conversions must never touch their input, and never the repo's samples."""
    d = tmp_path_factory.mktemp("samples")
    for p in SAMPLES.iterdir():
        (shutil.copytree if p.is_dir() else shutil.copy)(p, d / p.name)
    return d


@pytest.fixture(scope="module")
def h5(work: Path) -> Path:
    from edgestudio.core.loaders import load_keras_model

    out = work / "digits_cnn.h5"
    load_keras_model(work / "digits_cnn.keras", F.KERAS).save(out)
    return out


# ------------------------------------------------------------------------------------------- planner
def test_plans() -> None:
    assert plan_conversion(F.KERAS, F.OPENVINO).describe() == \
        "keras --keras-export--> savedmodel --openvino--> openvino"
    assert [h.converter for h in plan_conversion(F.TFLITE, F.TFLITE, via=[F.ONNX], simplify=True).hops] == \
        ["tflite2onnx", "onnxslim", "onnx2tf"]
    assert [h.converter for h in plan_conversion(F.ONNX, F.ONNX, simplify=True).hops] == ["onnxslim"]
    assert [h.converter for h in plan_conversion(F.KERAS, F.OPENVINO, via=[F.ONNX]).hops] == ["tf2onnx", "openvino"]
    with pytest.raises(ConversionError, match="already ONNX"):
        plan_conversion(F.ONNX, F.ONNX)
    with pytest.raises(ConversionError, match="no conversion path from OpenVINO IR to TFLite"):
        plan_conversion(F.OPENVINO, F.TFLITE)


def test_unavailable_converter_is_reported() -> None:
    class NeedsMissing(Converter):
        name, label = "needs-missing", "missing lib"
        sources, target, requires = frozenset({F.OPENVINO}), F.TFLITE, ("edgestudio_no_such_package",)

        def convert(self, *a, **k):  # type: ignore[no-untyped-def]
            raise AssertionError("never runs")

    CONVERTERS.register(NeedsMissing)
    try:
        with pytest.raises(ConversionError, match=r"needs-missing \(needs edgestudio_no_such_package\)"):
            plan_conversion(F.OPENVINO, F.TFLITE)
        assert plan_conversion(F.ONNX, F.OPENVINO).unavailable["needs-missing"] == ["edgestudio_no_such_package"]
    finally:
        CONVERTERS._items.pop("needs-missing")


# ------------------------------------------------------------------------------ every converter, for real
CASES = [  # (source, target, the converter that must do it)
    ("digits_cnn.keras", F.ONNX, "tf2onnx"),
    ("digits_cnn_savedmodel", F.ONNX, "tf2onnx"),
    ("digits_cnn.keras", F.TFLITE, "tf-tflite"),
    ("digits_cnn_savedmodel", F.TFLITE, "tf-tflite"),
    ("digits_cnn.keras", F.SAVED_MODEL, "keras-export"),
    ("digits_cnn.tflite", F.ONNX, "tflite2onnx"),
    ("digits_cnn.onnx", F.OPENVINO, "openvino"),
    ("digits_cnn_savedmodel", F.OPENVINO, "openvino"),
    ("digits_cnn.tflite", F.OPENVINO, "openvino"),
    ("digits_cnn.onnx", F.TFLITE, "onnx2tf"),
    ("digits_cnn.onnx", F.ORT, "onnx-ort"),
]


@pytest.mark.parametrize("name,target,converter", CASES, ids=lambda v: getattr(v, "value", v))
def test_converter_on_sample(work: Path, tmp_path: Path, name: str, target: F, converter: str) -> None:
    src = work / name
    before = _digest(src)
    progress: list[float] = []
    report = convert_model(src, target, output=default_output(src, target, tmp_path),
                           progress=lambda f, m="": progress.append(f))
    assert [s.converter for s in report.steps] == [converter]
    out = Path(report.output)
    assert detect_format(out) is target and out.parent == tmp_path
    step = report.steps[0]
    assert step.parity["passed"] is True and step.parity["cosine"] > 0.99999
    assert step.parity["top1_agreement"] == 1.0 and step.versions
    info = inspect_model(out)
    assert info.inputs and info.outputs
    assert _digest(src) == before, "the converter modified its input"
    assert progress[-1] == 1.0 and progress == sorted(progress)


def test_h5_to_tflite(h5: Path, tmp_path: Path) -> None:
    report = convert_model(h5, F.TFLITE, output=tmp_path / "m.tflite")
    assert report.steps[0].parity["passed"]


def test_simplify_onnx(work: Path, tmp_path: Path) -> None:
    report = convert_model(work / "digits_cnn.onnx", F.ONNX, simplify=True, output=tmp_path / "slim.onnx")
    assert report.steps[0].converter == "onnxslim" and report.steps[0].parity["max_abs_diff"] < 1e-6
    assert sum(inspect_model(tmp_path / "slim.onnx").ops.values()) < sum(inspect_model(work / "digits_cnn.onnx").ops.values())


# ------------------------------------------------------------------------------------------- options
def test_opset_static_shape_and_names(work: Path, tmp_path: Path) -> None:
    opts = ConvertOptions(opset=13, shapes={"image": [1, 8, 8, 1]}, input_names=["pixels"], output_names=["scores"])
    convert_model(work / "digits_cnn.keras", F.ONNX, output=tmp_path / "m.onnx", options=opts)
    info = inspect_model(tmp_path / "m.onnx")
    assert info.opset == 13
    assert [(t.name, t.shape) for t in info.inputs] == [("pixels", [1, 8, 8, 1])]
    assert [t.name for t in info.outputs] == ["scores"]


def test_nchw_layout_is_handled_in_parity(work: Path, tmp_path: Path) -> None:
    report = convert_model(work / "digits_cnn.keras", F.ONNX, output=tmp_path / "nchw.onnx",
                           options=ConvertOptions(layout="nchw"))
    assert inspect_model(tmp_path / "nchw.onnx").inputs[0].shape[1:] == [1, 8, 8]
    assert report.steps[0].parity["passed"] and report.steps[0].parity["top1_agreement"] == 1.0


@pytest.mark.heavy
def test_fp16_weights_halve_the_ir(work: Path, tmp_path: Path) -> None:
    full = convert_model(work / "digits_cnn.onnx", F.OPENVINO, output=tmp_path / "f32.xml")
    half = convert_model(work / "digits_cnn.onnx", F.OPENVINO, output=tmp_path / "f16.xml",
                         options=ConvertOptions(compress_fp16=True))
    ratio = (tmp_path / "f16.bin").stat().st_size / (tmp_path / "f32.bin").stat().st_size
    assert 0.45 < ratio < 0.55
    assert full.steps[0].parity["max_abs_diff"] < half.steps[0].parity["max_abs_diff"] < 1e-2
    with pytest.raises(ConversionError, match="parity check failed") as err:
        convert_model(work / "digits_cnn.onnx", F.OPENVINO, output=tmp_path / "strict.xml",
                      options=ConvertOptions(compress_fp16=True, tolerance=1e-9))
    assert "--tolerance" in (err.value.hint or "")
    assert not (tmp_path / "strict.xml").exists() and not (tmp_path / "strict.bin").exists()


# ------------------------------------------------------------------------------------------ multi-hop
@pytest.mark.heavy
def test_keras_to_openvino_in_one_request(work: Path, tmp_path: Path) -> None:
    report = convert_model(work / "digits_cnn.keras", F.OPENVINO, output=tmp_path / "m.xml")
    assert [(s.source, s.target) for s in report.steps] == [("keras", "savedmodel"), ("savedmodel", "openvino")]
    assert all(s.parity["passed"] for s in report.steps)
    assert report.steps[0].output is None  # the intermediate was temporary and is gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.bin", "m.xml"]


def test_tflite_round_trip_via_simplified_onnx(work: Path, tmp_path: Path) -> None:
    inter = tmp_path / "steps"
    report = convert_model(work / "digits_cnn.tflite", F.TFLITE, via=[F.ONNX], simplify=True,
                           output=tmp_path / "rt.tflite", intermediate_dir=inter)
    assert [s.converter for s in report.steps] == ["tflite2onnx", "onnxslim", "onnx2tf"]
    assert all(s.parity["passed"] for s in report.steps)
    assert all(Path(s.output).exists() for s in report.steps)  # kept: they are lineage
    # the round trip still classifies the held-out digits like the original
    from edgestudio.backends.runtimes import get_runtime

    data = np.load(SAMPLES / "digits_test.npz")
    a, b = get_runtime("litert").load(work / "digits_cnn.tflite"), get_runtime("litert").load(tmp_path / "rt.tflite")
    xs = data["x"][:32]
    pa = np.concatenate([next(iter(a.run({a.inputs[0].name: xs[i:i + 1]}).values())) for i in range(32)])
    pb = np.concatenate([next(iter(b.run({b.inputs[0].name: xs[i:i + 1]}).values())) for i in range(32)])
    assert (pa.argmax(1) == pb.argmax(1)).all()


# ------------------------------------------------------------------------------------- failure paths
@pytest.fixture(scope="module")
def scaler_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid model ONNX Runtime runs, with an op (ai.onnx.ml Scaler) OpenVINO has no conversion for."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu0"),
             helper.make_node("Scaler", ["r"], ["y"], domain="ai.onnx.ml", name="scale1", offset=[0.0] * 4,
                              scale=[2.0] * 4)]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), ir_version=10,
                              opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    path = tmp_path_factory.mktemp("scaler") / "scaler.onnx"
    onnx.save(model, path)
    return path


def test_unsupported_op_is_actionable(scaler_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(ConversionError) as err:
        convert_model(scaler_onnx, F.OPENVINO, output=tmp_path / "s.xml")
    e = err.value
    assert e.op == "ai.onnx.ml.Scaler" and e.node == "scale1" and e.converter == "openvino"
    text = e.one_line()
    assert text.startswith(f"{scaler_onnx}: ") and "Scaler" in text and "scale1" in text
    assert "onnxruntime" in text and "--via" in text  # what else could work
    assert list(tmp_path.iterdir()) == []
    # ... and the suggestion is true: the source runtime runs it
    from edgestudio.backends.runtimes import get_runtime

    out = get_runtime("onnxruntime").load(scaler_onnx).run({"x": np.ones((1, 4), np.float32)})
    np.testing.assert_allclose(out["y"], 2.0)


def test_empty_or_broken_output_is_a_failure(tmp_path: Path) -> None:
    from edgestudio.conversion.engine import check_output

    with pytest.raises(ConversionError, match="wrote no file"):
        check_output(tmp_path / "missing.onnx", "x")
    (tmp_path / "empty.tflite").write_bytes(b"")
    with pytest.raises(ConversionError, match="not a valid model"):
        check_output(tmp_path / "empty.tflite", "x")
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph([], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(g), tmp_path / "nodes0.onnx")
    with pytest.raises(ConversionError, match="not a valid model|empty graph"):
        check_output(tmp_path / "nodes0.onnx", "x")


def test_cancel_leaves_nothing(work: Path, tmp_path: Path) -> None:
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        convert_model(work / "digits_cnn.onnx", F.OPENVINO, output=tmp_path / "c.xml", cancel=token)
    assert list(tmp_path.iterdir()) == []


def test_default_output_never_overwrites(tmp_path: Path) -> None:
    src = tmp_path / "m.onnx"
    src.write_bytes(b"")
    (tmp_path / "m.xml").write_text("mine")
    assert default_output(src, F.OPENVINO) == tmp_path / "m-1.xml"
    assert default_output(src, F.SAVED_MODEL) == tmp_path / "m_savedmodel"


# ------------------------------------------------------------------------------------------ model zoo
def _run_first_output(path: Path, runtime: str, feeds_from: Path) -> np.ndarray:
    from edgestudio.backends.runtimes import get_runtime
    from edgestudio.bench.inputs import make_inputs

    ref = get_runtime("onnxruntime").load(feeds_from)
    feeds = make_inputs(ref.inputs)
    sess = get_runtime(runtime).load(path, precision="f32" if runtime == "openvino" else None)
    arr = next(iter(feeds.values()))
    if list(arr.shape) != [d if isinstance(d, int) else -1 for d in sess.inputs[0].shape] and arr.ndim == 4:
        arr = arr.transpose(0, 2, 3, 1)  # the TFLite result takes NHWC
    return next(iter(sess.run({sess.inputs[0].name: np.ascontiguousarray(arr)}).values()))


@pytest.mark.heavy
@pytest.mark.parametrize("model", zoo_params(), ids=lambda p: p.stem)
def test_zoo_to_openvino(model: Path, tmp_path: Path, zoo_dir: Path) -> None:
    body = zoo_body(model, zoo_dir)  # see zoo_body: parity is checked on the logits
    report = convert_model(body, F.OPENVINO, output=tmp_path / f"{model.stem}.xml")
    parity = report.steps[0].parity
    # some "light" zoo graphs (constant-filled weights) give logits that are all equal: such a reference cannot
    # tell a good conversion from a broken one, and the check says so instead of "passed"
    assert parity["verdict"] in ("passed", "inconclusive") and parity["cosine"] > 0.9999, parity
    if parity["verdict"] == "inconclusive":
        assert "constant" in parity["note"] or "does not change" in parity["note"]
    out = _run_first_output(tmp_path / f"{model.stem}.xml", "openvino", body)
    np.testing.assert_allclose(softmax_like_zoo(model, out), zoo_expected(model), rtol=1e-3, atol=1e-6)


FAST_TFLITE = ("light_shufflenet",)  # onnx2tf takes minutes and GBs on the big ones: the others are slow


@pytest.mark.heavy
@pytest.mark.parametrize("model", zoo_params(FAST_TFLITE), ids=lambda p: p.stem)
def test_zoo_to_tflite(model: Path, tmp_path: Path, zoo_dir: Path) -> None:
    body = zoo_body(model, zoo_dir)
    report = convert_model(body, F.TFLITE, output=tmp_path / f"{model.stem}.tflite")
    assert report.steps[0].parity["passed"]
    out = _run_first_output(tmp_path / f"{model.stem}.tflite", "litert", body)
    expected = zoo_expected(model)
    if out.shape != expected.shape and out.ndim == 4:  # NHWC result of an NCHW graph
        out = out.transpose(0, 3, 1, 2)
    np.testing.assert_allclose(softmax_like_zoo(model, out.reshape(expected.shape)), expected, rtol=1e-3, atol=1e-6)


# ----------------------------------------------------------------------------------------------- CLI
@pytest.mark.heavy
def test_cli_convert_json(tmp_path: Path) -> None:
    src = tmp_path / "digits.onnx"
    shutil.copy(SAMPLES / "digits_cnn.onnx", src)
    r = run_cli("convert", str(src), "--to", "openvino", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["output"] == str(tmp_path / "digits.xml") and d["seconds"] > 0
    (step,) = d["steps"]
    assert {"from", "to", "converter", "seconds", "parity"} <= set(step)
    assert step["from"] == "onnx" and step["to"] == "openvino" and step["converter"] == "openvino"
    assert {"max_abs_diff", "cosine", "passed"} <= set(step["parity"]) and step["parity"]["passed"] is True
    assert (tmp_path / "digits.bin").exists()


@pytest.mark.heavy
def test_cli_convert_plan_and_errors(tmp_path: Path, scaler_onnx: Path) -> None:
    r = run_cli("convert", str(SAMPLES / "digits_cnn.keras"), "--to", "openvino", "--via", "onnx", "--plan", "--json")
    assert [h["converter"] for h in json.loads(r.stdout)["hops"]] == ["tf2onnx", "openvino"]
    r = run_cli("convert", str(scaler_onnx), "--to", "openvino", "-o", str(tmp_path / "s.xml"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    (line,) = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert line.startswith(f"error: {scaler_onnx}: ") and "Scaler" in line and "scale1" in line
    assert list(tmp_path.iterdir()) == []
    r = run_cli("convert", str(SAMPLES / "digits_cnn.onnx"), "--to", "pdf")
    assert r.returncode == 2 and "unknown format" in r.stderr
    r = run_cli("convert", str(SAMPLES / "digits_cnn.onnx"), "--to", "pt2")  # nothing makes a PyTorch program
    assert r.returncode == 1 and "no conversion path from ONNX to PyTorch ExportedProgram" in r.stderr


@pytest.mark.heavy
def test_cli_convert_records_lineage(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    r = run_cli("convert", str(SAMPLES / "digits_cnn.keras"), "--to", "openvino", "--workspace", str(ws), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert Path(out["output"]).is_relative_to(ws) and len(out["steps"]) == 2
    models = json.loads(run_cli("models", "--workspace", str(ws), "--json").stdout)
    by_id = {m["id"]: m for m in models}
    ir = next(m for m in models if m["format"] == "openvino")
    sm = by_id[ir["parent_id"]]
    root = by_id[sm["parent_id"]]
    assert (root["name"], root["parent_id"], sm["format"]) == ("digits_cnn.keras", None, "savedmodel")
    assert ir["options"]["converter"] == "openvino" and ir["options"]["parity"]["passed"] is True
    assert "openvino" in ir["options"]["versions"] and sm["options"]["converter"] == "keras-export"
    jobs = json.loads(run_cli("jobs", "--workspace", str(ws), "--json").stdout)
    assert [(j["kind"], j["status"]) for j in jobs] == [("convert", "succeeded")]
