"""Per-layer truth on models where the answer is known: a child with one layer deliberately broken, the same
model converted to OpenVINO IR and to TFLite (every layer agrees), and per-layer time from the runtimes' own
profilers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SAMPLES, run_cli


@pytest.fixture(scope="module")
def real_inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    x = np.load(SAMPLES / "digits_test.npz")["x"][:8].astype(np.float32)[:, None]  # 8 samples of batch 1
    path = tmp_path_factory.mktemp("inputs") / "digits8.npz"
    np.savez(path, image=x)
    return path


def test_the_first_diverging_layer_is_the_one_that_was_broken(tmp_path: Path, real_inputs: Path) -> None:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(SAMPLES / "digits_cnn.onnx"))
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    weight = convs[1].input[1]  # the second convolution's weights: scaled, a wrong layer on purpose
    for i, init in enumerate(model.graph.initializer):
        if init.name == weight:
            w = numpy_helper.to_array(init) * 1.5 + 0.05
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(w.astype(np.float32), weight))
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    r = run_cli("debug", str(broken), "--parent", str(SAMPLES / "digits_cnn.onnx"), "--input", str(real_inputs),
                "--samples", "8", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["verdict"] == "diverges" and d["samples"] == 8 and d["note"] is None
    first = d["first_diverging"]
    assert first["node"] in (convs[1].name, *[n.name for n in model.graph.node if convs[1].output[0] in n.input])
    assert "conv2" in first["parent"]
    before = [p for p in d["pairs"] if p["order"] < first["order"]]
    assert before and all(p["cosine"] > 0.99999 for p in before)  # everything before it agrees
    heat = d["graph"]["nodes"]  # the overlay painted on the parent's graph: hot at the broken layer, cold before
    assert heat[first["node"]]["heat"] >= 0.5 and "first diverging" in heat[first["node"]]["label"]
    assert all(heat[p["node"]]["heat"] < 0.01 for p in before) and d["graph"]["model"] == str(SAMPLES / "digits_cnn.onnx")
    text = run_cli("debug", str(broken), "--parent", str(SAMPLES / "digits_cnn.onnx"), "--input",
                   str(real_inputs), "--samples", "8").stdout
    assert "first diverging layer" in text and "<- diverges" in text
    # on the first 4 samples the broken layer does not reach the (saturated) outputs: said so, never "diverges"
    four = json.loads(run_cli("debug", str(broken), "--parent", str(SAMPLES / "digits_cnn.onnx"), "--input",
                              str(real_inputs), "--json").stdout)
    assert four["verdict"] == "outputs agree" and four["outputs"]["outputs"][0]["cosine"] >= 0.9999
    text = run_cli("debug", str(broken), "--parent", str(SAMPLES / "digits_cnn.onnx"), "--input",
                   str(real_inputs)).stdout
    assert "the outputs agree; inside, a layer parts without reaching them" in text


@pytest.mark.parametrize("child", ["openvino", "tflite"])
def test_a_faithful_conversion_agrees_layer_by_layer(child: str, tmp_path: Path, real_inputs: Path) -> None:
    """Names kept by the converter match by name (TFLite's fused ops: the last op they fused); layouts undone."""
    if child == "openvino":
        path = tmp_path / "digits.xml"
        assert run_cli("convert", str(SAMPLES / "digits_cnn.onnx"), "--to", "openvino", "-o", str(path)).returncode == 0
    else:
        path = SAMPLES / "digits_cnn.tflite"  # the same Keras model, through TFLite's converter
    r = run_cli("debug", str(path), "--parent", str(SAMPLES / "digits_cnn.onnx"), "--input", str(real_inputs),
                "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["verdict"] == "agrees" and d["first_diverging"] is None, d["first_diverging"]
    assert d["matched_by_name"] >= 5 and all(p["cosine"] > 0.9999 for p in d["pairs"])


def test_random_inputs_only_are_inconclusive(tmp_path: Path) -> None:
    r = run_cli("debug", str(SAMPLES / "digits_cnn.tflite"), "--parent", str(SAMPLES / "digits_cnn.onnx"), "--json")
    d = json.loads(r.stdout)
    assert d["verdict"] == "inconclusive" and "random" in d["note"]
    bad = run_cli("debug", str(SAMPLES / "digits_cnn.keras"), "--parent", str(SAMPLES / "digits_cnn.onnx"))
    assert bad.returncode != 0 and "convert it first" in bad.stderr and "Traceback" not in bad.stderr


def test_unnamed_tensors_pair_forward_by_structure_and_a_folded_batchnorm_stands_for_its_conv() -> None:
    """A .pte names no tensor: equal positions never pair by name. Walked forward from the inputs, an op pairs with
    the child's op of its type fed by the paired tensors, when their consumers are of the same types; a child that
    folded a BatchNorm into its convolution (PT2E quantization does) pairs that convolution with the BatchNorm."""
    from edgestudio.backends.intermediates import Tensor
    from edgestudio.bench.layers import match_tensors

    x = np.random.default_rng(0).normal(size=(1, 4, 8, 8)).astype(np.float32)
    conv, bn = 2 * x, 2 * x + 1

    def t(name: str, op: str, order: int, source: str, value: np.ndarray, weighted: bool = False) -> Tensor:
        return Tensor(name, op, f"#{order} {op}", order, (source,), weighted, values=[value], named=False)

    parent = [Tensor("input:input_0", "Input", "input_0", -1), t("#0:0", "convolution", 0, "input:input_0", conv, True),
              t("#1:0", "_native_batch_norm_legit_no_training", 1, "#0:0", bn),
              t("#2:0", "relu", 2, "#1:0", np.maximum(bn, 0))]
    child = [Tensor("input:input_0", "Input", "input_0", -1),
             t("#0:0", "convolution", 0, "input:input_0", bn + 1e-3, True),  # the BatchNorm folded in
             t("#1:0", "relu", 1, "#0:0", np.maximum(bn + 1e-3, 0))]
    m = match_tensors(parent, child)
    assert [(p.parent, p.child, p.matched_by) for p in m.pairs] == [("#1:0", "#0:0", "structure"),
                                                                     ("#2:0", "#1:0", "structure")]
    assert m.unmatched_parent == ["#0:0"] and m.pairs[0].blame_node == "#0 convolution"
    assert all(p.cosine > 0.9999 for p in m.pairs)


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_profile_says_where_time_goes(runtime: str) -> None:
    r = run_cli("profile", str(SAMPLES / "digits_cnn.onnx"), "--runtime", runtime, "--runs", "20", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    ops = {o["op"] for o in d["by_op"]}
    assert ops & {"Conv", "Convolution", "FusedConv"} and d["runs"] == 20
    assert abs(sum(x["ms"] for x in d["layers"]) - d["total_layer_ms"]) < 1e-6
    assert abs(sum(x["share"] for x in d["by_op"]) - 1.0) < 1e-6 and all(x["ms"] >= 0 for x in d["layers"])
    if runtime == "openvino":
        assert all(x["kernel"] for x in d["layers"])  # the kernel that ran it (e.g. brgemm_avx2_f32)
    # on the graph: the runtime's kernels mapped back to the model's nodes (fused and re-laid-out names undone);
    # what the runtime inserted itself (reorders) has no node, and is said
    import onnx

    graph = d["graph"]
    names = {n.name: n.op_type for n in onnx.load(str(SAMPLES / "digits_cnn.onnx")).graph.node}
    assert set(graph["nodes"]) <= set(names) and sum(names[n] == "Conv" for n in graph["nodes"]) == 2
    assert graph["not_on_graph_ms"] < 0.5 * d["total_layer_ms"]
    assert max(v["heat"] for v in graph["nodes"].values()) == 1.0
    lite = run_cli("profile", str(SAMPLES / "digits_cnn.tflite"))
    assert lite.returncode != 0 and "no per-op profiler" in lite.stderr


def _broken(tmp_path: Path, op: str = "Conv", index: int = 1) -> Path:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(SAMPLES / "digits_cnn.onnx"))
    node = [n for n in model.graph.node if n.op_type == op][index]
    for i, init in enumerate(model.graph.initializer):
        if init.name == node.input[1]:
            w = numpy_helper.to_array(init) * 1.5 + 0.05
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(w.astype(np.float32), init.name))
    path = tmp_path / f"digits_broken_{op.lower()}{index}.onnx"
    onnx.save(model, str(path))
    return path


def test_the_whole_chain_names_the_hop_where_accuracy_left(tmp_path: Path, real_inputs: Path) -> None:
    """A lineage of three: the original, a faithful TFLite twin, then a child with a broken convolution. Each hop is
    compared with its parent and the whole with the original: the first hop agrees, the loss enters at the second."""
    from edgestudio.core.workspace import Workspace

    ws = Workspace(tmp_path / "ws")
    root = ws.import_model(SAMPLES / "digits_cnn.onnx")
    mid = ws.add_artifact(SAMPLES / "digits_cnn.tflite", parent_id=root.id, job_id=None, options={"to": "tflite"})
    leaf = ws.add_artifact(_broken(tmp_path), parent_id=mid.id, job_id=None, options={"method": "test"})
    ws.close()
    # all 8 samples: on the first 4 the broken convolution never reaches the (saturated) outputs, which then agree
    r = run_cli("debug", leaf.path, "--chain", "--workspace", str(tmp_path / "ws"), "--input", str(real_inputs),
                "--samples", "8", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert [h["verdict"] for h in d["hops"]] == ["agrees", "diverges"] and d["loss_enters_at"] == 1
    assert d["whole"]["verdict"] == "diverges" and "conv2" in d["whole"]["first_diverging"]["parent"]
    assert "conv2" in d["hops"][1]["first_diverging"]["parent"]  # TFLite parent, ONNX child: fused names split
    assert d["models"] == [root.path, mid.path, leaf.path]
    text = run_cli("debug", leaf.path, "--chain", "--workspace", str(tmp_path / "ws"), "--input",
                   str(real_inputs), "--samples", "8").stdout
    assert "hop 2" in text and "<- the loss enters here" in text.splitlines()[2]
    bad = run_cli("debug", leaf.path, "--chain")
    assert bad.returncode != 0 and "--workspace" in bad.stderr and "Traceback" not in bad.stderr


def test_the_studio_shows_where_a_variant_parts_and_where_time_goes(qtbot, window, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                    real_inputs: Path) -> None:
    """'Why did accuracy drop?' on a variant: the table marks the diverging layers, the chart plots cosine along the
    graph; 'Profile layers' shows time per op type and per layer."""
    import os

    import onnx
    from onnx import numpy_helper

    from tests.conftest import ROOT

    model = onnx.load(str(SAMPLES / "digits_cnn.onnx"))
    fc = [n for n in model.graph.node if n.op_type in ("MatMul", "Gemm")][0]
    for i, init in enumerate(model.graph.initializer):
        if init.name in fc.input:
            w = numpy_helper.to_array(init)
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array((-w).astype(w.dtype), init.name))
    broken = tmp_path / "digits_broken_fc.onnx"
    onnx.save(model, str(broken))
    (parent_id,) = window.import_paths([SAMPLES / "digits_cnn.onnx"])
    child = window.workspace.add_artifact(broken, parent_id=parent_id, job_id=None, options={"method": "test"})
    window.refresh()
    dialog = window.layer_debug(child.id, inputs={"data": str(real_inputs)})
    qtbot.waitUntil(lambda: dialog.result is not None or "failed" in dialog.status.text(), timeout=120_000)
    assert dialog.result is not None, dialog.status.text()
    assert dialog.result["verdict"] == "diverges" and "fc1" in dialog.result["first_diverging"]["parent"]
    assert "First diverging layer" in dialog.status.text() and dialog.table.rowCount() == dialog.result["matched"]
    from PySide6.QtCore import Qt

    marked = [i for i in range(dialog.table.rowCount())
              if dialog.table.item(i, 0).background().style() != Qt.BrushStyle.NoBrush]
    assert marked and all(dialog.result["pairs"][i]["diverges"] for i in marked)
    assert dialog.tabs.count() == 2 and dialog.graph.overlay is dialog.result["graph"]  # "On the graph"
    assert not dialog.chain_button.isEnabled()  # one hop: nothing more to walk
    prof = window.model_action("profile", parent_id)
    qtbot.waitUntil(lambda: prof.result is not None or "failed" in prof.status.text(), timeout=120_000)
    assert prof.result is not None and prof.by_op.rowCount() > 0 and prof.layers.rowCount() > 0
    assert prof.graph is not None and prof.graph.overlay["nodes"] and prof.graph.url  # Netron serves the model
    # a lineage of three: "Whole chain" compares every hop and names the one where the loss entered
    twin = window.workspace.add_artifact(SAMPLES / "digits_cnn.tflite", parent_id=parent_id, job_id=None,
                                         options={"to": "tflite"})
    leaf = window.workspace.add_artifact(_broken(tmp_path), parent_id=twin.id, job_id=None, options={"method": "t"})
    window.refresh()
    chain = window.layer_debug(leaf.id, inputs={"data": str(real_inputs)})
    assert chain.chain_button.isEnabled() and len(chain.chain) == 3
    qtbot.waitUntil(lambda: chain.result is not None, timeout=120_000)  # the one-hop comparison runs first
    chain.chain_button.click()
    qtbot.waitUntil(lambda: chain.chain_result is not None or "failed" in chain.status.text(), timeout=120_000)
    assert chain.chain_result is not None, chain.status.text()
    assert chain.chain_result["loss_enters_at"] == 1 and chain.chain_table.rowCount() == 3
    assert "hop 2" in chain.status.text() and chain.tabs.currentWidget() is chain.chain_table
    if os.environ.get("EDGESTUDIO_SHOTS"):
        dialog.grab().save(str(ROOT / "docs" / "screenshots" / "why-accuracy-dropped.png"))
        prof.grab().save(str(ROOT / "docs" / "screenshots" / "profile-layers.png"))
        chain.grab().save(str(ROOT / "docs" / "screenshots" / "debug-whole-chain.png"))
    for d in (dialog, prof, chain):
        d.close()


@pytest.fixture(scope="module")
def outlier_float(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits CNN with one channel of conv1 scaled up 300x and conv2's weights on it scaled down as much: the
    same float model (ReLU is positively homogeneous), whose conv1 output has a per-tensor INT8 scale 300x too
    coarse for its other channels. Its static INT8 loses accuracy by arithmetic, on any CPU (the plain digits CNN
    keeps its accuracy where the CPU has VNNI), and keeping conv1/conv2 in float brings it back."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(SAMPLES / "digits_cnn.onnx"))
    inits = {i.name: i for i in m.graph.initializer}
    names = ("digits_cnn_1/conv1_1/convolution/ReadVariableOp:0", "digits_cnn_1/conv1_1/Squeeze:0",
             "digits_cnn_1/conv2_1/convolution/ReadVariableOp:0")
    w1, b1, w2 = (numpy_helper.to_array(inits[n]).copy() for n in names)
    w1[0] *= 300
    b1[0] *= 300
    w2[:, 0] /= 300
    for name, arr in zip(names, (w1, b1, w2)):
        inits[name].CopyFrom(numpy_helper.from_array(arr.astype(np.float32), name))
    path = tmp_path_factory.mktemp("outlier") / "digits_outlier.onnx"
    onnx.save(m, str(path))
    return path


def test_rescue_keeps_the_fewest_layers_in_float_to_pass_the_guard(tmp_path: Path, real_inputs: Path,
                                                                    outlier_float: Path) -> None:
    """ORT static INT8 of a model with an outlier channel loses test images; with no drop allowed the search
    keeps the layers the comparison blames in float, each step measured, and writes the model that passes."""
    out = tmp_path / "rescued.onnx"
    r = run_cli("rescue", str(outlier_float), "--calibration", str(SAMPLES / "digits_calib.npz"),
                "--dataset", str(SAMPLES / "digits_test.npz"), "--max-drop", "0", "--input", str(real_inputs), "-o",
                str(out), "--json", timeout=600)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    first, last = d["steps"][0], d["steps"][-1]
    assert not first["passed"] and first["top1"] < d["reference_top1"] and first["kept_in_float"] == []
    assert last["passed"] and last["top1"] == d["reference_top1"] and 1 <= len(last["kept_in_float"]) <= 3
    assert all(s["p50_ms"] > 0 and s["size_bytes"] > 0 for s in d["steps"]) and out.is_file()
    from edgestudio.bench.accuracy import evaluate

    assert evaluate(out, SAMPLES / "digits_test.npz").top1 == d["reference_top1"]  # the artifact is the one that passed


def test_rescue_with_nncf_and_the_tflite_denylist(tmp_path: Path, real_inputs: Path) -> None:
    """NNCF INT8 of the digits CNN loses one test image; the search keeps the op it blames in float (its NNCF name)
    and the IR it writes has the float model's top-1. LiteRT: each step denylists one more weighted op (the TFLite
    quantization debugger), which then runs in float (the model grows by its float weights)."""
    out = tmp_path / "rescued.xml"
    r = run_cli("rescue", str(SAMPLES / "digits_cnn.onnx"), "--runtime", "openvino", "--calibration",
                str(SAMPLES / "digits_calib.npz"), "--dataset", str(SAMPLES / "digits_test.npz"), "--max-drop", "0",
                "--input", str(real_inputs), "-o", str(out), "--json", timeout=600)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert not d["steps"][0]["passed"] and d["steps"][-1]["passed"] and 1 <= len(d["kept_in_float"]) <= 3
    from edgestudio.bench.accuracy import evaluate

    assert out.is_file() and out.with_suffix(".bin").is_file()
    assert evaluate(out, SAMPLES / "digits_test.npz").top1 == d["reference_top1"]

    lite = run_cli("rescue", str(SAMPLES / "digits_cnn.keras"), "--runtime", "litert", "--calibration",
                   str(SAMPLES / "digits_calib.npz"), "--min-cosine", "1.0", "--max-steps", "1", "--input",
                   str(real_inputs), "-o", str(tmp_path / "r.tflite"), "--json", timeout=600)
    assert lite.returncode == 1 and "stopped:" in lite.stderr  # a guard nothing can pass: it says why it stopped
    best = json.loads(lite.stdout)
    steps = best["steps"]
    assert (tmp_path / "r.tflite").exists() == (best["best_step"] == 1)  # the best attempt, written if it improved
    assert [len(s["kept_in_float"]) for s in steps] == [0, 1] and steps[1]["size_bytes"] > steps[0]["size_bytes"]
    kept = steps[1]["kept_in_float"][0]
    one = tmp_path / "one.tflite"
    r = run_cli("optimize", str(SAMPLES / "digits_cnn.keras"), "--method", "int8-static", "--runtime", "litert",
                "--calibration", str(SAMPLES / "digits_calib.npz"), "--ignore", kept, "-o", str(one), timeout=600)
    assert r.returncode == 0, r.stderr
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(str(one))
    dtypes = {t["name"]: t["dtype"] for t in interp.get_tensor_details()}
    assert dtypes[kept] == np.float32 and any(v == np.int8 for v in dtypes.values())  # that op in float, the rest INT8


def test_a_real_quantized_model_is_compared_layer_by_layer_without_stand_ins(tmp_path: Path) -> None:
    """PP-OCR's text-direction classifier (real weights), ORT static INT8 on real text-line images: the quantizer
    inserts Quantize/DequantizeLinear copies and fuses Add+Clip; the copies must not stand in for the fused layers
    (they once made a fused Add the 'first diverging layer'). Every pair is matched by name; what was fused away is
    reported unmatched."""
    from tests.helpers import real_models as rm

    if not rm.available():
        pytest.skip("real models not fetched: python tests/helpers/real_models.py")
    lines = tmp_path / "lines.npz"
    np.savez(lines, x=rm.ppocr_line_input(4))  # 4 samples of batch 1 (n, 1, 3, H, W)
    child = tmp_path / "cls_int8.onnx"
    r = run_cli("optimize", str(rm.model("ppocr_cls.onnx")), "--method", "int8-static", "--calibration", str(lines),
                "--keep-lossy", "-o", str(child), timeout=600)
    assert r.returncode == 0, r.stderr
    r = run_cli("debug", str(child), "--parent", str(rm.model("ppocr_cls.onnx")), "--input", str(lines), "--json",
                timeout=600)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["matched"] > 150 and d["matched_by_name"] + d["matched_by_structure"] == d["matched"]
    assert d["note"] is None and not any("QuantizeLinear" in p["child"] for p in d["pairs"])
    # the quantizer fused Add+Clip and gave the Add's output the Clip's name: that tensor is paired with the Add's
    # output (both before the Clip), never with the Clip's; the Clip's own output has no partner
    add = next(p for p in d["pairs"] if p["parent"] == "Add@0")
    assert add["op"] == "Add" and add["child_op"] == "Add" and add["child"] != "Add@0"
    clip = add["child"]
    assert clip in d["unmatched_parent"] and not any(p["parent"] == clip for p in d["pairs"])


def test_the_studio_rescues_a_lossy_int8_variant_into_the_workspace(qtbot, window, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                     real_inputs: Path, outlier_float: Path) -> None:
    """'Rescue' in the layer dialog of an INT8 variant: the search runs as a job, its steps fill a table, and the
    rescued model joins the lineage under the float parent with what was kept in float."""
    import os

    from edgestudio.optimization.engine import optimize_model
    from tests.conftest import ROOT

    (root_id,) = window.import_paths([outlier_float])
    lossy = tmp_path / "digits_int8.onnx"
    optimize_model(outlier_float, "int8-static", runtime="onnxruntime", output=lossy,
                   options=__import__("edgestudio.backends.optimizers.base", fromlist=["x"]).OptimizeOptions(
                       calibration=str(SAMPLES / "digits_calib.npz"), keep_lossy=True))  # lossy: what is rescued
    child = window.workspace.add_artifact(lossy, parent_id=root_id, job_id=None, options={
        "method": "int8-static", "runtime": "onnxruntime", "calibration": str(SAMPLES / "digits_calib.npz"),
        "dataset": str(SAMPLES / "digits_test.npz"), "max_drop": 0.0})
    window.refresh()
    dialog = window.layer_debug(child.id, inputs={"data": str(real_inputs)})
    qtbot.waitUntil(lambda: dialog.result is not None, timeout=120_000)
    assert dialog.rescue_button.isEnabled()
    dialog.rescue_button.click()
    qtbot.waitUntil(lambda: dialog.rescue_result is not None or "failed" in dialog.status.text(), timeout=300_000)
    d = dialog.rescue_result
    assert d is not None and d["passed"], dialog.status.text()
    assert dialog.rescue_table.rowCount() == len(d["steps"]) >= 2 and "joined the workspace" in dialog.status.text()
    rescued = [m for m in window.workspace.children(root_id) if m.options.get("rescued")]
    assert len(rescued) == 1 and rescued[0].options["kept_in_float"] == d["kept_in_float"]
    assert Path(rescued[0].path).is_file() and Path(rescued[0].path).is_relative_to(window.workspace.root)
    if os.environ.get("EDGESTUDIO_SHOTS"):
        dialog.grab().save(str(ROOT / "docs" / "screenshots" / "rescue.png"))
    dialog.close()


FC1 = "digits_cnn_1/fc1_1/MatMul"


@pytest.fixture(scope="module")
def culprit_float(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits CNN made so that ONE layer loses its INT8 by arithmetic, on any CPU: conv2's channel 0 is dead
    (zero weights, bias -1000: always 0 after its ReLU), and fc1's weights on that channel's features are 200x the
    largest of the others. In float they multiply zeros (the model computes what its other channels say); in INT8
    they set every column's weight scale, so the real weights of fc1 round to almost nothing. The loss is fc1's own:
    nothing before it changes, and keeping fc1 in float restores the output."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(SAMPLES / "digits_cnn.onnx"))
    inits = {i.name: i for i in m.graph.initializer}
    w2n, b2n, fcn = ("digits_cnn_1/conv2_1/convolution/ReadVariableOp:0", "digits_cnn_1/conv2_1/Squeeze:0",
                     "digits_cnn_1/fc1_1/Cast/ReadVariableOp:0")
    w2, b2, fc = (numpy_helper.to_array(inits[n]).copy() for n in (w2n, b2n, fcn))
    w2[0] = 0
    b2[0] = -1000.0
    fc[0::w2.shape[0]] = 200 * np.abs(fc).max()  # NHWC flatten: feature k is channel k % 32
    for name, arr in zip((w2n, b2n, fcn), (w2, b2, fc)):
        inits[name].CopyFrom(numpy_helper.from_array(arr.astype(np.float32), name))
    path = tmp_path_factory.mktemp("culprit") / "digits_culprit.onnx"
    onnx.save(m, str(path))
    return path


def _ort_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    """The model's output on each sample with ONNX Runtime, graph optimizations off: the QDQ arithmetic as the model
    states it, the same on every CPU (fused integer kernels differ between VNNI and AVX2 machines)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return np.concatenate([s.run(None, {s.get_inputs()[0].name: xi})[0] for xi in x])


def test_debug_blames_the_layer_that_matters_and_keeping_it_in_float_restores_the_output(
        tmp_path: Path, real_inputs: Path, culprit_float: Path) -> None:
    """ORT static INT8 of a model whose fc1 alone is broken by INT8: debug blames fc1 (the MatMul, the weighted op)
    as the largest own error and the first diverging layer; every pair before it agrees; and, checked with ONNX
    Runtime directly, keeping that layer in float restores the output while keeping another one does not."""
    calib = str(SAMPLES / "digits_calib.npz")
    lossy = tmp_path / "int8.onnx"
    r = run_cli("optimize", str(culprit_float), "--method", "int8-static", "--calibration", calib, "--keep-lossy",
                "-o", str(lossy), timeout=600)
    assert r.returncode == 0, r.stderr
    r = run_cli("debug", str(lossy), "--parent", str(culprit_float), "--input", str(real_inputs), "--samples", "8",
                "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    big, first = d["biggest_contributor"], d["first_diverging"]
    assert big["blame_node"] == FC1 and big["blame_op"] == "MatMul", big
    assert d["blame"][0]["node"] == FC1 and big["contribution"] > 0.1
    assert first["blame_node"] == FC1  # and nothing before fc1 parts
    assert all(p["cosine"] > 0.99 for p in d["pairs"] if p["order"] < first["order"])
    assert {p["matched_by"] for p in d["pairs"]} <= {"name", "structure"}
    text = run_cli("debug", str(lossy), "--parent", str(culprit_float), "--input", str(real_inputs)).stdout
    assert "largest own error" in text and f"--ignore {FC1}" in text and "by graph structure" in text

    x = np.load(real_inputs)["image"]
    ref = _ort_outputs(culprit_float, x)

    def kept(name: str) -> np.ndarray:
        out = tmp_path / f"keep_{name.split('/')[1]}.onnx"
        r = run_cli("optimize", str(culprit_float), "--method", "int8-static", "--calibration", calib, "--ignore",
                    name, "--keep-lossy", "-o", str(out), timeout=600)
        assert r.returncode == 0, r.stderr
        return _ort_outputs(out, x)

    def cosine(a: np.ndarray) -> float:
        return float((a * ref).sum() / np.linalg.norm(a) / np.linalg.norm(ref))

    plain, fc1, conv2 = _ort_outputs(lossy, x), kept(FC1), kept("digits_cnn_1/conv2_1/BiasAdd")
    assert cosine(plain) < 0.9 and (plain.argmax(1) == ref.argmax(1)).mean() < 0.75
    assert cosine(fc1) > 0.99 and (fc1.argmax(1) == ref.argmax(1)).all()
    assert cosine(conv2) < 0.9  # another layer kept in float does not


def test_fused_activations_are_never_compared_across_the_activation(tmp_path: Path, real_inputs: Path) -> None:
    """ORT's QDQ quantizer removes a Relu after a Conv and gives the Conv's output the Relu's name; TFLite fuses the
    Relu into CONV_2D and names the output after both. No pair compares a tensor before an activation with one after
    it: the renamed pre-activation tensor is paired with the parent's Conv output (the Relu's input), the Relu's
    output stays unmatched; the fused TFLite output stands for the Relu, never for the Conv before it."""
    from edgestudio.backends.intermediates import ACTIVATIONS, canonical_op

    def post(op: str) -> bool:
        return "+" in op or canonical_op(op) in ACTIVATIONS

    int8 = tmp_path / "int8.onnx"
    r = run_cli("optimize", str(SAMPLES / "digits_cnn.onnx"), "--method", "int8-static", "--calibration",
                str(SAMPLES / "digits_calib.npz"), "--keep-lossy", "-o", str(int8), timeout=600)
    assert r.returncode == 0, r.stderr
    for parent, child in ((SAMPLES / "digits_cnn.onnx", int8), (SAMPLES / "digits_cnn.onnx",
                                                                SAMPLES / "digits_cnn.tflite")):
        r = run_cli("debug", str(child), "--parent", str(parent), "--input", str(real_inputs), "--json")
        assert r.returncode == 0, r.stderr
        d = json.loads(r.stdout)
        assert d["pairs"] and all(post(p["op"]) == post(p["child_op"]) for p in d["pairs"]), [
            (p["parent"], p["op"], p["child_op"]) for p in d["pairs"] if post(p["op"]) != post(p["child_op"])]
        if child == int8:  # the child's "conv1_1/Relu:0" is the Conv's output: paired with the parent's Conv output
            conv1 = [p for p in d["pairs"] if "conv1_1" in p["parent"] and p["op"] != "Reshape"]
            assert [(p["parent"], p["child"], p["op"], p["child_op"]) for p in conv1] == [
                ("digits_cnn_1/conv1_1/BiasAdd:0", "digits_cnn_1/conv1_1/Relu:0", "Conv", "Conv")]
            assert "digits_cnn_1/conv1_1/Relu:0" in d["unmatched_parent"]
        else:  # the fused CONV_2D+RELU stands for the Relu, never for the Conv before it
            conv1 = [p for p in d["pairs"] if "conv1_1" in p["parent"]]
            assert [p["op"] for p in conv1] == ["Relu"] and conv1[0]["child_op"] == "CONV_2D+RELU"


def test_openvino_internal_tensors_are_never_paired(tmp_path: Path, real_inputs: Path) -> None:
    """NNCF's INT8 IR carries FakeQuantize copies and weight decompression (Convert, Multiply of constants): none of
    them is exposed, paired or counted as a layer; what is paired is by name or proven structure."""
    ir = tmp_path / "digits_int8.xml"
    r = run_cli("optimize", str(SAMPLES / "digits_cnn.onnx"), "--method", "int8-static", "--runtime", "openvino",
                "--calibration", str(SAMPLES / "digits_calib.npz"), "--keep-lossy", "-o", str(ir), timeout=600)
    assert r.returncode == 0, r.stderr
    r = run_cli("debug", str(ir), "--parent", str(SAMPLES / "digits_cnn.onnx"), "--input", str(real_inputs), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["matched"] >= 5 and {p["matched_by"] for p in d["pairs"]} <= {"name", "structure"}
    assert not any("fq_" in n or "/fq_weights" in n for n in [p["child"] for p in d["pairs"]] + d["unmatched_child"])
    assert not any(p["child_op"] in ("FakeQuantize", "Convert") for p in d["pairs"])


@pytest.mark.slow  # --ignore, faster: test_verdicts.py (ORT), test_litert_quantizer.py, NNCF rescue
def test_ignore_names_and_types_on_every_backend_or_a_clear_refusal(tmp_path: Path) -> None:
    """--ignore on NNCF and on the TFLite debugger: type:Conv (another format's type) is read as the runtime's own
    types and those ops stay float; a name that matches nothing is refused, naming it (the TFLite debugger would
    have ignored it silently)."""
    calib = str(SAMPLES / "digits_calib.npz")
    ir = tmp_path / "conv_float.xml"
    r = run_cli("optimize", str(SAMPLES / "digits_cnn.onnx"), "--method", "int8-static", "--runtime", "openvino",
                "--calibration", calib, "--ignore", "type:Conv", "--keep-lossy", "-o", str(ir), timeout=600)
    assert r.returncode == 0, r.stderr
    import openvino as ov

    model = ov.Core().read_model(str(ir))
    feeds = {op.get_type_name(): [i.get_source_output().get_node().get_type_name() for i in op.inputs()]
             for op in model.get_ordered_ops() if op.get_type_name() in ("Convolution", "MatMul")}
    assert "FakeQuantize" not in feeds["Convolution"] and "Multiply" not in feeds["Convolution"]
    lite = tmp_path / "conv_float.tflite"
    r = run_cli("optimize", str(SAMPLES / "digits_cnn.keras"), "--method", "int8-static", "--runtime", "litert",
                "--calibration", calib, "--ignore", "type:Conv", "--keep-lossy", "-o", str(lite), timeout=600)
    assert r.returncode == 0, r.stderr
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(str(lite))
    names = {t["index"]: t for t in interp.get_tensor_details()}
    out = {op["op_name"]: names[op["outputs"][0]]["dtype"] for op in interp._get_ops_details()}  # noqa: SLF001
    assert out["CONV_2D"] == np.float32 and out["FULLY_CONNECTED"] == np.int8
    for args in (("digits_cnn.onnx", "openvino", "no/such/node"), ("digits_cnn.keras", "litert", "no/such/node"),
                 ("digits_cnn.keras", "litert", "type:NoSuchOp")):
        r = run_cli("optimize", str(SAMPLES / args[0]), "--method", "int8-static", "--runtime", args[1],
                    "--calibration", calib, "--ignore", args[2], "--keep-lossy", "-o",
                    str(tmp_path / f"x{len(args[2])}{SUFFIXES[args[1]]}"), timeout=600)
        assert r.returncode != 0 and f"--ignore {args[2]}" in r.stderr and "Traceback" not in r.stderr, r.stderr


SUFFIXES = {"openvino": ".xml", "litert": ".tflite"}


def test_rescue_always_says_why_it_stopped_and_keeps_its_best_attempt(tmp_path: Path, real_inputs: Path,
                                                                      culprit_float: Path) -> None:
    """A guard nothing passes (output cosine 1.0) with one attempt allowed: the search keeps the layer debug blames
    (fc1) in float, that attempt is the best (top-1 agreement with the float model; ONNX Runtime's optimized kernels
    leave one sample off here, so its worst-sample cosine is not the figure that ranks attempts without a dataset), it is written even though the guard fails, and stderr says why the
    search stopped and where the best attempt is (exit 1). With no time to spare, it stops after plain INT8 and
    says so: nothing improved, nothing written."""
    out = tmp_path / "best.onnx"
    common = ["--calibration", str(SAMPLES / "digits_calib.npz"), "--input", str(real_inputs), "--min-cosine", "1.0"]
    r = run_cli("rescue", str(culprit_float), *common, "--max-steps", "1", "-o", str(out), "--json", timeout=600)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    d = json.loads(r.stdout)
    assert d["steps"][1]["kept_in_float"] == [FC1] and d["best_step"] == 1 and not d["passed"]
    assert d["steps"][1]["top1_agreement"] > d["steps"][0]["top1_agreement"] + 0.5  # with the float model's top-1
    assert d["stopped"].startswith("attempt budget spent") and out.is_file() and d["output"] == str(out)
    assert "stopped: attempt budget spent" in r.stderr and str(out) in r.stderr and "best attempt" in r.stderr
    np.testing.assert_allclose(_ort_outputs(out, np.load(real_inputs)["image"]).sum(), 8.0, rtol=1e-3)  # it runs
    quick = run_cli("rescue", str(culprit_float), *common, "--budget", "0.01", "-o", str(tmp_path / "q.onnx"),
                    timeout=600)
    assert quick.returncode == 1 and "time budget spent" in quick.stderr and "nothing written" in quick.stderr
    assert not (tmp_path / "q.onnx").exists() and "stopped: time budget spent" in quick.stdout


def test_the_studio_names_the_blamed_layer_and_how_each_pair_was_matched(qtbot, window, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                          real_inputs: Path,
                                                                          culprit_float: Path) -> None:
    """The layer dialog on a lossy INT8 variant: the status names the blamed layer (its weighted op) and the counts
    of pairs by name / by structure and of what stayed unmatched; the table says how each pair was matched and
    each pair's own cosine drop."""
    import os

    from edgestudio.backends.optimizers.base import OptimizeOptions
    from edgestudio.optimization.engine import optimize_model
    from tests.conftest import ROOT

    lossy = tmp_path / "digits_culprit_int8.onnx"
    optimize_model(culprit_float, "int8-static", runtime="onnxruntime", output=lossy,
                   options=OptimizeOptions(calibration=str(SAMPLES / "digits_calib.npz"), keep_lossy=True))
    (root_id,) = window.import_paths([culprit_float])
    child = window.workspace.add_artifact(lossy, parent_id=root_id, job_id=None, options={"method": "int8-static"})
    window.refresh()
    dialog = window.layer_debug(child.id, inputs={"data": str(real_inputs)})
    qtbot.waitUntil(lambda: dialog.result is not None or "failed" in dialog.status.text(), timeout=120_000)
    assert dialog.result is not None, dialog.status.text()
    text = dialog.status.text()
    assert f"Blamed layer (largest own error): <b>{FC1}</b>" in text and "by graph structure" in text
    assert "unmatched:" in text and "name pairs refused" in text
    headers = [dialog.table.horizontalHeaderItem(i).text() for i in range(dialog.table.columnCount())]
    col = headers.index("matched by")
    assert {dialog.table.item(i, col).text() for i in range(dialog.table.rowCount())} <= {"name", "structure"}
    assert "own drop" in headers and "weighted op" in headers
    if os.environ.get("EDGESTUDIO_SHOTS"):
        dialog.resize(1280, 720)
        dialog.grab().save(str(ROOT / "docs" / "screenshots" / "layers-blame.png"))
    dialog.close()
