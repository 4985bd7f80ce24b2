"""The hostile-input issue: opening a model never runs its code, no small input takes the machine, outputs never
destroy, recipes stay in their folder, numbers are bounded, and every refusal is one line naming the file.

Every payload test writes a marker file when its code runs: the marker must never appear. Resource tests run
with a small memory budget (EDGESTUDIO_MEMORY_BUDGET) so a refusal is quick and a miss cannot take the machine.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, SAMPLES

ONNX = SAMPLES / "digits_cnn.onnx"


def cli(*args: str, budget: str | None = None, timeout: int = 120, cwd: Path | None = None,
        extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONWARNINGS="ignore", **(extra_env or {}))
    if budget:
        env["EDGESTUDIO_MEMORY_BUDGET"] = budget
    return subprocess.run([sys.executable, "-m", "edgestudio", *args], capture_output=True, text=True,
                          errors="replace", timeout=timeout, env=env, cwd=cwd or ROOT)


def one_line(r: subprocess.CompletedProcess[str], name: str) -> str:
    """The run failed with exactly one stderr line `error: ...` naming ``name``, no traceback."""
    assert r.returncode in (1, 2), (r.returncode, r.stdout[-500:], r.stderr[-1500:])
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("usage:")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and name in lines[0], r.stderr[-1500:]
    assert "Traceback" not in r.stderr
    return lines[0]


class Payload:
    """Unpickling it runs ``touch MARKER``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def _pt2(path: Path, sample_inputs: bytes, weights: dict[str, bytes] | None = None,
         weights_config: dict | None = None) -> Path:  # type: ignore[type-arg]
    """An ExportedProgram archive laid out as torch.export.save writes it (torch 2.13)."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("m/archive_format", "pt2")
        z.writestr("m/archive_version", "0")
        z.writestr("m/byteorder", "little")
        z.writestr("m/models/model.json", json.dumps({"graph_module": {}}))
        z.writestr("m/data/weights/model_weights_config.json", json.dumps({"config": weights_config or {}}))
        z.writestr("m/data/constants/model_constants_config.json", json.dumps({"config": {}}))
        for name, data in (weights or {}).items():
            z.writestr(f"m/data/weights/{name}", data)
        z.writestr("m/data/sample_inputs/model.pt", sample_inputs)
    return path


def _torch_save_zip(data_pkl: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", data_pkl)
        z.writestr("archive/data/0", b"\x80\x02" + bytes(14))  # raw storage that starts like a pickle
        z.writestr("archive/version", "3\n")
    return buf.getvalue()


def _memo_evasion(marker: Path) -> bytes:
    """A pickle that pushes harmless-looking strings last but takes its global's name from the memo."""
    import pickletools  # noqa: F401 - documents the opcodes below

    cmd = f"touch {marker}".encode()
    return (b"\x80\x02" + b"X\x05\x00\x00\x00posix" + b"q\x00" + b"X\x06\x00\x00\x00system" + b"q\x01"
            + b"X\x0c\x00\x00\x00torch._utils" + b"X\x12\x00\x00\x00_rebuild_tensor_v2" + b"00"  # pushed, popped
            + b"h\x00h\x01\x93" + b"X" + len(cmd).to_bytes(4, "little") + cmd + b"\x85R.")


def _sbu(text: str) -> bytes:
    b = text.encode()
    return b"\x8c" + bytes([len(b)]) + b


def _stale_memo(marker: Path) -> bytes:
    """Memo slots first hold 'collections'/'OrderedDict', then names computed at load time (_codecs.encode of
    rot13 text) overwrite them: a checker that keeps the stale strings sees collections.OrderedDict."""
    p = b"\x80\x04" + _sbu("collections") + b"q\x00" + b"0" + _sbu("OrderedDict") + b"q\x01" + b"0"
    for idx, rot in ((0, "bf"), (1, "flfgrz")):
        p += _sbu("_codecs") + _sbu("encode") + b"\x93" + _sbu(rot) + _sbu("rot13") + b"\x86" + b"R" + b"q" \
            + bytes([idx]) + b"0"
    return p + b"h\x00h\x01\x93" + _sbu(f"touch {marker}") + b"\x85R."


