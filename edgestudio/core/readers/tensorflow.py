"""Keras (.keras, .h5), SavedModel and TF.js graph models."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from edgestudio.core.formats import ModelFormat
from edgestudio.core.modelinfo import Dim, ModelInfo, TensorSpec
from edgestudio.core.readers.common import prod, static_dims


def keras_dims(shape: Any) -> list[Dim]:
    return [int(d) if d is not None else ("batch" if i == 0 else "?") for i, d in enumerate(shape)]


def _keras_layers(model: Any) -> Iterable[Any]:
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            yield from _keras_layers(layer)
        else:
            yield layer


def _inspect_keras_any(p: Path, fmt: ModelFormat) -> ModelInfo:
    from edgestudio.core.loaders import load_keras_model

    model = load_keras_model(p, fmt)
    inputs = [TensorSpec(t.name, keras_dims(t.shape), str(t.dtype)) for t in model.inputs]
    outputs = [TensorSpec(t.name, keras_dims(t.shape), str(t.dtype)) for t in model.outputs]
    layers = list(_keras_layers(model))
    ops = Counter(type(layer).__name__ for layer in layers)
    macs = 0
    for layer in layers:
        kind = type(layer).__name__
        try:
            out = static_dims(keras_dims(layer.output.shape))
            kernel = getattr(layer, "kernel", None)
            kshape = [int(d) for d in kernel.shape] if kernel is not None else None
        except Exception:
            continue
        if out is None or kshape is None:
            continue
        if kind in ("Conv1D", "Conv2D", "Conv3D"):
            macs += prod(out) * prod(kshape[:-1])
        elif kind in ("DepthwiseConv1D", "DepthwiseConv2D"):
            macs += prod(out) * prod(kshape[:-2])
        elif kind == "Dense":
            macs += prod(out) * kshape[0]
    return ModelInfo(fmt, str(p), 0, inputs, outputs, dict(ops), int(model.count_params()), macs or None,
                     None, f"keras {getattr(__import__('keras'), '__version__', '')}".strip())


def _inspect_keras(p: Path) -> ModelInfo:
    return _inspect_keras_any(p, ModelFormat.KERAS)


def _inspect_keras_h5(p: Path) -> ModelInfo:
    return _inspect_keras_any(p, ModelFormat.KERAS_H5)


_TF_PLUMBING = {"NoOp", "Identity", "Const", "Placeholder", "StatefulPartitionedCall", "PartitionedCall",
                "ReadVariableOp", "VarHandleOp", "_Arg", "_Retval", "IdentityN", "AssignVariableOp",
                "RestoreV2", "SaveV2", "StringJoin", "ShardedFilename", "MergeV2Checkpoints", "StaticRegexFullMatch",
                "Select", "Pack"}


def _inspect_saved_model(p: Path) -> ModelInfo:
    from edgestudio.core.loaders import load_saved_model, serving_signature

    loaded = load_saved_model(p)
    sig = serving_signature(loaded, p)
    in_specs = sig.structured_input_signature[1]
    inputs = [TensorSpec(name, keras_dims(spec.shape), spec.dtype.name) for name, spec in sorted(in_specs.items())]
    outputs = [TensorSpec(name, keras_dims(spec.shape), spec.dtype.name)
               for name, spec in sorted(sig.structured_outputs.items())]
    ops: Counter[str] = Counter()
    gdef = sig.graph.as_graph_def()
    for fn in gdef.library.function:
        if "__inference_signature_wrapper" in fn.signature.name:
            continue
        for node in fn.node_def:
            if node.op not in _TF_PLUMBING:
                ops[node.op] += 1
    variables = getattr(loaded, "variables", None) or []
    params = sum(int(v.shape.num_elements() or 0) for v in variables) or None
    return ModelInfo(ModelFormat.SAVED_MODEL, str(p), 0, inputs, outputs, dict(ops), params, None, None,
                     "tensorflow")




def _inspect_tfjs(p: Path) -> ModelInfo:
    mj = p / "model.json" if p.is_dir() else p
    doc = json.loads(mj.read_text("utf-8"))
    topo = doc.get("modelTopology") or {}
    ops: Counter[str] = Counter()
    inputs: list[TensorSpec] = []
    outputs: list[TensorSpec] = []
    if "node" in topo:  # graph model
        for node in topo["node"]:
            op = node.get("op", "?")
            if op == "Placeholder":
                dims = node.get("attr", {}).get("shape", {}).get("shape", {}).get("dim", [])
                inputs.append(TensorSpec(node["name"], [int(d.get("size", -1)) if int(d.get("size", -1)) >= 0 else "?"
                                                         for d in dims], "float32"))
            elif op not in ("Const", "Identity", "NoOp"):
                ops[op] += 1
        for name, spec in (doc.get("signature", {}).get("outputs") or {}).items():
            dims = spec.get("tensorShape", {}).get("dim", [])
            outputs.append(TensorSpec(name, [int(d.get("size", -1)) if int(d.get("size", -1)) >= 0 else "?"
                                             for d in dims], "float32"))
    else:  # layers model
        config = topo.get("model_config", topo).get("config", {})
        for layer in config.get("layers", []):
            cls = layer.get("class_name", "?")
            if cls == "InputLayer":
                lc = layer.get("config", {})
                shape = lc.get("batch_input_shape") or lc.get("batch_shape") or []
                inputs.append(TensorSpec(lc.get("name", "input"), keras_dims(shape), lc.get("dtype", "float32")))
            else:
                ops[cls] += 1
    params = _check_tfjs_weights(p, mj, doc)
    return ModelInfo(ModelFormat.TFJS, str(p), 0, inputs, outputs, dict(ops), params or None, None, None,
                     doc.get("convertedBy") or doc.get("generatedBy"))




def _check_tfjs_weights(p: Path, mj: Path, doc: dict[str, Any]) -> int:
    from edgestudio.core.safety import check_tfjs_weights

    return check_tfjs_weights(mj, doc, model=p)
