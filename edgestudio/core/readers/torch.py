"""PyTorch: ExportedPrograms (.pt2) and TorchScript (.pt), loaded only after the safety checks read every
pickle."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from edgestudio.core.errors import EdgeStudioError, ModelFormatError
from edgestudio.core.formats import ModelFormat, detect_format
from edgestudio.core.modelinfo import ModelInfo, TensorSpec


def _torch_dims(shape: Any) -> list[Any]:
    return [int(d) if isinstance(d, int) or str(d).isdigit() else "?" for d in shape]


#: a TorchScript argument's declared type -> (shape, dtype, how it is passed): a Python ``int`` is a 0-d int64
#: (what the TorchScript exporter makes of it in ONNX), a ``float`` a 0-d float64, a ``bool`` a 0-d bool
_SCRIPT_SCALARS = {"IntType": ("int64", "int"), "FloatType": ("float64", "float"), "BoolType": ("bool", "bool"),
                   "NumberType": ("float64", "float")}

#: TorchScript ops whose argument at this position can only be an integer (indices) or bool (mask) tensor: a
#: forward argument declared ``Tensor`` used there directly is an int64 / bool input (token ids, masks)
_INDEX_USES = {("aten::embedding", 1): "int64", ("aten::embedding_bag", 1): "int64", ("aten::one_hot", 0): "int64",
               ("aten::index_select", 2): "int64", ("aten::gather", 2): "int64", ("aten::take", 1): "int64",
               ("aten::masked_fill", 1): "bool", ("aten::masked_fill_", 1): "bool", ("aten::where", 0): "bool"}


def _script_tensor_dtypes(module: Any) -> dict[str, str]:
    """Forward arguments declared ``Tensor`` whose uses in the graph fix their dtype (read, not run)."""
    out: dict[str, str] = {}
    try:
        graph = module.inlined_graph
        names = [a.name for a in module.forward.schema.arguments[1:]]
        for name, value in zip(names, list(graph.inputs())[1:]):
            kinds = {_INDEX_USES.get((u.user.kind(), u.offset)) for u in value.uses()} - {None}
            if len(kinds) == 1:
                out[name] = kinds.pop()
    except Exception:  # graph introspection is a refinement: the declared types stand without it
        return {}
    return out


class TorchProgram:
    """A loaded PyTorch model and how to call it: ``inputs`` are what a run is fed (numpy arrays by name);
    :meth:`args` turns a feed into the call's arguments (a Python ``int``/``float``/``bool`` where the TorchScript
    schema declares one, a tensor elsewhere, the value torch.export fixed for an argument it specialised)."""

    def __init__(self, fmt: ModelFormat, module: Any, inputs: list[TensorSpec], outputs: list[TensorSpec],
                 kinds: list[tuple[str, Any]], fixed: dict[str, Any] | None = None, ep: Any = None) -> None:
        self.fmt = fmt
        self.ep = ep  # the ExportedProgram of a .pt2
        self.module = module
        self.inputs = inputs
        self.outputs = outputs
        self.kinds = kinds  # per call argument: ("tensor"|"int"|"float"|"bool", input name) or ("const", value)
        self.fixed = fixed or {}  # arguments torch.export specialised: name -> the only value the program takes

    def args(self, feeds: dict[str, Any]) -> tuple[Any, ...]:
        import numpy as np
        import torch

        out: list[Any] = []
        for kind, ref in self.kinds:
            if kind == "const":
                out.append(ref)
                continue
            arr = np.asarray(feeds[ref])
            if kind == "tensor":  # np.require keeps a 0-d array 0-d (np.ascontiguousarray makes it 1-d)
                arr = np.require(arr, requirements="C")
                out.append(torch.from_numpy(arr if arr.flags.writeable else arr.copy()))
            else:
                if arr.size != 1:
                    from edgestudio.core.errors import UsageError

                    raise UsageError(None, f"input {ref!r} is a scalar ({kind}) but was given shape {list(arr.shape)}")
                item = arr.reshape(()).item()
                out.append(int(item) if kind == "int" else float(item) if kind == "float" else bool(item))
        return tuple(out)

    def static_args(self, feeds: dict[str, Any]) -> tuple[Any, ...]:
        """:meth:`args` for a static program (TFLite, ExecuTorch): one row of every tensor whose batch the model
        leaves open (a dataset given as one batch of many samples), contiguous fresh copies."""
        import torch

        specs = {s.name: s.shape for s in self.inputs}
        out = []
        for (kind, ref), a in zip(self.kinds, self.args(feeds)):
            if kind == "tensor" and getattr(a, "ndim", 0) and a.shape[0] > 1:
                first = (specs.get(ref) or [None])[0]
                if not (isinstance(first, int) and first > 1):
                    a = a[:1]
            # standard strides (a size-1 dim of a broadcast feed keeps stride 0 through .contiguous(); ExecuTorch
            # refuses "0 in strides")
            out.append(a.clone(memory_format=torch.contiguous_format) if hasattr(a, "clone") else a)
        return tuple(out)


def exported_at(prog: TorchProgram, args: tuple[Any, ...]) -> Any:
    """The program as an ExportedProgram at ``args``'s shapes (what static formats are lowered from): an
    ExportedProgram exported again at them, a TorchScript module through PyTorch's TorchScript -> ExportedProgram
    converter."""
    import torch

    if prog.fmt is ModelFormat.PT2:
        return torch.export.export(prog.ep.module(), args)
    from torch._export.converter import TS2EPConverter

    return TS2EPConverter(prog.module, args).convert()


def load_torch_program(path: str | Path) -> TorchProgram:
    """A TorchScript or ExportedProgram file, loaded from its checked bytes, with its inputs as declared."""
    import torch

    path = Path(path)
    fmt, data = _checked_torch_bytes(path)
    try:
        if fmt is ModelFormat.PT2:
            ep = torch.export.load(io.BytesIO(data))
            return _ep_program(ep, fmt)
        module = torch.jit.load(io.BytesIO(data), map_location="cpu").eval()
        dtypes = _script_tensor_dtypes(module)
        inputs, kinds = [], []
        for a in module.forward.schema.arguments[1:]:
            scalar = _SCRIPT_SCALARS.get(a.type.kind())
            if scalar is not None:
                inputs.append(TensorSpec(a.name, [], scalar[0]))
                kinds.append((scalar[1], a.name))
            else:
                inputs.append(TensorSpec(a.name, ["?"], dtypes.get(a.name, "float32")))
                kinds.append(("tensor", a.name))
        return TorchProgram(fmt, module, inputs, [TensorSpec("output", ["?"], "float32")], kinds)
    except EdgeStudioError:
        raise
    except Exception as exc:
        raise ModelFormatError(path, f"PyTorch cannot load it: {' '.join(str(exc).split())[:300]}") from None


def _ep_program(ep: Any, fmt: ModelFormat) -> TorchProgram:
    import torch

    sig = ep.graph_signature
    placeholders = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    inputs: list[TensorSpec] = []
    kinds: list[tuple[str, Any]] = []
    fixed: dict[str, Any] = {}
    for spec in sig.input_specs:
        if spec.kind.name != "USER_INPUT":
            continue
        arg = spec.arg
        name = str(getattr(arg, "name", "") or f"input_{len(kinds)}")
        if type(arg).__name__ == "ConstantArgument":  # specialised by torch.export: it takes this value only
            kinds.append(("const", arg.value))
            fixed[name] = arg.value
            continue
        node = placeholders.get(name)
        val = node.meta.get("val") if node is not None else None
        if isinstance(val, torch.Tensor):
            inputs.append(TensorSpec(name, _torch_dims(val.shape), str(val.dtype).removeprefix("torch.")))
            kinds.append(("tensor", name))
        elif isinstance(val, (bool, torch.SymBool)):
            inputs.append(TensorSpec(name, [], "bool"))
            kinds.append(("bool", name))
        elif isinstance(val, (int, torch.SymInt)):
            inputs.append(TensorSpec(name, [], "int64"))
            kinds.append(("int", name))
        elif isinstance(val, (float, torch.SymFloat)):
            inputs.append(TensorSpec(name, [], "float64"))
            kinds.append(("float", name))
        else:
            inputs.append(TensorSpec(name, ["?"], "float32"))
            kinds.append(("tensor", name))
    outputs = []
    for node in ep.graph.nodes:
        if node.op == "output":
            vals = node.args[0] if isinstance(node.args[0], (list, tuple)) else [node.args[0]]
            for name, arg in zip(sig.user_outputs, vals):
                v = getattr(arg, "meta", {}).get("val")
                shaped = isinstance(v, torch.Tensor)
                outputs.append(TensorSpec(str(name), _torch_dims(v.shape) if shaped else ["?"],
                                          str(v.dtype).removeprefix("torch.") if shaped else "float32"))
    return TorchProgram(fmt, ep.module(), inputs, outputs, kinds, fixed, ep)


def _checked_torch_bytes(path: Path) -> tuple[ModelFormat, bytes]:
    """A PyTorch archive's format and bytes, read once and checked (no pickle in them calls anything but tensor
    rebuilding): PyTorch then loads those very bytes, never the file again (which could have changed since)."""
    from edgestudio.core.pickles import check_torch_archive
    from edgestudio.core.safety import read_regular

    fmt = detect_format(path)
    if fmt not in (ModelFormat.PT2, ModelFormat.TORCHSCRIPT):
        raise ModelFormatError(path, f"not a PyTorch model ({fmt.label})")
    data = read_regular(path, "PyTorch model")
    check_torch_archive(path, data)
    return fmt, data


def load_exported_program(path: str | Path) -> Any:
    """The ExportedProgram of a .pt2, loaded from its checked bytes."""
    import torch

    path = Path(path)
    fmt, data = _checked_torch_bytes(path)
    if fmt is not ModelFormat.PT2:
        raise ModelFormatError(path, f"not an ExportedProgram ({fmt.label})")
    try:
        return torch.export.load(io.BytesIO(data))
    except Exception as exc:
        raise ModelFormatError(path, f"PyTorch cannot load it: {' '.join(str(exc).split())[:300]}") from None


def load_torch(path: str | Path) -> tuple[Any, list[TensorSpec], list[TensorSpec]]:
    """(module, input specs, output specs) of a TorchScript or ExportedProgram file (see :func:`load_torch_program`
    for how to call it)."""
    prog = load_torch_program(path)
    return prog.module, prog.inputs, prog.outputs


def _inspect_torch(p: Path) -> ModelInfo:
    """TorchScript / ExportedProgram (in the ``torch`` environment): I/O, aten ops, parameters."""
    from collections import Counter

    import torch

    prog = load_torch_program(p)
    fmt, module, inputs, outputs = prog.fmt, prog.module, prog.inputs, prog.outputs
    if fmt is ModelFormat.PT2:
        ep = prog.ep
        ops = Counter(str(getattr(n.target, "__name__", n.target)).split(".")[0]
                      for n in ep.graph.nodes if n.op == "call_function")
        params = sum(int(v.numel()) for v in ep.state_dict.values()) + sum(
            int(getattr(v, "numel", lambda: 0)()) for v in ep.constants.values())
    else:
        ops = Counter(n.kind().split("::")[-1] for n in module.inlined_graph.nodes()
                      if not n.kind().startswith("prim::"))
        params = sum(int(t.numel()) for t in module.parameters()) + sum(int(t.numel()) for t in module.buffers())
    return ModelInfo(fmt, str(p), 0, inputs, outputs, dict(ops.most_common()), params, None, None,
                     f"PyTorch {torch.__version__}")