def _memo_index(marker: Path) -> bytes:
    """BINPUT and MEMOIZE mixed: the unpickler numbers a MEMOIZE by the slots already filled, so a checker that
    counts MEMOIZEs alone reads collections.OrderedDict where os.system is loaded."""
    return (b"\x80\x04" + _sbu("os") + b"q\x00" + b"0" + _sbu("collections") + b"\x94" + b"0" + _sbu("system")
            + b"q\x01" + b"0" + _sbu("OrderedDict") + b"\x94" + b"0" + b"h\x00h\x01\x93" + _sbu(f"touch {marker}")
            + b"\x85R.")


LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


# --------------------------------------------------------------------------- 1. nothing of a model's code runs
@pytest.mark.parametrize("variant", ["raw-pickle", "nested-torch-save", "memo-evasion", "pickled-weight",
                                     "torchscript", "legacy-second-pickle", "stale-memo", "load-from-bytes",
                                     "json-named-constant", "declared-raw-and-pickled", "memo-index",
                                     "raw-and-pickled-in-another-case"])
def test_pytorch_archives_with_code_are_refused_and_never_run(tmp_path: Path, variant: str) -> None:
    """Each variant is a way past a static pickle check that an attacker's pass found or tried: every one is refused
    before PyTorch sees the archive, and its marker never appears."""
    import struct

    marker = tmp_path / "PWNED"
    evil = pickle.dumps(Payload(marker), protocol=2)
    legacy = pickle.dumps(LEGACY_MAGIC, protocol=2) + evil  # torch.load reads the second pickle too
    model = tmp_path / "evil.pt2"
    raw_w = {"path_name": "weight_0", "use_pickle": False, "tensor_meta": {"dtype": 7}}
    if variant == "legacy-second-pickle":
        _pt2(model, _torch_save_zip(pickle.dumps({"x": 1}, protocol=2)), weights={"weight_0": legacy},
             weights_config={"w": {"path_name": "weight_0", "use_pickle": True}})
    elif variant == "stale-memo":
        _pt2(model, _torch_save_zip(_stale_memo(marker)))
    elif variant == "load-from-bytes":
        inner = legacy
        _pt2(model, b"\x80\x02ctorch.storage\n_load_from_bytes\nB" + struct.pack("<I", len(inner)) + inner + b"\x85R.")
    elif variant == "json-named-constant":
        _pt2(model, _torch_save_zip(pickle.dumps({"x": 1}, protocol=2)))
        with zipfile.ZipFile(model, "a") as z:
            z.writestr("m/data/constants/tensor_0.json", evil)
    elif variant == "declared-raw-and-pickled":
        _pt2(model, _torch_save_zip(pickle.dumps({"x": 1}, protocol=2)), weights={"weight_0": evil},
             weights_config={"a": raw_w, "b": {"path_name": "weight_0", "use_pickle": True}})
    elif variant == "memo-index":
        _pt2(model, _torch_save_zip(pickle.dumps({"x": 1}, protocol=2)), weights={"weight_0": _memo_index(marker)},
             weights_config={"w": {"path_name": "weight_0", "use_pickle": True}})
    elif variant == "raw-and-pickled-in-another-case":  # PyTorch's reader matches member names ignoring case
        _pt2(model, _torch_save_zip(pickle.dumps({"x": 1}, protocol=2)), weights={"weight_0": evil + b"\0\0"},
             weights_config={"b": {"path_name": "Weight_0", "use_pickle": True}, "a": raw_w})
    elif variant == "raw-pickle":
        _pt2(model, evil)
    elif variant == "nested-torch-save":
        _pt2(model, _torch_save_zip(evil))
    elif variant == "memo-evasion":
        _pt2(model, _memo_evasion(marker))
    elif variant == "pickled-weight":
        _pt2(model, _torch_save_zip(pickle.dumps({"x": 1}, protocol=2)), weights={"weight_0": _torch_save_zip(evil)},
             weights_config={"w": {"path_name": "weight_0", "use_pickle": True}})
    else:
        model = tmp_path / "evil.pt"
        with zipfile.ZipFile(model, "w") as z:
            z.writestr("m/code/__torch__.py", "class M:\n  pass\n")
            z.writestr("m/constants.pkl", pickle.dumps((), protocol=2))
            z.writestr("m/data.pkl", evil)
            z.writestr("m/version", "3\n")
    for command in (["inspect", str(model)], ["bench", str(model)], ["import", str(model), "--workspace",
                                                                      str(tmp_path / "ws")],
                    ["package", str(model)]):
        r = cli(*command)
        line = one_line(r, model.name)
        assert "would run code" in line and any(why in line for why in (
            "posix.system", "os.system", "computed", "follow the pickle", "_load_from_bytes")), line
        assert not marker.exists()


