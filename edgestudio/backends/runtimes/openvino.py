"""OpenVINO: IR, ONNX and TFLite models on every device ``Core().available_devices`` reports."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgestudio.backends.runtimes.base import RUNTIMES, DeviceInfo, OpTimes, Runtime, Session, blamed_op
from edgestudio.backends.intermediates import INTERNAL_OPS, WEIGHTED_OPS, Tensor, float_tensors
from edgestudio.core.errors import EdgeStudioError, ModelFormatError
from edgestudio.core.formats import ModelFormat

_core: Any = None


def ov_core() -> Any:
    """One Core per process: creating it loads the device plugins."""
    global _core
    if _core is None:
        import openvino as ov

        _core = ov.Core()
    return _core


class OvSession(Session):
    def __init__(self, compiled: Any, device: str, quantized: dict[str, dict[str, Any]] | None = None) -> None:
        """``quantized``: a full-integer TFLite model's integer inputs and outputs by name (their TFLite details:
        dtype and quantization). OpenVINO takes and gives them as raw integers; like LiteRT's session, this one
        offers them as float32, quantizing feeds and dequantizing outputs with the tensors' own parameters, so a
        float feed is never cast to int8 (it read top-1 0.10 where LiteRT read 0.978)."""
        from dataclasses import replace

        from edgestudio.core.inspection import ov_port_spec

        self._compiled = compiled
        self._request = compiled.create_infer_request()
        self.runtime = "openvino"
        self.device = device
        self._quantized = quantized or {}
        self.inputs = [ov_port_spec(p, i) for i, p in enumerate(compiled.inputs)]
        self.outputs = [ov_port_spec(p, i) for i, p in enumerate(compiled.outputs)]
        self.inputs = [replace(s, dtype="float32") if s.name in self._quantized else s for s in self.inputs]
        self.outputs = [replace(s, dtype="float32") if s.name in self._quantized else s for s in self.outputs]
        try:
            hint = compiled.get_property("INFERENCE_PRECISION_HINT")
            self.precision = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
        except Exception:
            self.precision = None

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        scalars = {s.name for s in self.inputs if s.shape == []}
        if scalars:  # a one-element array for a 0-d input (np.ascontiguousarray makes 0-d arrays 1-d) is that scalar
            feeds = {k: (np.asarray(v).reshape(()) if k in scalars and np.size(v) == 1 else v)
                     for k, v in feeds.items()}
        result = self._request.infer(self._quantize(feeds))
        return {spec.name: self._dequantize(spec.name, np.array(result[port]))
                for spec, port in zip(self.outputs, self._compiled.outputs)}

    def _quantize(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self._quantized:
            return feeds
        from edgestudio.backends.runtimes.litert import quantize

        return {k: quantize(v, self._quantized[k]) if k in self._quantized else v for k, v in feeds.items()}

    def _dequantize(self, name: str, y: np.ndarray) -> np.ndarray:
        if name not in self._quantized:
            return y
        from edgestudio.backends.runtimes.litert import dequantize

        return dequantize(y, self._quantized[name])

    def bind(self, feeds: dict[str, np.ndarray]) -> Callable[[], Any]:
        import openvino as ov

        for name, arr in self._quantize(feeds).items():
            self._request.set_tensor(name, ov.Tensor(np.require(arr, requirements="C")))  # a 0-d input stays 0-d
        return self._request.infer


def _tflite_integer_io(path: str | Path) -> dict[str, dict[str, Any]]:
    """The quantized integer inputs and outputs of a TFLite model, by name, with their TFLite details."""
    from edgestudio.backends.runtimes.litert import _scale
    from edgestudio.core.inspection import tflite_interpreter

    interp = tflite_interpreter(path)
    return {d["name"]: d for d in (*interp.get_input_details(), *interp.get_output_details()) if _scale(d)}


def _openvino_tensors(path: Path, feeds: list[dict[str, np.ndarray]]) -> list[Tensor]:
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    order: list[Tensor] = []
    ports = []
    name_of: dict[tuple[int, int], str] = {}  # (op instance, port) -> tensor name
    const: set[tuple[int, int]] = set()

    def key(out: Any) -> tuple[int, int]:
        return out.get_node().get_instance_id(), out.get_index()

    def source(out: Any) -> Any:
        for _ in range(64):  # through FakeQuantize / Convert to the tensor they copy
            node = out.get_node()
            if node.get_type_name() not in INTERNAL_OPS or node.get_input_size() == 0:
                break
            out = node.input(0).get_source_output()
        return out

    for i, op in enumerate(model.get_ordered_ops()):
        kind = op.get_type_name()
        if kind == "Parameter":
            name = op.output(0).get_any_name() if op.output(0).get_names() else op.get_friendly_name()
            order.append(Tensor(f"input:{name}", "Input", op.get_friendly_name(), -1))
            name_of[key(op.output(0))] = f"input:{name}"
            continue
        if kind == "Result" or op.get_output_size() == 0:
            continue
        srcs = [source(x.get_source_output()) for x in op.inputs()]
        if kind == "Constant" or not srcs or all(key(s) in const for s in srcs):  # weights and what decompresses them
            const.update(key(op.output(p)) for p in range(op.get_output_size()))
            continue
        if kind in INTERNAL_OPS:
            continue
        ins = tuple(dict.fromkeys(name_of[key(s)] for s in srcs if key(s) not in const and key(s) in name_of))
        weighted = kind in WEIGHTED_OPS and any(key(s) in const for s in srcs[1:])
        for p in range(op.get_output_size()):
            out = op.output(p)
            names = sorted(out.get_names())
            if not names:  # give it a name: results are read back by name
                names = [f"{op.get_friendly_name()}:{p}"]
                out.get_tensor().set_names(set(names))
            name_of[key(out)] = names[0]
            order.append(Tensor(names[0], kind, op.get_friendly_name(), i, ins, weighted))
            ports.append(out)
    model.add_outputs(ports)
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    by_name = {t.name: t for t in order}
    for sample in feeds:
        res = compiled(sample)
        for port in compiled.outputs:
            for name in port.get_names():
                if name in by_name:
                    by_name[name].values.append(np.asarray(res[port]))
                    break
    return [t for t in order if t.op == "Input"] + float_tensors([t for t in order if t.op != "Input"])


def weighted_op(model_path: Path, op_name: str) -> str | None:
    """The OpenVINO op NNCF quantizes behind ``op_name``: itself if it has weights, else the nearest weighted op
    upstream (a diverging Add or Relu carries its Convolution's error)."""
    model = ov_core().read_model(str(model_path))
    by_name = {op.get_friendly_name(): op for op in model.get_ops()}
    seen: set[str] = set()
    queue = [by_name.get(op_name)]
    while queue:
        op = queue.pop(0)
        if op is None or op.get_friendly_name() in seen:
            continue
        seen.add(op.get_friendly_name())
        if op.get_type_name() in WEIGHTED_OPS:
            return op.get_friendly_name()
        queue.extend(i.get_source_output().get_node() for i in op.inputs()
                     if i.get_source_output().get_node().get_type_name() not in ("Constant", "Parameter"))
    return None


@RUNTIMES.register
class OpenVinoRuntime(Runtime):
    name = "openvino"
    label = "OpenVINO"
    formats = frozenset({ModelFormat.OPENVINO, ModelFormat.ONNX, ModelFormat.TFLITE})
    exposes = frozenset({ModelFormat.OPENVINO})  # its intermediate tensors
    package_loader = '''
def load(model, precision=None):
    import openvino as ov

    config = {"PERFORMANCE_HINT": "LATENCY"}
    if precision:
        config["INFERENCE_PRECISION_HINT"] = precision
    compiled = ov.Core().compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    names = [p.get_any_name() for p in compiled.inputs]
    return names, lambda feeds: request.infer(feeds)[compiled.outputs[0]].copy()
'''
    requires = ("openvino",)

    def devices(self) -> list[DeviceInfo]:
        core = ov_core()
        out = []
        for dev in core.available_devices:
            try:
                desc = str(core.get_property(dev, "FULL_DEVICE_NAME"))
            except Exception:
                desc = dev
            out.append(DeviceInfo(self.name, dev, desc))
        return out

    def load(self, path: str | Path, *, device: str = "CPU", threads: int | None = None,
             precision: str | None = None) -> Session:
        device = self.check_device(device)
        from edgestudio.core.formats import detect_format

        if detect_format(path) is ModelFormat.ONNX:  # no cycle, nothing over the memory budget
            from edgestudio.core.inspection import check_onnx_file

            check_onnx_file(path)
        core = ov_core()
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if precision:
            # On AMX CPUs the default is bf16: "f32" is what accuracy checks want.
            config["INFERENCE_PRECISION_HINT"] = precision
        try:
            from edgestudio.core.formats import native_path

            model = core.read_model(native_path(path))
            compiled = core.compile_model(model, device, config)
        except Exception as exc:
            raise ModelFormatError(path, f"openvino cannot compile it on {device}: {' '.join(str(exc).split())[:300]}") from None
        return OvSession(compiled, device, _tflite_integer_io(path) if detect_format(path) is ModelFormat.TFLITE
                         else None)

    def default_precision(self, isa: set[str]) -> str | None:
        """The CPU plugin computes in bf16 by default only where the CPU does natively (AMX, AVX-512 BF16)."""
        return "bf16" if isa & {"amx_tile", "amx_bf16", "avx512_bf16"} else "f32"

    def profile_ops(self, path: Path, feeds: dict[str, np.ndarray], *, runs: int,
                    threads: int | None) -> OpTimes:
        """The performance counters of an infer request: node, type, the kernel that ran it, real time."""
        import time
        from collections import defaultdict

        core = ov_core()
        config: dict[str, Any] = {"PERF_COUNT": True}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        req = compiled.create_infer_request()
        for _ in range(5):
            req.infer(feeds)
        per_node: dict[str, list[float]] = defaultdict(list)
        types: dict[str, str] = {}
        kernels: dict[str, str | None] = {}
        walls = []
        for _ in range(runs):
            t0 = time.perf_counter()
            req.infer(feeds)
            walls.append((time.perf_counter() - t0) * 1000.0)
            for info in req.get_profiling_info():
                if str(info.status).endswith("EXECUTED"):
                    per_node[info.node_name].append(info.real_time.total_seconds() * 1000.0)
                    types[info.node_name] = info.node_type
                    kernels[info.node_name] = info.exec_type
        return OpTimes(dict(per_node), types, kernels, walls)

    def intermediate_tensors(self, path: Path, feeds: list[dict[str, np.ndarray]]) -> list[Tensor]:
        """An output added on every op's port, compiled in f32."""
        return _openvino_tensors(path, feeds)

    def rescue_reference(self, parent: Path, work: Path) -> tuple[Path, Path]:
        """The float IR NNCF quantizes and each attempt is compared with: the parent, or an ONNX parent read into
        one (full precision: no FP16 weights)."""
        from edgestudio.core.formats import detect_format

        fmt = detect_format(parent)
        if fmt is ModelFormat.OPENVINO:
            return parent, parent
        if fmt is not ModelFormat.ONNX:
            raise EdgeStudioError(parent, "the NNCF rescue starts from a float OpenVINO IR or ONNX model")
        import openvino as ov

        ir = work / "float.xml"
        ov.save_model(ov.convert_model(str(parent)), str(ir), compress_to_fp16=False)
        return ir, ir

    def rescue_scope(self, reference: Path, child: Path, item: dict[str, Any],
                     pairs: list[dict[str, Any]]) -> list[str]:
        """OpenVINO op names (NNCF's ``ignored_scope``): the blamed op, else the weighted op behind the pair's (the
        Convolution behind a diverging Add or Relu)."""
        node, _, upstream = blamed_op(item)
        return [n for n in dict.fromkeys((node or weighted_op(reference, item["node"]), upstream)) if n]

    def throughput_run(self, path: Path, feeds: dict[str, np.ndarray], *, batch: int, streams: int,
                       cores: int, duration_s: float, cancel: Any) -> tuple[list[float], float, int]:
        """The THROUGHPUT hint with NUM_STREAMS set, ``streams`` infer requests kept in flight from this thread.

        No Python callback runs on OpenVINO's threads (an ``AsyncInferQueue`` callback did): a garbage collection
        started there could free an OpenVINO object on its own worker thread, and the process aborted with
        "terminate called without an active exception" (seen twice, once in CI). Each request's latency is the one
        OpenVINO measured (``InferRequest.latency``)."""
        import time
        from collections import deque

        import openvino as ov

        core = ov_core()
        m = core.read_model(str(path))
        if batch > 1:
            m.reshape({inp.get_any_name(): ov.PartialShape([batch, *list(inp.get_partial_shape())[1:]])
                       for inp in m.inputs})
        compiled = core.compile_model(m, "CPU", {"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": str(streams)})
        data = list(feeds.values())
        idle = deque(compiled.create_infer_request() for _ in range(streams))
        busy: deque = deque()
        lat: list[float] = []

        def done() -> Any:  # the oldest request in flight, finished
            request = busy.popleft()
            request.wait()
            lat.append(float(request.latency))
            return request

        def run(until: float) -> None:
            while time.perf_counter() < until and not cancel.cancelled:
                request = idle.popleft() if idle else done()
                request.start_async(data)
                busy.append(request)
            while busy:
                idle.append(done())

        try:
            run(time.perf_counter() + min(0.2, duration_s))  # warm-up: every stream's first inferences
            lat.clear()
            t0 = time.perf_counter()
            run(t0 + duration_s)
            return lat, time.perf_counter() - t0, max(1, cores // streams)
        finally:
            for request in busy:
                request.wait()
            idle.clear()
            busy.clear()
            del compiled
