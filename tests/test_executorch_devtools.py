"""ExecuTorch's own profiler, ETDump, in the per-layer tools: ``profile`` of a .pte (an XNNPACK block and the
delegate's own ops inside it, a program's kernels one by one) and ``debug`` of an INT8 program against its FP32
one (the op where the quantized program leaves the float one; a delegated block is never said to agree inside).

The programs come from the digits CNN with a loss planted in its second convolution
(tests/helpers/executorch_programs.py), lowered in the ``executorch`` environment with and without XNNPACK; the
layer EdgeStudio names is checked against ExecuTorch's Inspector and PyTorch called directly."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, SAMPLES
from tests.test_torch import cli, digits_net, executorch_env, torch_env  # noqa: F401 - the environments' fixtures


@pytest.fixture(scope="module")
def programs(executorch_env: Path, digits_net: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    folder = tmp_path_factory.mktemp("executorch")
    r = subprocess.run([str(executorch_env), str(ROOT / "tests" / "helpers" / "executorch_programs.py"),
                        str(digits_net / "digits_net.pt2"), str(SAMPLES / "digits_calib.npz"), str(folder)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    x = np.load(SAMPLES / "digits_test.npz")["x"][:8].transpose(0, 3, 1, 2)
    np.savez(folder / "digits8.npz", input_0=np.array(x, dtype=np.float32, order="C"))  # 8 samples of batch 1
    return folder


def test_profile_names_the_xnnpack_block_and_the_ops_inside_it(programs: Path) -> None:
    r = cli("profile", str(programs / "fp32_xnnpack.pte"), "--runs", "10", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    rows = {row["node"]: row for row in d["layers"]}
    inner = sorted(n for n in rows if n.startswith("#0 XnnpackBackend/"))
    block = rows["#0 XnnpackBackend"]  # the whole model is one delegated block: named as such, with what it holds
    assert d["runtime"] == "executorch" and set(rows) == {"#0 XnnpackBackend", *inner}
    assert block["op"] == "XnnpackBackend call, outside its ops"
    assert block["kernel"] == f"delegate ({len(inner)} ops inside)"
    assert sum("Convolution (NHWC, F32)" in n for n in inner) == 2 and any("Fully Connected" in n for n in inner)
    assert all(rows[n]["kernel"] == "XnnpackBackend" for n in inner) and d["wall_ms"] > 0
    assert list(d["graph"]["nodes"]) == ["#0 XnnpackBackend"] and not d["graph"]["not_on_graph"]  # Netron's node 0
    # without a delegate: one row per op, on ExecuTorch's kernels
    r = cli("profile", str(programs / "int8.pte"), "--runs", "10", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    ops = [row["op"] for row in sorted(d["layers"], key=lambda row: int(row["node"][1:].split()[0]))]
    assert ops.count("convolution") == 2 and "addmm" in ops and "quantize_per_tensor" in ops
    assert {row["kernel"] for row in d["layers"]} == {"ExecuTorch kernels"} and len(d["graph"]["nodes"]) == len(ops)


# ExecuTorch's Inspector on the INT8 program (each convolution's output, in the program's order) against PyTorch's
# float model (forward hooks on c1 and c2), on the same 8 samples: argv model.pt2 int8.pte digits8.npz helpers/
_INDEPENDENT = """
import json, os, shutil, sys, tempfile, warnings
import numpy as np, torch
warnings.simplefilter("ignore")
sys.path.insert(0, sys.argv[4])
from torch_digits import DigitsNet
import executorch.kernels.quantized
from executorch.devtools import Inspector
from executorch.runtime import Runtime
model = DigitsNet()
model.load_state_dict(torch.export.load(sys.argv[1]).module().state_dict())
model.eval()
float_out = {"c1": [], "c2": []}
for name, out in float_out.items():
    getattr(model, name).register_forward_hook(lambda m, i, o, out=out: out.append(o.detach().numpy().ravel()))