def test_a_good_exported_program_layout_passes_the_check(tmp_path: Path) -> None:
    """Raw weights (declared use_pickle: false) may start like a pickle: they are tensor bytes, never checked as
    one; tensor-rebuilding pickles pass."""
    from edgestudio.core.pickles import check_torch_archive, pickle_globals

    import collections

    sample = pickle.dumps(collections.OrderedDict(a=(1, 2)), protocol=2)
    model = _pt2(tmp_path / "good.pt2", _torch_save_zip(sample), weights={"weight_0": b"\x80\x05garbage"},
                 weights_config={"w": {"path_name": "weight_0", "use_pickle": False}})
    check_torch_archive(model)
    assert pickle_globals(sample) == {("collections", "OrderedDict")}


@pytest.fixture(scope="module")
def savedmodels(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("sm")
    script = f"""
import tensorflow as tf
class Evil(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)])
    def __call__(self, x):
        tf.io.write_file({str(folder / 'PWNED')!r}, "x")
        return x * 2.0
class Good(tf.Module):
    def __init__(self):
        self.w = tf.Variable(tf.ones([4, 2]))
    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)])
    def __call__(self, x):
        return tf.matmul(x, self.w)
tf.saved_model.save(Evil(), {str(folder / 'evil')!r})
tf.saved_model.save(Good(), {str(folder / 'good')!r})
"""
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, timeout=300)
    return folder / "evil", folder / "good"


def test_tensorflow_graphs_with_file_ops_run_only_when_trusted(savedmodels: tuple[Path, Path]) -> None:
    evil, good = savedmodels
    marker = evil.parent / "PWNED"
    for command in (["inspect", str(evil)], ["bench", str(evil), "--iterations", "3"],
                    ["convert", str(evil), "--to", "onnx", "-o", str(evil.parent / "e.onnx")]):
        line = one_line(cli(*command), "evil")
        assert "WriteFile" in line and "--trust-model" in line, line
    assert not marker.exists()
    assert cli("inspect", str(good)).returncode == 0  # its own save functions (SaveV2) are not the graph's
    assert cli("inspect", str(SAMPLES / "digits_cnn_savedmodel")).returncode == 0
    r = cli("bench", str(evil), "--iterations", "3", "--trust-model", "--json")
    assert r.returncode == 0, r.stderr[-800:]
    assert marker.exists()  # trusted: it ran, as asked


@pytest.fixture(scope="module")
def hidden_savedmodels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ways an attacker's pass got file writes past the op check: a text SavedModel (saved_model.pbtxt only), a
    dataset cache (CacheDatasetV2 writes files), SaveV2 in a serving function whose name says "save"."""
    folder = tmp_path_factory.mktemp("hidden")
    script = f"""
import os, shutil, tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.protobuf import saved_model_pb2
D = {str(folder)!r}
sig = [tf.TensorSpec([1, 4], tf.float32, name="x")]
def save(name, fn):
    m = tf.Module(); m.f = tf.function(fn, input_signature=sig)
    tf.saved_model.save(m, D + "/" + name, signatures={{"serving_default": m.f}})
    return D + "/" + name
