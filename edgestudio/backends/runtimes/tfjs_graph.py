"""TF.js graph models run by TensorFlow in Python (``tfjs-graph-converter`` loads model.json back into a TF graph):
the native check of a TF.js export. Browsers run them with TF.js itself (the ``tfjs`` browser runtime)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgestudio.backends.runtimes.base import RUNTIMES, DeviceInfo, Runtime, Session
from edgestudio.core.errors import ModelFormatError
from edgestudio.core.formats import ModelFormat


class TfjsGraphSession(Session):
    def __init__(self, graph: Any) -> None:
        import tensorflow as tf

        from edgestudio.core.inspection import inspect_model

        self._graph = graph
        from tensorflow.core.protobuf import rewriter_config_pb2

        # grappler's remapper would fuse conv + bias + activation back into _FusedConv2D, whose CPU kernel refuses
        # grouped convolutions: off, for a check that runs what the graph says
        config = tf.compat.v1.ConfigProto()
        config.graph_options.rewrite_options.remapping = rewriter_config_pb2.RewriterConfig.OFF
        self._sess = tf.compat.v1.Session(graph=graph, config=config)
        self.runtime = "tfjs-graph"
        self.device = "CPU"
        self.precision = None
        self._path = None
        ops = {op.name: op for op in graph.get_operations()}
        self._inputs = [ops[n].outputs[0] for n in sorted(ops) if ops[n].type == "Placeholder"]
        consumed = {t.name for op in graph.get_operations() for t in op.inputs}
        self._outputs = [op.outputs[0] for op in graph.get_operations()
                         if op.outputs and op.outputs[0].name not in consumed and op.type not in ("Const", "NoOp")]
        from edgestudio.core.modelinfo import TensorSpec

        def dims(t: Any) -> list[Any]:
            try:
                return [d if d is not None else "?" for d in t.shape.as_list()]
            except ValueError:
                return ["?"]

        self.inputs = [TensorSpec(t.op.name, dims(t), t.dtype.name) for t in self._inputs]
        self.outputs = [TensorSpec(t.op.name, dims(t), t.dtype.name) for t in self._outputs]
        del inspect_model

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self._sess.run(self._outputs, {t: feeds[s.name] for t, s in zip(self._inputs, self.inputs)})
        return {s.name: np.asarray(v) for s, v in zip(self.outputs, values)}

    def bind(self, feeds: dict[str, np.ndarray]) -> Callable[[], Any]:
        feed = {t: feeds[s.name] for t, s in zip(self._inputs, self.inputs)}
        outs, run = self._outputs, self._sess.run
        return lambda: run(outs, feed)


@RUNTIMES.register
class TfjsGraphRuntime(Runtime):
    name = "tfjs-graph"
    label = "TF.js graph in TensorFlow"
    formats = frozenset({ModelFormat.TFJS})
    requires = ("tfjs_graph_converter", "tensorflow")

    def devices(self) -> list[DeviceInfo]:
        return [DeviceInfo(self.name, "CPU", "TF.js graph models in TensorFlow (tfjs-graph-converter)")]

    def load(self, path: str | Path, *, device: str = "CPU", threads: int | None = None,
             precision: str | None = None) -> Session:
        from edgestudio.core.loaders import quiet_tensorflow, stub_tfjs_extras

        quiet_tensorflow()
        stub_tfjs_extras()
        self.check_device(device)
        try:
            import tfjs_graph_converter.api as api

            folder = Path(path)
            graph = api.load_graph_model(str(folder if folder.is_dir() else folder.parent))
        except Exception as exc:
            raise ModelFormatError(path, f"cannot load the TF.js graph model: {' '.join(str(exc).split())[:300]}") \
                from None
        return TfjsGraphSession(_unfused(graph))


_ACTIVATIONS = ("Relu", "Relu6", "Elu", "LeakyRelu", "Sigmoid", "Tanh")


def _unfused(graph: Any) -> Any:
    """The graph with TF.js's fused convolutions (``_FusedConv2D``: conv + bias + activation) split back into
    Conv2D, BiasAdd and the activation: TensorFlow's CPU kernel for the fused op refuses grouped convolutions
    ("Fused conv implementation does not support grouped convolutions"), which MobileNet-style ONNX exports have.
    The same arithmetic; only the check runs it."""
    import tensorflow as tf

    gd = graph.as_graph_def()
    if not any(n.op == "_FusedConv2D" for n in gd.node):
        return graph
    out = tf.compat.v1.GraphDef()
    out.versions.CopyFrom(gd.versions)
    for node in gd.node:
        fused = [f.decode() for f in node.attr["fused_ops"].list.s] if node.op == "_FusedConv2D" else []
        if not fused or fused[0] != "BiasAdd" or len(fused) > 2 or any(f not in _ACTIVATIONS for f in fused[1:]) \
                or len(node.input) < 3:
            out.node.add().CopyFrom(node)
            continue
        conv = out.node.add(name=f"{node.name}/es_conv", op="Conv2D", input=[node.input[0], node.input[1]],
                            device=node.device)
        for key in ("T", "strides", "padding", "explicit_paddings", "data_format", "dilations", "use_cudnn_on_gpu"):
            if key in node.attr:
                conv.attr[key].CopyFrom(node.attr[key])
        bias = out.node.add(name=node.name if len(fused) == 1 else f"{node.name}/es_bias", op="BiasAdd",
                            input=[conv.name, node.input[2]], device=node.device)
        bias.attr["T"].CopyFrom(node.attr["T"])
        if "data_format" in node.attr:
            bias.attr["data_format"].CopyFrom(node.attr["data_format"])
        if len(fused) == 2:
            act = out.node.add(name=node.name, op=fused[1], input=[bias.name], device=node.device)
            act.attr["T"].CopyFrom(node.attr["T"])
            if fused[1] == "LeakyRelu" and "leakyrelu_alpha" in node.attr:
                act.attr["alpha"].f = node.attr["leakyrelu_alpha"].f
        for extra in node.input[3:]:  # control inputs
            if extra.startswith("^"):
                conv.input.append(extra)
    new = tf.Graph()
    with new.as_default():
        tf.compat.v1.import_graph_def(out, name="")
    return new