x, tmp, int8_out = np.load(sys.argv[3])["input_0"], tempfile.mkdtemp(), []
for k in range(len(x)):
    xk = torch.from_numpy(np.array(x[k:k + 1], order="C"))
    with torch.no_grad():
        model(xk)
    program = Runtime.get().load_program(sys.argv[2], enable_etdump=True, debug_buffer_size=1 << 24)
    program.load_method("forward").execute([xk])
    program.write_etdump_result_to_file(os.path.join(tmp, "e.etdp"), os.path.join(tmp, "d.bin"))
    inspector = Inspector(etdump_path=os.path.join(tmp, "e.etdp"), debug_buffer_path=os.path.join(tmp, "d.bin"))
    int8_out.append([e.debug_data[0].numpy().ravel() for b in inspector.event_blocks for e in b.events
                     if e.name == "native_call_convolution.out"])
def cos(a, b):
    a, b = np.concatenate(a).astype(np.float64), np.concatenate(b).astype(np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
print(json.dumps({name: cos(float_out[name], [c[i] for c in int8_out]) for i, name in enumerate(float_out)}))
shutil.rmtree(tmp)
"""


def test_debug_names_the_op_where_int8_leaves_fp32_as_executorch_and_pytorch_say(
        programs: Path, executorch_env: Path) -> None:  # noqa: F811
    data = programs / "digits8.npz"
    r = cli("debug", str(programs / "int8.pte"), "--parent", str(programs / "fp32.pte"), "--input", str(data),
            "--samples", "8", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["verdict"] == "diverges" and d["samples"] == 8 and d["opaque"] == []
    assert d["matched"] == d["matched_by_structure"] >= 6 and d["unmatched"] == {"parent": 0, "child": 0, "refused": 0}
    first = d["first_diverging"]  # the program's 3rd op: the second convolution, c2
    assert first["node"] == "#2 convolution" and first["blame_node"] == "#2 convolution"
    assert d["biggest_contributor"]["node"] == "#2 convolution" and d["blame"][0]["node"] == "#2 convolution"
    before = [p for p in d["pairs"] if p["order"] < first["order"]]
    assert [p["op"] for p in before] == ["convolution", "relu"] and all(p["cosine"] > 0.9999 for p in before)
    heat = d["graph"]["nodes"]  # painted on the parent's graph: Netron's unnamed node 2
    assert heat["#2 convolution"]["heat"] >= 0.5 and "first diverging" in heat["#2 convolution"]["label"]
    assert d["outputs"]["verdict"] == "failed"
    # independently: ExecuTorch's Inspector and PyTorch, called directly, see c1 agree and c2 part, as much
    r = subprocess.run([str(executorch_env), "-c", _INDEPENDENT, str(programs / "broken.pt2"),
                        str(programs / "int8.pte"), str(data), str(ROOT / "tests" / "helpers")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    check = json.loads(r.stdout.strip().splitlines()[-1])
    assert check["c1"] > 0.9999 and check["c2"] < 0.9, check
    assert abs(check["c2"] - first["cosine"]) < 0.01, (check, first["cosine"])


def test_an_xnnpack_block_is_compared_only_at_its_edges_and_never_said_to_agree(programs: Path) -> None:
    data = programs / "digits8.npz"
    r = cli("debug", str(programs / "int8_xnnpack.pte"), "--parent", str(programs / "fp32_xnnpack.pte"), "--input",
            str(data), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["verdict"] == "diverges" and d["first_diverging"]["node"] == "#0 XnnpackBackend"
    assert [o["node"] for o in d["opaque"]] == ["#0 XnnpackBackend", "#0 XnnpackBackend"]
    assert "ETDump records only the block's inputs and outputs" in d["note"]
    assert "Convolution (NHWC, QC8) IGEMM x2" in d["note"]  # what the INT8 block holds, from XNNPACK's profiler
    # the same block on both sides agrees at its output: the layers inside are not known to, so no "agrees"
    r = cli("debug", str(programs / "fp32_xnnpack.pte"), "--parent", str(programs / "fp32_xnnpack.pte"), "--input",
            str(data), "--json")
    d = json.loads(r.stdout)
    assert d["pairs"] and all(p["cosine"] == 1.0 for p in d["pairs"]) and d["verdict"] == "inconclusive", d["verdict"]
    assert "not compared layer by layer inside" in d["note"]