def wf(x):
    tf.io.write_file(D + "/PWNED_pbtxt", tf.strings.as_string(x[0, 0])); return {{"y": x * 2}}
p = save("pbtxt", wf)
sm = saved_model_pb2.SavedModel(); sm.ParseFromString(open(p + "/saved_model.pb", "rb").read())
open(p + "/saved_model.pbtxt", "w").write(text_format.MessageToString(sm)); os.remove(p + "/saved_model.pb")
def serve_save(x):
    tf.raw_ops.SaveV2(prefix=D + "/PWNED_save", tensor_names=["a"], shape_and_slices=[""], tensors=[x])
    return {{"y": x * 2}}
save("save", serve_save)
shutil.copytree(D + "/save", D + "/forged")  # a SaverDef that names the serving node as the saver's restore op
sm = saved_model_pb2.SavedModel(); sm.ParseFromString(open(D + "/forged/saved_model.pb", "rb").read())
mg = sm.meta_graphs[0]
mg.saver_def.restore_op_name = mg.signature_def["serving_default"].outputs["y"].name.split(":")[0]
open(D + "/forged/saved_model.pb", "wb").write(sm.SerializeToString())
def cache(x):
    ds = tf.data.Dataset.from_tensors(x).cache(D + "/PWNED_cache")
    return {{"y": ds.reduce(tf.zeros([1, 4]), lambda a, b: a + b) * 2}}
