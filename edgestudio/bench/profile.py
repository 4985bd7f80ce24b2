"""Per-layer time: where a model's inference time goes, from the runtime's own profiler.

ONNX Runtime: its profiling JSON (a ``*_kernel_time`` event per node and run); OpenVINO: the performance
counters of an infer request (node, type, the kernel that ran it, real time). LiteRT's Python interpreter has no
op profiler: it says so rather than guess. Times are the median over the profiled runs, after warm-up.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from edgestudio.core.errors import EdgeStudioError
from edgestudio.core.formats import ModelFormat, detect_format


def _table(per_node: dict[str, list[float]], types: dict[str, str], kernels: dict[str, str], runs: int,
           runtime: str) -> dict[str, Any]:
    layers = [{"node": n, "op": types.get(n, "?"), "kernel": kernels.get(n), "ms": statistics.median(v)}
              for n, v in per_node.items() if v]
    total = sum(r["ms"] for r in layers) or 1.0
    for r in layers:
        r["share"] = r["ms"] / total
    by_op: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for r in layers:
        by_op[r["op"]] += r["ms"]
        counts[r["op"]] += 1
    ops = sorted(({"op": k, "ms": v, "count": counts[k], "share": v / total} for k, v in by_op.items()),
                 key=lambda r: -r["ms"])
    return {"runtime": runtime, "runs": runs, "layers": sorted(layers, key=lambda r: -r["ms"]), "by_op": ops,
            "total_layer_ms": total}


def _profile_onnx(path: Path, feeds: dict[str, Any], runs: int, threads: int | None) -> dict[str, Any]:
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="edgestudio-profile-") as tmp:
        opts = ort.SessionOptions()
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "ort")
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        for _ in range(5):
            sess.run(None, feeds)
        for _ in range(runs):
            sess.run(None, feeds)
        events = json.loads(Path(sess.end_profiling()).read_text())
    per_node: dict[str, list[float]] = defaultdict(list)
    types: dict[str, str] = {}
    kernels: dict[str, str] = {}
    for e in events:
        if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time"):
            node = e["name"][: -len("_kernel_time")]
            per_node[node].append(float(e.get("dur", 0)) / 1000.0)
            types[node] = (e.get("args") or {}).get("op_name", "?")
            kernels[node] = (e.get("args") or {}).get("provider")
    # the first 5 runs are warm-up: keep the last ``runs`` samples of each node
    per_node = {k: v[-runs:] for k, v in per_node.items()}
    return _table(per_node, types, kernels, runs, "onnxruntime")


def _profile_openvino(path: Path, feeds: dict[str, Any], runs: int, threads: int | None) -> dict[str, Any]:
    import openvino as ov

    core = ov.Core()
    config: dict[str, Any] = {"PERF_COUNT": True}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
    req = compiled.create_infer_request()
    for _ in range(5):
        req.infer(feeds)
    per_node: dict[str, list[float]] = defaultdict(list)
    types: dict[str, str] = {}
    kernels: dict[str, str] = {}
    for _ in range(runs):
        req.infer(feeds)
        for info in req.get_profiling_info():
            if str(info.status).endswith("EXECUTED"):
                per_node[info.node_name].append(info.real_time.total_seconds() * 1000.0)
                types[info.node_name] = info.node_type
                kernels[info.node_name] = info.exec_type
    return _table(per_node, types, kernels, runs, "openvino")


def profile_model(path: str | Path, *, runtime: str | None = None, runs: int = 50, threads: int | None = None,
                  inputs: Any = None) -> dict[str, Any]:
    """Time per layer and per op type on ``runtime`` (default: the format's own)."""
    from edgestudio.backends.runtimes import get_runtime
    from edgestudio.core.inputspec import InputSpec, make_feeds

    path = Path(path)
    fmt = detect_format(path)
    runtime = runtime or {ModelFormat.ONNX: "onnxruntime", ModelFormat.ORT: "onnxruntime",
                          ModelFormat.OPENVINO: "openvino", ModelFormat.TFLITE: "litert"}.get(fmt)
    if runtime == "litert":
        raise EdgeStudioError(path, "LiteRT's Python interpreter exposes no per-op profiler; profile the TFLite "
                                    "model with --runtime openvino (which reads TFLite), or LiteRT's native "
                                    "benchmark_model tool on the device")
    if runtime not in ("onnxruntime", "openvino"):
        raise EdgeStudioError(path, f"per-layer profiling runs on onnxruntime and openvino, not {runtime}")
    spec = InputSpec.from_dict(inputs) if isinstance(inputs, dict) else (inputs or InputSpec())
    session = get_runtime(runtime).load(path)
    feeds = make_feeds(session.inputs, spec, count=1, model=path).samples[0]
    fn = _profile_onnx if runtime == "onnxruntime" else _profile_openvino
    if runtime == "onnxruntime" and fmt not in (ModelFormat.ONNX, ModelFormat.ORT):
        raise EdgeStudioError(path, f"onnxruntime does not run {fmt.label} models")
    result = fn(path, feeds, runs, threads)
    result.update(model=str(path), threads=threads)
    return result
