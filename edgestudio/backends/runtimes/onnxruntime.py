"""ONNX Runtime: .onnx and .ort models on every available execution provider."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgestudio.backends.runtimes.base import (
    RUNTIMES,
    DeviceInfo,
    OpTimes,
    Runtime,
    Session,
    blamed_op,
    output_dict,
    threaded_calls,
)
from edgestudio.backends.intermediates import INTERNAL_OPS, WEIGHTED_OPS, Tensor, float_tensors
from edgestudio.core.errors import EdgeStudioError, ModelFormatError
from edgestudio.core.formats import ModelFormat
from edgestudio.core.inspection import ort_spec

_NOT_DEVICES = {"AzureExecutionProvider"}  # a remote-call provider, not a place to run a model


def provider_for(device: str) -> str:
    return device if device.endswith("ExecutionProvider") else f"{device}ExecutionProvider"


def session_options(threads: int | None) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    # Spinning worker threads ran 2x slower while another process used a core (FACTS.md).
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


class OrtSession(Session):
    def __init__(self, sess: Any, device: str) -> None:
        self._sess = sess
        self.runtime = "onnxruntime"
        self.device = device
        self.inputs = [ort_spec(i) for i in sess.get_inputs()]
        self.outputs = [ort_spec(o) for o in sess.get_outputs()]
        self.precision = None

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return output_dict(self.outputs, self._sess.run(None, feeds))

    def bind(self, feeds: dict[str, np.ndarray]) -> Callable[[], Any]:
        run = self._sess.run
        return lambda: run(None, feeds)


def _onnx_tensors(path: Path, feeds: list[dict[str, np.ndarray]]) -> list[Tensor]:
    import tempfile

    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path), format="protobuf")
    graph = model.graph
    existing = {o.name for o in graph.output}
    const = {i.name for i in graph.initializer}
    graph_inputs = [i.name for i in graph.input if i.name not in const]
    producer = {out: node for node in graph.node for out in node.output}

    def source(name: str) -> str:
        for _ in range(64):  # through Q/DQ copies to the tensor that was quantized
            node = producer.get(name)
            if node is None or node.op_type not in INTERNAL_OPS or not node.input:
                break
            name = node.input[0]
        return name

    order: list[Tensor] = [Tensor(f"input:{n}", "Input", n, -1) for n in graph_inputs]
    for i, node in enumerate(graph.node):
        srcs = [source(x) for x in node.input if x]
        if not srcs or all(s in const for s in srcs):  # Constant, or computed from constants only
            const.update(o for o in node.output if o)
            continue
        if node.op_type in INTERNAL_OPS:  # a quantized copy of a tensor (and its float twin), not a layer's output
            continue
        ins = tuple(dict.fromkeys(f"input:{s}" if s in graph_inputs else s for s in srcs if s not in const))
        weighted = node.op_type in WEIGHTED_OPS and any(s in const for s in srcs[1:])
        for out in node.output:
            if out:
                order.append(Tensor(out, node.op_type, node.name or out, i, ins, weighted))
                if out not in existing:
                    model.graph.output.append(onnx.ValueInfoProto(name=out))
    layers = [t for t in order if t.op != "Input"]
    with tempfile.TemporaryDirectory(prefix="edgestudio-layers-") as tmp:
        exposed = Path(tmp) / "exposed.onnx"
        onnx.save(model, str(exposed), format="protobuf")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.log_severity_level = 3
        sess = ort.InferenceSession(str(exposed), opts, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        for sample in feeds:
            got = dict(zip(names, sess.run(names, sample)))
            for t in layers:
                t.values.append(np.asarray(got[t.name]))
    return [t for t in order if t.op == "Input"] + float_tensors(layers)


def weighted_node(model_path: Path, node_name: str) -> str | None:
    """The node a quantizer actually quantizes behind ``node_name``: itself if it has weights, else the nearest
    weighted op (Conv, MatMul, Gemm...) upstream (a diverging Relu or Reshape only carries its producer's error)."""
    import onnx

    graph = onnx.load(str(model_path), format="protobuf", load_external_data=False).graph
    by_name = {n.name: n for n in graph.node}
    producer = {out: n for n in graph.node for out in n.output}
    seen: set[str] = set()
    queue = [by_name.get(node_name)]
    while queue:
        node = queue.pop(0)
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type in WEIGHTED_OPS:
            return node.name
        queue.extend(producer.get(i) for i in node.input)
    return None


@RUNTIMES.register
class OnnxRuntime(Runtime):
    name = "onnxruntime"
    label = "ONNX Runtime"
    formats = frozenset({ModelFormat.ONNX, ModelFormat.ORT})
    exposes = frozenset({ModelFormat.ONNX})  # its intermediate tensors
    package_loader = '''
def load(model, precision=None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(model, sess_options=so, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    return names, lambda feeds: sess.run(None, feeds)[0]
'''
    requires = ("onnxruntime",)

    def devices(self) -> list[DeviceInfo]:
        import onnxruntime as ort

        return [DeviceInfo(self.name, p.removesuffix("ExecutionProvider"), f"{p} (onnxruntime {ort.__version__})")
                for p in ort.get_available_providers() if p not in _NOT_DEVICES]

    def load(self, path: str | Path, *, device: str = "CPU", threads: int | None = None,
             precision: str | None = None) -> Session:
        import onnxruntime as ort

        device = self.check_device(device)
        from edgestudio.core.formats import detect_format

        if detect_format(path) is ModelFormat.ONNX:  # no cycle, nothing over the memory budget
            from edgestudio.core.inspection import check_onnx_file

            check_onnx_file(path)
        providers = [provider_for(device)]
        if providers[0] != "CPUExecutionProvider":
            providers.append("CPUExecutionProvider")
        try:
            from edgestudio.core.formats import native_path, onnxruntime_session_options_for

            so = onnxruntime_session_options_for(path, session_options(threads))
            sess = ort.InferenceSession(native_path(path), sess_options=so, providers=providers)
        except Exception as exc:
            raise ModelFormatError(path, f"onnxruntime cannot load it: {' '.join(str(exc).split())[:300]}") from None
        return OrtSession(sess, device)

    def profile_ops(self, path: Path, feeds: dict[str, np.ndarray], *, runs: int,
                    threads: int | None) -> OpTimes:
        """Its profiling JSON: a ``*_kernel_time`` event per node and run (the first 5 runs are warm-up)."""
        import json
        import tempfile
        import time
        from collections import defaultdict

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
            walls = []
            for _ in range(runs):
                t0 = time.perf_counter()
                sess.run(None, feeds)
                walls.append((time.perf_counter() - t0) * 1000.0)
            events = json.loads(Path(sess.end_profiling()).read_text())
        per_node: dict[str, list[float]] = defaultdict(list)
        types: dict[str, str] = {}
        kernels: dict[str, str | None] = {}
        for e in events:
            if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time"):
                node = e["name"][: -len("_kernel_time")]
                per_node[node].append(float(e.get("dur", 0)) / 1000.0)
                types[node] = (e.get("args") or {}).get("op_name", "?")
                kernels[node] = (e.get("args") or {}).get("provider")
        return OpTimes({k: v[-runs:] for k, v in per_node.items()}, types, kernels, walls)

    def intermediate_tensors(self, path: Path, feeds: list[dict[str, np.ndarray]]) -> list[Tensor]:
        """Every node output added as a graph output, run with graph optimizations off (nothing is fused away)."""
        return _onnx_tensors(path, feeds)

    def rescue_reference(self, parent: Path, work: Path) -> tuple[Path, Path]:
        """The float ONNX model itself: its static quantizer starts from it and each attempt is compared with it."""
        from edgestudio.core.formats import detect_format

        if detect_format(parent) is not ModelFormat.ONNX:
            raise EdgeStudioError(parent, "the ONNX Runtime rescue starts from the float ONNX model")
        return parent, parent

    def rescue_scope(self, reference: Path, child: Path, item: dict[str, Any],
                     pairs: list[dict[str, Any]]) -> list[str]:
        """ONNX node names (``nodes_to_exclude``): the blamed node, else the weighted node behind the pair's."""
        node, _, upstream = blamed_op(item)
        return [n for n in dict.fromkeys((node or weighted_node(reference, item["node"]), upstream)) if n]

    def throughput_run(self, path: Path, feeds: dict[str, np.ndarray], *, batch: int, streams: int,
                       cores: int, duration_s: float, cancel: Any) -> tuple[list[float], float, int]:
        """One session run from N threads at once (it releases the GIL), intra-op threads split evenly."""
        import time

        per = max(1, cores // streams)
        call = self.load(path, threads=per).bind(feeds)
        for _ in range(5):
            call()
        t0 = time.perf_counter()
        lat = threaded_calls([call] * streams, duration_s, cancel)
        return lat, time.perf_counter() - t0, per