save("cache", cache)
"""
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, timeout=300)
    return folder


@pytest.mark.parametrize("name,op", [("pbtxt", "WriteFile"), ("save", "SaveV2"), ("forged", "SaveV2"),
                                     ("cache", "CacheDatasetV2")])
def test_file_ops_hidden_from_a_first_check_are_refused(hidden_savedmodels: Path, name: str, op: str) -> None:
    line = one_line(cli("bench", str(hidden_savedmodels / name), "--iterations", "3", "--warmup", "0",
                        "--timeout", "60"), name)
    assert op in line and "--trust-model" in line, line
    assert not list(hidden_savedmodels.glob("PWNED*"))


def test_o_naming_an_existing_file_is_refused_unless_overwrite(tmp_path: Path) -> None:
    victim = tmp_path / "precious.onnx"
    victim.write_text("precious")
    line = one_line(cli("convert", str(ONNX), "--to", "onnx", "--simplify", "-o", str(victim)), "precious.onnx")
    assert "--overwrite" in line and victim.read_text() == "precious"
    r = cli("convert", str(ONNX), "--to", "onnx", "--simplify", "-o", str(victim), "--overwrite")
    assert r.returncode == 0, r.stderr[-500:]
    assert victim.read_bytes()[:1] != b"p"


def test_tfjs_graph_with_file_ops_and_hostile_manifests_are_refused(tmp_path: Path) -> None:
    def model(name: str, nodes: list[dict], manifest: list[dict]) -> Path:  # type: ignore[type-arg]
        folder = tmp_path / name
        folder.mkdir()
        (folder / "model.json").write_text(json.dumps({"format": "graph-model", "modelTopology": {"node": [
            {"name": "x", "op": "Placeholder", "attr": {"shape": {"shape": {"dim": [{"size": "1"}, {"size": "4"}]}}}},
            {"name": "w", "op": "Const"}, *nodes]}, "weightsManifest": manifest}))
        return folder

    mm = [{"name": "y", "op": "MatMul", "input": ["x", "w"]}]
    good_manifest = [{"paths": ["s.bin"], "weights": [{"name": "w", "shape": [4, 2], "dtype": "float32"}]}]
    ops = model("ops", [*mm, {"name": "r", "op": "ReadFile", "input": ["w"]}], good_manifest)
    (ops / "s.bin").write_bytes(bytes(32))
    zero = model("zero", mm, [{"paths": ["/dev/zero"], "weights": [{"name": "w", "shape": [1024, 1024, 1024],
                                                                    "dtype": "float32"}]}])
    link = model("link", mm, [{"paths": ["s.bin"], "weights": [{"name": "w", "shape": [4, 2], "dtype": "float32"}]}])
    (link / "s.bin").symlink_to("/dev/zero")
    huge = model("huge", mm, [{"paths": ["s.bin"], "weights": [{"name": "w", "shape": [1024, 1024, 1024],
                                                                 "dtype": "float32"}]}])
    (huge / "s.bin").write_bytes(bytes(32))
    sparse = model("sparse", mm, good_manifest)
    with open(sparse / "s.bin", "wb") as fh:
        fh.truncate(8 << 30)  # 8 GiB that take no disk: a copy would write them all
    cases = {ops: "ReadFile", zero: "inside the model's folder", link: "is a link", huge: "shard files hold",
             sparse: "refusing to read or copy"}
    for folder, why in cases.items():
        for command in (["bench", str(folder), "--runtime", "tfjs-graph"], ["inspect", str(folder)],
                        ["import", str(folder), "--workspace", str(tmp_path / "ws")],
                        ["package", str(folder), "-o", str(tmp_path / f"{folder.name}.zip")]):
            line = one_line(cli(*command, budget="2G", timeout=120), folder.name)
            assert why in line, (command, line)
    assert not (tmp_path / "ws" / "models").exists() or not any((tmp_path / "ws" / "models").iterdir())


# ---------------------------------------------------------------------------------- 2. budgets before allocation
@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    d = tmp_path_factory.mktemp("bombs")
    op17 = [helper.make_opsetid("", 17)]
    a, b = helper.make_node("Relu", ["y"], ["x2"]), helper.make_node("Relu", ["x2"], ["y"])
    g = helper.make_graph([a, b], "cycle", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(g, opset_imports=op17), str(d / "cycle.onnx"))
    shape = numpy_helper.from_array(np.array([3, 1024, 1024, 256], np.int64), "s")
    g = helper.make_graph([helper.make_node("ConstantOfShape", ["s"], ["c"]), helper.make_node("Add", ["x", "c"], ["y"])],
                          "cos", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 1024, 1024, 256])],
                          initializer=[shape])
    onnx.save(helper.make_model(g, opset_imports=op17), str(d / "constantofshape.onnx"))
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "big",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [768, 1024, 1024])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [768, 1024, 1024])])
    onnx.save(helper.make_model(g, opset_imports=op17), str(d / "big_input.onnx"))
    with zipfile.ZipFile(d / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as z, z.open("x.npy", "w", force_zip64=True) as f:
        np.lib.format.write_array(f, np.zeros((640, 1024, 1024), np.float32))  # 2.5 GB of zeros in ~2.5 MB
    with zipfile.ZipFile(d / "many.keras", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json", "{}")
        z.writestr("metadata.json", "{}")
        for i in range(1500):
            z.writestr(f"w{i}.bin", bytes(1 << 20))  # each member exactly 1 MiB: under any per-member check
    return {p.stem: p for p in d.iterdir()}


def _peak_kb(command: list[str], tmp: Path) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run the CLI under a small wrapper that reports the peak resident memory of the command and its workers."""
    report = tmp / "peak.txt"
    wrapper = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[2:]); open(sys.argv[1], 'w').write("
               "str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); sys.exit(r.returncode)")
    env = dict(os.environ, PYTHONWARNINGS="ignore", EDGESTUDIO_MEMORY_BUDGET="2G")
    r = subprocess.run([sys.executable, "-c", wrapper, str(report), sys.executable, "-m", "edgestudio", *command],
                       capture_output=True, text=True, errors="replace", timeout=120, env=env, cwd=ROOT)
    return r, int(report.read_text())


