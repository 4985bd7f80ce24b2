"""Inputs as the user means them: 0-d (scalar) and integer inputs everywhere (inspect, ``--shape NAME=``, ``--value``,
a 0-d array in ``--input``, the PyTorch exporter, parity, bench), and never a sample repeated to reach a count.

The PyTorch models are real TorchScript / ExportedProgram files saved in the catalog's ``torch`` environment (see
tests/test_torch.py): one whose ``forward(x, sr: int)`` raises unless ``sr`` is 8000 or 16000 (like silero-vad),
one that takes int64 token ids."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.test_torch import ENVS, cli, torch_env  # noqa: F401 - the fixture is used by name

# ------------------------------------------------------------------------------------------------ no PyTorch


def _scalar_onnx(path: Path) -> Path:
    """y = tanh(x * float(sr) / 16000): a float input of dynamic batch and a 0-d int64 ``sr``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    sr = helper.make_tensor_value_info("sr", TensorProto.INT64, [])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    k = numpy_helper.from_array(np.array(16000.0, dtype=np.float32), "k")
    nodes = [helper.make_node("Cast", ["sr"], ["srf"], to=TensorProto.FLOAT),
             helper.make_node("Div", ["srf", "k"], ["r"]),
             helper.make_node("Mul", ["x", "r"], ["xr"]),
             helper.make_node("Tanh", ["xr"], ["y"])]
    model = helper.make_model(helper.make_graph(nodes, "scalar", [x, sr], [y], [k]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_shape_and_value_parse_scalars_and_integers() -> None:
    from edgestudio.core.errors import UsageError
    from edgestudio.core.inputspec import InputSpec, parse_shapes, parse_values

    assert parse_shapes(["sr=", "x=1,4", "t=[]"]) == {"sr": [], "x": [1, 4], "t": []}
    with pytest.raises(UsageError, match="NAME= for a scalar"):
        parse_shapes(["="])
    values = parse_values(["sr=16000", "big=9007199254740993", "gain=0.5", "flag=true"])
    assert values == {"sr": 16000, "big": 2**53 + 1, "gain": 0.5, "flag": 1}
    assert isinstance(values["sr"], int) and isinstance(values["gain"], float)
    spec = InputSpec(values=values)
    assert InputSpec.from_dict(json.loads(json.dumps(spec.to_dict()))).values == values  # ints stay exact


def test_scalar_and_integer_feeds_never_repeat_a_sample(tmp_path: Path) -> None:
    from edgestudio.core.errors import UsageError
    from edgestudio.core.inputspec import InputSpec, make_feeds
    from edgestudio.core.modelinfo import TensorSpec

    specs = [TensorSpec("x", ["batch", 4], "float32"), TensorSpec("sr", [], "int64")]
    # --value for an int input: an integer, exact; a non-integer refused in one line naming the input
    feeds = make_feeds(specs, InputSpec(values={"sr": 16000}), count=3)
    assert len(feeds.samples) == 3 and all(f["sr"].shape == () and f["sr"].dtype == np.int64 and int(f["sr"]) == 16000
                                           for f in feeds.samples)
    with pytest.raises(UsageError, match=r"--value sr=1\.5: input 'sr' is int64, give an integer") as err:
        make_feeds(specs, InputSpec(values={"sr": 1.5}), count=1)
    assert "\n" not in str(err.value)
    # a 0-d array in --input is that scalar, in every sample; 3 rows of a dynamic batch are 3 samples, and fewer
    # than the 4 asked for is said, never made up by repeating one
    data = tmp_path / "in.npz"
    rows = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.savez(data, x=rows, sr=np.array(8000))
    feeds = make_feeds(specs, InputSpec(data=str(data)), count=4)
    assert len(feeds.samples) == 3
    assert [f["x"].tolist() for f in feeds.samples] == [[r] for r in rows.tolist()]
    assert all(f["sr"].shape == () and int(f["sr"]) == 8000 for f in feeds.samples)
    assert any("fewer than the 4 asked for" in n for n in feeds.notes)
    assert feeds.to_dict()["notes"] == feeds.notes and feeds.to_dict()["shapes"]["sr"] == []
    # int64 token ids: rows are samples, the dtype is kept, and 3.7 is never truncated to a token id
    ids_specs = [TensorSpec("ids", ["batch", 5], "int64")]
    ids = tmp_path / "ids.npz"
    np.savez(ids, ids=np.arange(10, dtype=np.int64).reshape(2, 5))
    feeds = make_feeds(ids_specs, InputSpec(data=str(ids)), count=4)
    assert len(feeds.samples) == 2 and all(f["ids"].dtype == np.int64 and f["ids"].shape == (1, 5)
                                           for f in feeds.samples)
    assert len({f["ids"].tobytes() for f in feeds.samples}) == 2
    bad = tmp_path / "bad.npz"
    np.savez(bad, ids=np.full((1, 5), 3.7, np.float32))
    with pytest.raises(UsageError, match="'ids' is int64 but its data holds non-integer values"):
        make_feeds(ids_specs, InputSpec(data=str(bad)), count=1)
    # one sample where every input is fixed: said, used once
    feeds = make_feeds([TensorSpec("sr", [], "int64")], InputSpec(values={"sr": 16000}), count=4)
    assert len(feeds.samples) == 1 and any("not repeated" in n for n in feeds.notes)


@pytest.mark.heavy
def test_an_onnx_model_with_a_0d_int64_input_is_inspected_benched_and_converted(tmp_path: Path) -> None:
    model = _scalar_onnx(tmp_path / "sr.onnx")
    d = json.loads(cli("inspect", str(model), "--json").stdout)
    assert d["inputs"][1] == {"name": "sr", "shape": [], "dtype": "int64"}
    for runtime in ("onnxruntime", "openvino"):
        r = cli("bench", str(model), "--runtime", runtime, "--value", "sr=16000", "--shape", "x=2,4",
                "--iterations", "5", "--json")
        assert r.returncode == 0, r.stderr
    r = cli("bench", str(model), "--value", "sr=1.5", "--shape", "x=2,4")
    assert r.returncode != 0 and r.stderr.strip().count("\n") == 0 and "'sr' is int64" in r.stderr, r.stderr
    r = cli("bench", str(model), "--shape", "sr=", "--value", "sr=16000", "--shape", "x=2,4", "--iterations", "5")
    assert r.returncode == 0, r.stderr
    r = cli("convert", str(model), "--to", "openvino", "--value", "sr=16000", "-o", str(tmp_path / "v.xml"), "--json")
    assert r.returncode == 0, r.stderr
    step = json.loads(r.stdout)["steps"][0]
    assert step["parity"]["verdict"] == "passed" and step["parity"]["inputs"]["sources"]["sr"] == "--value"
    ov = json.loads(cli("inspect", str(tmp_path / "v.xml"), "--json").stdout)
    assert {"name": "sr", "shape": [], "dtype": "int64"} in ov["inputs"]
    data = tmp_path / "in.npz"
    np.savez(data, x=np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32), sr=np.array(16000))
    r = cli("convert", str(model), "--to", "openvino", "--input", str(data), "-o", str(tmp_path / "w.xml"), "--json")
    assert r.returncode == 0, r.stderr
    parity = json.loads(r.stdout)["steps"][0]["parity"]
    assert parity["verdict"] == "passed" and parity["samples"] == 3
    assert parity["inputs"]["sources"] == {"x": "your --input", "sr": "your --input"}
    assert any("fewer than the 4 asked for" in n for n in parity["inputs"]["notes"])


# -------------------------------------------------------------------------------------------------- PyTorch
_MAKE = r'''
import sys
import torch
from torch import Tensor


class Vad(torch.nn.Module):  # like silero-vad: the sample rate picks the weights, and others are refused
    def __init__(self) -> None:
        super().__init__()
        self.l8 = torch.nn.Linear(4, 2)
        self.l16 = torch.nn.Linear(4, 2)

    def forward(self, x: Tensor, sr: int) -> Tensor:
        if sr == 16000:
            return torch.sigmoid(self.l16(x))
        if sr == 8000:
            return torch.sigmoid(self.l8(x))
        raise ValueError("Supported sampling rates: [8000, 16000]")


class Tokens(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(50, 8)
        self.fc = torch.nn.Linear(8, 3)

    def forward(self, ids: Tensor) -> Tensor:
        return self.fc(self.emb(ids).mean(1))


class Scaled(torch.nn.Module):
    def forward(self, x: Tensor, sr: Tensor, gain: float, flag: bool) -> Tensor:
        return x * sr / 16000 * gain


class NotLen(torch.nn.Module):  # silero-vad's `if not len(self._context):` is aten::__not__ on an int
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x: Tensor, sr: int) -> Tensor:
        if not sr % 8000:
            return torch.sigmoid(self.fc(x))
        return torch.tanh(self.fc(x))


class Stateful(torch.nn.Module):  # keeps state between calls, as streaming models do
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)
        self.register_buffer("state", torch.zeros(1, 4))

    def forward(self, x: Tensor) -> Tensor:
        self.state = torch.tanh(self.fc(x) + self.state)
        return self.state


class Spectrum(torch.nn.Module):  # aten::fft_rfft: no symbolic in the TorchScript exporter
    def forward(self, x: Tensor) -> Tensor:
        return torch.fft.rfft(x, dim=-1).abs()


torch.manual_seed(0)
out = sys.argv[1]
torch.jit.save(torch.jit.script(Spectrum()), f"{out}/spectrum.pt")
torch.jit.save(torch.jit.script(NotLen()), f"{out}/notlen.pt")
torch.jit.save(torch.jit.script(Stateful()), f"{out}/stateful.pt")
torch.jit.save(torch.jit.script(Vad()), f"{out}/vad.pt")
torch.jit.save(torch.jit.script(Tokens()), f"{out}/tokens.pt")
torch.jit.save(torch.jit.script(Scaled()), f"{out}/scaled.pt")
torch.export.save(torch.export.export(Tokens(), (torch.zeros(1, 5, dtype=torch.long),)), f"{out}/tokens.pt2")
torch.export.save(torch.export.export(Scaled(), (torch.zeros(2, 4), torch.tensor(16000), 1.0, True)),
                  f"{out}/scaled.pt2")
'''


@pytest.fixture(scope="module")
def scalar_models(torch_env: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    folder = tmp_path_factory.mktemp("scalars")
    (folder / "make.py").write_text(_MAKE)
    r = subprocess.run([str(torch_env), str(folder / "make.py"), str(folder)], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    return folder


def _inputs(path: Path) -> dict[str, dict[str, object]]:
    r = cli("inspect", str(path), "--json")
    assert r.returncode == 0, r.stderr
    return {t["name"]: {"shape": t["shape"], "dtype": t["dtype"]} for t in json.loads(r.stdout)["inputs"]}


def test_inspect_reports_scalar_and_integer_inputs_as_declared(scalar_models: Path) -> None:
    """TorchScript: the forward schema's ``int``/``float``/``bool`` are 0-d int64/float64/bool, a Tensor used as
    embedding indices is int64; ExportedProgram: its recorded dtypes and 0-d shapes."""
    assert _inputs(scalar_models / "vad.pt") == {"x": {"shape": ["?"], "dtype": "float32"},
                                                "sr": {"shape": [], "dtype": "int64"}}
    assert _inputs(scalar_models / "tokens.pt") == {"ids": {"shape": ["?"], "dtype": "int64"}}
    assert _inputs(scalar_models / "scaled.pt")["gain"] == {"shape": [], "dtype": "float64"}
    assert _inputs(scalar_models / "scaled.pt")["flag"] == {"shape": [], "dtype": "bool"}
    assert _inputs(scalar_models / "tokens.pt2") == {"ids": {"shape": [1, 5], "dtype": "int64"}}
    pt2 = _inputs(scalar_models / "scaled.pt2")
    assert pt2["sr"] == {"shape": [], "dtype": "int64"}
    assert "gain" not in pt2 and "flag" not in pt2  # torch.export fixed them: the program takes no other value


def test_a_torchscript_sample_rate_is_given_with_value_or_input(scalar_models: Path, tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    vad = str(scalar_models / "vad.pt")
    # not given: the model's own refusal, in one line, saying what to give
    r = cli("convert", vad, "--to", "onnx", "--shape", "x=2,4", "-o", str(tmp_path / "no.onnx"))
    assert r.returncode != 0 and "Supported sampling rates" in r.stderr and "--value sr=" in r.stderr, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
    r = cli("bench", vad, "--shape", "x=2,4", "--iterations", "3")
    assert r.returncode != 0 and "Supported sampling rates" in r.stderr and r.stderr.strip().count("\n") == 0
    # a non-integer for the int input: refused in one line naming it
    r = cli("convert", vad, "--to", "onnx", "--shape", "x=2,4", "--value", "sr=1.5", "-o", str(tmp_path / "f.onnx"))
    assert r.returncode != 0 and "'sr' is int64, give an integer" in r.stderr and r.stderr.strip().count("\n") == 0
    # --value: exported as a 0-d int64 ONNX input that still picks the branch, parity against PyTorch passes
    out = tmp_path / "vad.onnx"
    r = cli("convert", vad, "--to", "onnx", "--shape", "x=2,4", "--shape", "sr=", "--value", "sr=16000",
            "-o", str(out), "--json")
    assert r.returncode == 0, r.stderr
    parity = json.loads(r.stdout)["steps"][0]["parity"]
    assert parity["verdict"] == "passed" and parity["inputs"]["sources"]["sr"] == "--value"
    sr = next(i for i in onnx.load(str(out)).graph.input if i.name == "sr")
    assert sr.type.tensor_type.elem_type == onnx.TensorProto.INT64 and len(sr.type.tensor_type.shape.dim) == 0
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
    a, b = (sess.run(None, {"x": x, "sr": np.array(v, np.int64)})[0] for v in (16000, 8000))
    assert not np.allclose(a, b)  # the sample rate still chooses the weights in ONNX
    assert cli("bench", vad, "--shape", "x=2,4", "--value", "sr=8000", "--iterations", "3").returncode == 0
    # a 0-d array in --input: that scalar for every sample; three rows of x are three samples, said as fewer
    data = tmp_path / "in.npz"
    np.savez(data, x=np.random.default_rng(1).normal(size=(3, 2, 4)).astype(np.float32), sr=np.array(8000))
    r = cli("convert", vad, "--to", "onnx", "--shape", "x=2,4", "--input", str(data), "-o", str(tmp_path / "i.onnx"),
            "--json")
    assert r.returncode == 0, r.stderr
    parity = json.loads(r.stdout)["steps"][0]["parity"]
    assert parity["verdict"] == "passed" and parity["samples"] == 3
    assert parity["inputs"]["shapes"]["sr"] == [] and parity["inputs"]["sources"]["sr"] == "your --input"
    assert any("fewer than the 4 asked for" in n for n in parity["inputs"]["notes"])


def test_integer_token_ids_convert_from_torchscript_and_exported_programs(scalar_models: Path,
                                                                          tmp_path: Path) -> None:
    import onnx

    data = tmp_path / "ids.npz"
    np.savez(data, ids=np.random.default_rng(0).integers(0, 50, (6, 5)))
    for name in ("tokens.pt", "tokens.pt2"):
        out = tmp_path / f"{name}.onnx"
        r = cli("convert", str(scalar_models / name), "--to", "onnx", "--shape", "ids=1,5", "--input", str(data),
                "-o", str(out), "--json")
        assert r.returncode == 0, (name, r.stderr)
        parity = json.loads(r.stdout)["steps"][0]["parity"]
        assert parity["verdict"] == "passed" and parity["inputs"]["sources"] == {"ids": "your --input"}, parity
        ids = onnx.load(str(out)).graph.input[0]
        assert ids.type.tensor_type.elem_type == onnx.TensorProto.INT64
    # a 0-d int64 tensor input of an ExportedProgram, from --value
    r = cli("convert", str(scalar_models / "scaled.pt2"), "--to", "onnx", "--value", "sr=16000",
            "-o", str(tmp_path / "scaled.onnx"), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["steps"][0]["parity"]["verdict"] == "passed"


def test_python_not_on_an_int_exports_and_a_stateful_model_is_named(scalar_models: Path, tmp_path: Path) -> None:
    """silero-vad's TorchScript failed to export ("bitwise Not for non-boolean input values": Python's ``not n`` on
    an int); it exports now, checked against PyTorch. A model that keeps state between calls is refused with that
    reason (the same input twice gave another output), not with a bare cosine."""
    import onnxruntime as ort

    out = tmp_path / "notlen.onnx"
    r = cli("convert", str(scalar_models / "notlen.pt"), "--to", "onnx", "--shape", "x=1,4", "--value", "sr=16000",
            "-o", str(out), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["steps"][0]["parity"]["verdict"] == "passed"
    sess = ort.InferenceSession(str(out))  # independently: the branch still follows sr
    x = np.ones((1, 4), np.float32)
    feeds = {i.name: (x if i.name == "x" else np.array(16000, np.int64)) for i in sess.get_inputs()}
    y16 = sess.run(None, feeds)[0]
    assert float(y16.min()) >= 0.0  # the sigmoid branch
    r = cli("convert", str(scalar_models / "stateful.pt"), "--to", "onnx", "--shape", "x=1,4", "-o",
            str(tmp_path / "stateful.onnx"))
    assert r.returncode == 1 and "keeps state between calls" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_torchscript_op_the_torchscript_exporter_lacks_goes_through_the_dynamo_exporter(scalar_models: Path,
                                                                                         tmp_path: Path) -> None:
    """``torch.fft.rfft`` in a TorchScript model: "Exporting the operator 'aten::fft_rfft' to ONNX opset version 18
    is not supported". The next route (TorchScript -> ExportedProgram -> the dynamo exporter) exports it; checked
    against PyTorch by the hop, and here against NumPy's FFT with ONNX Runtime called directly."""
    import onnxruntime as ort

    out = tmp_path / "spectrum.onnx"
    r = cli("convert", str(scalar_models / "spectrum.pt"), "--to", "onnx", "--shape", "x=1,16", "-o", str(out),
            "--json")
    assert r.returncode == 0, r.stderr
    step = json.loads(r.stdout)["steps"][0]
    assert step["parity"]["verdict"] == "passed"
    assert "dynamo exporter" in step["route"] and "aten::fft_rfft" in step["route"]  # the route is said
    x = np.random.default_rng(0).normal(size=(1, 16)).astype(np.float32)
    sess = ort.InferenceSession(str(out))
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, np.abs(np.fft.rfft(x, axis=-1)), rtol=1e-4, atol=1e-4)
