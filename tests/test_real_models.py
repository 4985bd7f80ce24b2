"""Fast representatives of the real-model corpus (tests/helpers/real_models.py, fetched by `make test`'s setup;
benchmarks/bench_real.py runs every path on all of it): each verdict is checked independently, with the runtime
called directly, never through EdgeStudio."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.helpers import real_models as rm

needs_corpus = pytest.mark.skipif(not (rm.available() and rm.corpus_available()),
                                  reason="real models not fetched: make real-models")


@needs_corpus
def test_a_real_detector_whose_int8_scores_died_is_refused(tmp_path: Path) -> None:
    """NudeNet's YOLOv8 head packs boxes (0-320 px) and 18 class scores in one [1, 22, 2100] output: ONNX Runtime's
    static INT8 gives it one scale and the scores die, while the whole tensor's cosine stays near 1."""
    import onnxruntime as ort

    data = tmp_path / "images.npz"
    np.savez(data, **rm.corpus_inputs("nudenet_320n"))
    out = tmp_path / "det_int8.onnx"
    r = run_cli("optimize", str(rm.model("nudenet_320n.onnx")), "--method", "int8-static", "--runtime", "onnxruntime",
                "--calibration", str(data), "--input", str(data), "-o", str(out), "--keep-lossy", "--json",
                timeout=600)
    assert r.returncode == 0, r.stderr
    drift = json.loads(r.stdout)["details"]["drift"]
    (o,) = drift["outputs"]
    assert drift["verdict"] == "failed" and "collapsed" in o["reason"], o
    # independently: ONNX Runtime on the same photos
    x = np.load(data)["images"]
    ref = np.stack([ort.InferenceSession(str(rm.model("nudenet_320n.onnx"))).run(None, {"images": s})[0] for s in x])
    got = np.stack([ort.InferenceSession(str(out)).run(None, {"images": s})[0] for s in x])
    whole = float(np.dot(ref.ravel(), got.ravel()) / np.linalg.norm(ref) / np.linalg.norm(got))
    scores_ref, scores_got = ref[:, 0, 4:, :], got[:, 0, 4:, :]
    assert whole > 0.99  # what a whole-tensor cosine would have passed
    assert float(np.ptp(scores_ref)) > 0.01  # the reference's scores vary over the anchors ...
    assert float(np.ptp(scores_got, axis=-1).max()) < 0.05 * float(np.ptp(scores_ref))  # ... the INT8 ones do not


@needs_corpus
def test_the_seed_path_on_a_real_classifier(tmp_path: Path) -> None:
    """PP-OCR's direction classifier (Paddle export, dynamic dims, HardSigmoid, Softmax@0 node names): ONNX ->
    full-INT8 TFLite on text images, judged as logits; ONNX -> TF.js, run in Python and in the browser; the INT8
    model's TFLite Micro refusal names the op TFLM lacks."""
    from ai_edge_litert.interpreter import Interpreter

    lines = rm.ppocr_line_input(n=12)
    data = tmp_path / "lines.npz"
    np.savez(data, x=lines)
    src = rm.model("ppocr_cls.onnx")
    out = tmp_path / "cls_int8.tflite"
    r = run_cli("optimize", str(src), "--method", "int8-static", "--runtime", "litert", "--calibration", str(data),
                "-o", str(out), "--output-kind", "save_infer_model/scale_0.tmp_1=logits", "--json", timeout=900)
    assert r.returncode == 0, r.stderr
    (o,) = json.loads(r.stdout)["details"]["drift"]["outputs"]
    assert o["kind"] == "logits" and o["task"][0]["metric"] == "top-1 agreement" and o["task"][0]["ok"]
    it = Interpreter(model_path=str(out))  # independently: the weights really are INT8 and it runs
    kinds = {str(np.dtype(d["dtype"])) for d in it.get_tensor_details()}
    assert "int8" in kinds
    it.allocate_tensors()
    (inp,) = it.get_input_details()
    it.set_tensor(inp["index"], lines[0].transpose(0, 2, 3, 1).astype(np.float32))  # (n, 1, 3, H, W) samples
    it.invoke()
    assert it.get_tensor(it.get_output_details()[0]["index"]).shape == (1, 2)
    r = run_cli("package", str(out), "--tflm", "-o", str(tmp_path / "pkg"))
    assert r.returncode == 1 and "RELU_0_TO_1" in r.stderr and "Traceback" not in r.stderr  # named, not allocated
    r = run_cli("convert", str(src), "--to", "tfjs", "-o", str(tmp_path / "cls_tfjs"), "--input", str(data), "--json",
                timeout=900)
    assert r.returncode == 0, r.stderr
    steps = json.loads(r.stdout)["steps"]
    assert [s["parity"]["verdict"] for s in steps] == ["passed", "passed"]
    assert (steps[-1]["parity"].get("also") or {}).get("tfjs", {}).get("verdict") in ("passed", None)