def test_small_files_that_declare_gigabytes_are_refused_before_allocation(bombs: dict[str, Path],
                                                                         tmp_path: Path) -> None:
    cases = [
        (["convert", str(bombs["cycle"]), "--to", "tflite"], "cycle", "a cycle"),
        (["convert", str(bombs["cycle"]), "--to", "openvino"], "cycle", "a cycle"),
        (["bench", str(bombs["constantofshape"])], "constantofshape", "memory budget"),
        (["convert", str(bombs["constantofshape"]), "--to", "openvino"], "constantofshape", "memory budget"),
        (["bench", str(bombs["big_input"])], "big_input", "memory budget"),
        (["profile", str(bombs["big_input"])], "big_input", "memory budget"),
        (["inspect", str(bombs["many"])], "many.keras", "decompression bomb"),
        (["bench", str(ONNX), "--input", str(bombs["bomb"])], "bomb.npz", "decompression bomb"),
        (["optimize", str(ONNX), "--method", "int8-static", "--runtime", "onnxruntime", "--calibration",
          str(bombs["bomb"]), "-o", str(bombs["bomb"].parent / "q.onnx")], "bomb.npz", "decompression bomb"),
        (["eval", str(ONNX), "--dataset", str(bombs["bomb"])], "bomb.npz", "decompression bomb"),
    ]
    for command, name, why in cases:
        r, peak_kb = _peak_kb(command, tmp_path)
        line = one_line(r, name)
        assert why in line, (command, line)
        assert peak_kb < 1_500_000, f"{command[:2]}: a refused input still took {peak_kb / 1024:.0f} MB"


def test_a_job_past_the_budget_is_stopped_with_one_line(tmp_path: Path) -> None:
    """What no declared size gives away (a model that grows while it runs) is stopped by the budget's watch."""
    r = cli("inspect", str(SAMPLES / "digits_cnn.keras"), budget="100M")
    line = one_line(r, "digits_cnn.keras")
    assert "out of memory" in line and "memory budget" in line


# ------------------------------------------------------------------------------------------ 3. no hangs
def test_fifos_and_devices_are_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "data.npz"
    os.mkfifo(fifo)
    recipe = tmp_path / "r.yaml"
    os.mkfifo(recipe)
    cases = [(["optimize", str(ONNX), "--method", "int8-static", "--runtime", "onnxruntime", "--calibration",
               str(fifo), "-o", str(tmp_path / "q.onnx")], "data.npz"),
             (["bench", str(ONNX), "--input", str(fifo)], "data.npz"),
             (["eval", str(ONNX), "--dataset", str(fifo)], "data.npz"),
             (["run", str(recipe)], "r.yaml"), (["sweep", str(recipe)], "r.yaml"), (["run", "/dev/zero"], "/dev/zero"),
             (["inspect", "/dev/zero"], "/dev/zero")]
    for command, name in cases:
        line = one_line(cli(*command, timeout=60), name)
        assert "regular file" in line, line


def test_yaml_alias_bombs_are_refused(tmp_path: Path) -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i, name in enumerate("bcdefgh"):
        prev = "abcdefgh"[i]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    for command in (["run", str(bomb)], ["sweep", str(bomb)]):
        line = one_line(cli(*command, timeout=60), "bomb.yaml")
        assert "expands" in line or "aliases" in line, line


# --------------------------------------------------------------------------------------- 4. recipes confined
def _recipe(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "m.onnx").exists():
        shutil.copy(ONNX, folder / "m.onnx")
    p = folder / name
    p.write_text("edgestudio_recipe: 1\n" + body)
    return p


def test_recipes_write_and_read_only_where_they_may(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    escape = _recipe(proj, "escape.yaml", 'model: m.onnx\nsteps:\n- {id: "z/../../../../tmp/X", convert: '
                                          '{from: model, to: openvino}}\n')
    one_line(cli("run", str(escape)), "escape.yaml")
    outside = tmp_path / "elsewhere.npz"
    np.savez(outside, image=np.zeros((1, 8, 8, 1), np.float32))
    reads = _recipe(proj, "reads.yaml", "model: m.onnx\ninputs: {data: ../elsewhere.npz}\nsteps:\n"
                                        "- {id: ov, convert: {from: model, to: openvino}}\n")
    line = one_line(cli("run", str(reads)), "reads.yaml")
    assert "outside the recipe's folder" in line and "--allow-outside" in line
    absolute = _recipe(proj, "abs.yaml", f"model: {proj / 'm.onnx'}\n" + "steps:\n- {id: ov, convert: {from: model, "
                                         "to: openvino}}\n")
    assert "absolute path" in one_line(cli("run", str(absolute)), "abs.yaml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere.npz", "proj"]
    assert sorted(p.name for p in proj.iterdir()) == ["abs.yaml", "escape.yaml", "m.onnx", "reads.yaml"]
    # --plan: what it would read and write, nothing run or written
    r = cli("run", str(reads), "--plan", "--allow-outside", "--json")
    plan = json.loads(r.stdout)
    assert [x["what"] for x in plan["reads"]] == ["model", "inputs.data"]
    assert plan["steps"][0]["writes"].endswith("reads_out/reads/01_ov") and not (proj / "reads_out").exists()
    # allowed, twice into the same --out: the first run's folder is kept
    for _ in range(2):
        r = cli("run", str(reads), "--allow-outside", "--out", str(proj / "out"))
        assert r.returncode == 0, r.stderr[-800:]
    assert sorted(p.name for p in (proj / "out").iterdir()) == ["reads", "reads-2"]
    assert (proj / "out" / "reads" / "01_ov" / "m.xml").is_file()


def test_failed_recipe_steps_and_sweeps_exit_non_zero_with_a_line(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, "r.yaml", "model: m.onnx\nsteps:\n- {bench: {runtime: onnxruntime, iterations: 5, "
                                         "threads: 100000}}\n")
    line = one_line(cli("run", str(recipe)), "r.yaml")
    assert "threads 100000 is out of range" in line
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "dyn",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "n"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "n"])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "dyn.onnx"))
    sweep = tmp_path / "s.yaml"
    sweep.write_text(f"models: [{tmp_path / 'm.onnx'}, {tmp_path / 'dyn.onnx'}]\nruntimes: [onnxruntime]\n"
                     "iterations: 5\n")
    r = cli("sweep", str(sweep))
    assert r.returncode == 1 and "1 of 2 configurations failed" in r.stderr, r.stderr[-800:]
    assert "p50" in r.stdout or "m.onnx" in r.stdout  # the configuration that ran is still reported
    sweep.write_text(f"models: [{tmp_path / 'm.onnx'}]\nruntimes: [onnxruntime]\nthreads: [1, 100000]\n")
    assert "out of range" in one_line(cli("sweep", str(sweep)), "m.onnx")


# ------------------------------------------------------------------------------------- 6. outputs never destroy
def test_o_naming_a_folder_writes_inside_it_and_links_are_refused(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    (proj / "sub").mkdir(parents=True)
    shutil.copy(ONNX, proj / "tiny.onnx")
    (proj / "notes.txt").write_text("mine")
    (proj / "sub" / "keep.txt").write_text("mine too")
    for command in (["package", "tiny.onnx", "-o", "."], ["convert", "tiny.onnx", "--to", "ort", "-o", "sub"],
                    ["optimize", "tiny.onnx", "--method", "fp16", "--runtime", "onnxruntime", "-o", "sub"]):
        r = cli(*command, cwd=proj)
        assert r.returncode == 0, (command, r.stderr[-800:])
    assert (proj / "notes.txt").read_text() == "mine" and (proj / "sub" / "keep.txt").read_text() == "mine too"
    assert (proj / "tiny_onnxruntime.zip").is_file()
    assert (proj / "sub" / "tiny.ort").is_file() and any(p.suffix == ".onnx" for p in (proj / "sub").iterdir())
    victim = tmp_path / "victim.txt"
    victim.write_text("VICTIM")
    (proj / "link.onnx").symlink_to(victim)
    for command in (["convert", "tiny.onnx", "--to", "onnx", "--simplify", "-o", "link.onnx"],
                    ["package", "tiny.onnx", "-o", "link.onnx"]):
        line = one_line(cli(*command, cwd=proj), "link.onnx")
        assert "is a link" in line
    assert victim.read_text() == "VICTIM"


def test_an_ir_whose_bin_is_a_link_is_refused(tmp_path: Path, sample_ir: Path) -> None:
    shutil.copy(sample_ir, tmp_path / "m.xml")
    (tmp_path / "m.bin").symlink_to(sample_ir.with_suffix(".bin"))
    for command in (["inspect", str(tmp_path / "m.xml")], ["import", str(tmp_path / "m.xml"), "--workspace",
                                                           str(tmp_path / "ws")]):
        assert "is a link" in one_line(cli(*command), "m.xml")


# ------------------------------------------------------------------------------------ 7. numbers are bounded
def test_numeric_options_are_bounded(tmp_path: Path) -> None:
    for command in (["bench", str(ONNX), "--threads", "100000"], ["bench", str(ONNX), "--iterations", "0"],
                    ["debug", str(ONNX), "--parent", str(ONNX), "--samples", "100000000"],
                    ["compare", str(ONNX), "--threads", "1,100000"], ["profile", str(ONNX), "--runs", "-1"]):
        r = cli(*command, timeout=60)
        assert r.returncode == 2 and "out of range" in r.stderr and "Traceback" not in r.stderr, (command, r.stderr)


# --------------------------------------------------------------------------------------- 8. names and paths
def test_onnx_under_other_names_and_odd_paths(tmp_path: Path) -> None:
    for suffix in (".json", ".textproto", ".ort"):
        m = tmp_path / f"d{suffix}"
        shutil.copy(ONNX, m)
        for command in (["inspect", str(m)], ["bench", str(m), "--iterations", "3"]):
            r = cli(*command)
            assert r.returncode == 0, (command, r.stderr[-500:])
    odd = tmp_path / os.fsdecode(b"caf\xe9.onnx")
    shutil.copy(ONNX, odd)
    r = cli("import", str(odd), "--workspace", "ws", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-500:]
    r = cli("models", "--workspace", str(tmp_path / "ws"), "--json", cwd=ROOT)  # from another folder
    models = json.loads(r.stdout)
    assert Path(models[0]["path"]).is_absolute() and Path(models[0]["path"]).is_file()


# ----------------------------------------------------------------------------------------------- the studio
def test_the_studio_asks_before_importing_a_model_whose_graph_reaches_files(qtbot, window, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from PySide6.QtWidgets import QMessageBox

    folder = tmp_path / "reader_tfjs"
    folder.mkdir()
    (folder / "model.json").write_text(json.dumps({"format": "graph-model", "modelTopology": {"node": [
        {"name": "x", "op": "Placeholder"}, {"name": "f", "op": "Const"},
        {"name": "r", "op": "ReadFile", "input": ["f"]}]}, "weightsManifest": []}))
    asked: list[str] = []
    answers = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]

    def question(parent, title, text, *args):  # type: ignore[no-untyped-def]
        asked.append(text)
        return answers.pop(0)

    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    assert window.import_paths([folder]) == []
    assert len(asked) == 1 and "ReadFile" in asked[0] and "trust" in asked[0].lower()
    assert not window.workspace.models() or all(m.name != "reader_tfjs" for m in window.workspace.models())
    assert "not trusted" in window.statusBar().currentMessage()
    window.import_paths([folder])  # asked again: yes
    assert any(m.name == "reader_tfjs" for m in window.workspace.models())
    from edgestudio.core.safety import graph_digest

    assert graph_digest(folder) in Path(os.environ["EDGESTUDIO_TRUST_FILE"]).read_text()


def test_a_full_disk_while_importing_a_folder_says_which_disk(tmp_path: Path) -> None:
    from tests.test_fuzz import _tmpfs, fill

    full = tmp_path / "full"
    if not _tmpfs(full, 400):
        pytest.skip("cannot mount a small tmpfs here")
    try:
        assert cli("models", "--workspace", str(full / "ws")).returncode == 0
        fill(full / "fill")
        line = one_line(cli("import", str(SAMPLES / "digits_cnn_savedmodel"), "--workspace", str(full / "ws")),
                        str(full))
        assert "no space left on" in line and "[" not in line.split("no space left on")[1], line
    finally:
        subprocess.run(["umount", str(full)], capture_output=True)
