"""ExecuTorch as a runtime: a ``.pte`` program (PyTorch's own edge format) run by ``executorch.runtime``, its
XNNPACK-delegated parts on the CPU's XNNPACK kernels, the rest on ExecuTorch's kernel library.

It runs in the ``executorch`` environment (see the catalog): the app's own process never imports torch or
ExecuTorch. Inputs are named ``input_0``, ``input_1``... in the program's order (a .pte keeps no names).

Per-op times and intermediate tensors come from ExecuTorch's own profiler, ETDump, read with its Inspector: an event
per instruction (and, inside an XNNPACK block, an event per XNNPACK op: the delegate's own profiler), and in its
debug buffer every op's outputs. A delegated block logs only its inputs and outputs: what is computed inside it is
never seen, and said so. A .pte names neither its nodes nor its tensors: node ``#N`` is the program's N-th op
(ExecuTorch's Inspector and Netron count them the same way), and tensors pair by graph structure only.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgestudio.backends.runtimes.base import RUNTIMES, DeviceInfo, OpTimes, Runtime, Session
from edgestudio.backends.intermediates import INTERNAL_OPS, WEIGHTED_OPS, Tensor, float_tensors
from edgestudio.core.errors import ModelFormatError
from edgestudio.core.formats import ModelFormat
from edgestudio.core.readers.executorch import SCALAR_TYPES, load_program, method_specs

WARMUP_RUNS = 5


def _tensor(x: np.ndarray, dtype: str) -> Any:
    import torch

    # a fresh C-order copy: numpy calls a transposed array with a size-1 dim contiguous and keeps its strides,
    # which ExecuTorch reads as another dim order (its portable kernels refuse it)
    return torch.from_numpy(np.array(x, dtype=dtype, order="C"))


class EtSession(Session):
    def __init__(self, program: Any, device: str) -> None:
        self._method = program.load_method("forward")
        self.inputs, self.outputs = method_specs(program.metadata("forward"))
        self.runtime = "executorch"
        self.device = device
        self.precision = None

    def _args(self, feeds: dict[str, np.ndarray]) -> list[Any]:
        return [_tensor(feeds[s.name], s.dtype) for s in self.inputs]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self._method.execute(self._args(feeds))
        return {s.name: np.asarray(o.detach().numpy() if hasattr(o, "detach") else o)
                for s, o in zip(self.outputs, out)}

    def bind(self, feeds: dict[str, np.ndarray]) -> Callable[[], Any]:
        args = self._args(feeds)
        method = self._method
        return lambda: method.execute(args)


# ------------------------------------------------------------------------------------------------- ETDump
def _plan(path: Path) -> Any:
    """The program's ``forward`` execution plan (values, operators, delegates, instructions)."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    try:
        plans = deserialize_pte_binary(Path(path).read_bytes()).program.execution_plan
    except Exception as exc:  # noqa: BLE001 - its own words, one line
        why = " ".join(str(exc).split())[:300]
        raise ModelFormatError(path, f"ExecuTorch cannot read its program: {why}") from None
    plan = next((p for p in plans if p.name == "forward"), None)
    if plan is None:
        raise ModelFormatError(path, "the program has no forward method")
    return plan


def _nodes(plan: Any) -> list[tuple[int, str, str, list[int], bool]]:
    """(instruction index, node ``#N op``, op, argument values, delegated) per op instruction: the N-th is what
    Netron draws as its N-th node (moves, frees and jumps are not ops)."""
    from executorch.exir.schema import DelegateCall, KernelCall

    out = []
    for i, ins in enumerate(plan.chains[0].instructions):
        a = ins.instr_args
        if isinstance(a, KernelCall):
            op = plan.operators[a.op_index].name.split("::")[-1]
        elif isinstance(a, DelegateCall):
            op = plan.delegates[a.delegate_index].id
        else:
            continue
        out.append((i, f"#{len(out)} {op}", op, list(a.args), isinstance(a, DelegateCall)))
    return out


def _etdump(path: Path, args: list[Any], runs: int = 1, debug_bytes: int = 0) -> tuple[Any, list[float]]:
    """Run the program ``runs`` times with ETDump on (and a debug buffer of ``debug_bytes``: every op's outputs):
    ExecuTorch's Inspector over what it recorded, and each run's wall time (ms). Files go to a temporary folder."""
    import tempfile
    import time
    import warnings

    from executorch.devtools import Inspector
    from executorch.runtime import Runtime as EtRuntime

    load_program(path)  # a program ExecuTorch cannot load: its one-line error
    program = EtRuntime.get().load_program(str(path), enable_etdump=True, debug_buffer_size=debug_bytes)
    method = program.load_method("forward")
    walls = []
    for _ in range(runs):
        t0 = time.perf_counter()
        method.execute(args)
        walls.append((time.perf_counter() - t0) * 1e3)
    with tempfile.TemporaryDirectory(prefix="edgestudio-etdump-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        etdump, buffer = Path(tmp) / "etdump.etdp", Path(tmp) / "debug.bin"
        program.write_etdump_result_to_file(str(etdump), str(buffer))
        inspector = Inspector(etdump_path=str(etdump), debug_buffer_path=str(buffer) if debug_bytes else None)
    return inspector, walls


def _events(inspector: Any) -> list[Any]:
    """The events of the program's runs (not of loading it), in order."""
    return [e for block in inspector.event_blocks if block.name != "Default" for e in block.events]


def _inputs(plan: Any, feed: dict[str, np.ndarray]) -> list[Any]:
    return [_tensor(feed[f"input_{i}"], SCALAR_TYPES.get(int(plan.values[v].val.scalar_type), "float32"))
            for i, v in enumerate(plan.inputs)]


def _contents(ops: list[str]) -> str:
    """``Convolution (NHWC, F32) IGEMM x2, Max Pooling (NHWC, F32)``: a delegate's ops by kind, in order."""
    kinds = Counter(re.sub(r" #\d+$", "", o) for o in ops)
    return ", ".join(f"{k} x{n}" if n > 1 else k for k, n in kinds.items())


def _program_tensors(path: Path, feeds: list[dict[str, np.ndarray]]) -> list[Tensor]:
    """Every op's outputs from ETDump's debug buffer, one program run per sample (the Inspector holds one run's
    values). Views have no instruction in a .pte (they share their source's memory): a tensor no op writes is
    the view of the one last written at its address. A delegate call's arguments are its inputs then its outputs
    (the trailing tensors it writes: a view it reads holds its source's data)."""
    from executorch.exir.schema import Tensor as EtTensor
    from executorch.exir.schema import TensorList

    plan = _plan(path)
    values = [v.val for v in plan.values]

    def nbytes(v: int) -> int:
        dtype = np.dtype(SCALAR_TYPES.get(int(values[v].scalar_type), "float64"))
        return int(np.prod(values[v].sizes)) * dtype.itemsize

    def address(v: int) -> tuple[int, int, int] | None:
        a = values[v].allocation_info
        return None if a is None else (a.memory_id, a.memory_offset_low, a.memory_offset_high)

    def planned(v: int) -> bool:  # an activation (weights live in the program's constant data)
        return isinstance(values[v], EtTensor) and values[v].data_buffer_idx == 0 and address(v) is not None

    size = sum(nbytes(v) + 64 for v in range(len(values)) if planned(v) or v in plan.outputs)  # what is logged
    runs: list[dict[int, list[np.ndarray | None]]] = []  # per sample: instruction -> its logged values
    inner: dict[int, list[str]] = defaultdict(list)  # instruction -> its delegate's own ops (their profiler's events)
    for feed in feeds:
        inspector, _ = _etdump(path, _inputs(plan, feed), debug_bytes=2 * size + (1 << 20))
        logged: dict[int, list[np.ndarray | None]] = {}
        for e in _events(inspector):
            iid = getattr(e, "_instruction_id", None)
            if e.debug_data and iid is not None and iid not in logged:
                logged[iid] = [x.detach().numpy().copy() if hasattr(x, "detach") else None for x in e.debug_data]
            if not runs and e.is_delegated_op and iid is not None:
                inner[iid].append(str(e.name))
        runs.append(logged)

    names = {v: f"input:input_{i}" for i, v in enumerate(plan.inputs)}  # value -> tensor name (a copy: its source's)
    data = {v: np.asarray(feeds[0][f"input_{i}"]) for i, v in enumerate(plan.inputs)}  # value -> sample 0's data
    last_at = {address(v): v for v in plan.inputs if address(v) is not None}  # address -> the value last written
    const: set[int] = set()
    order = [Tensor(n, "Input", f"input_{i}", -1) for i, n in enumerate(names.values())]
    where: dict[str, tuple[int, int]] = {}  # tensor name -> (instruction, its position in the logged values)

    def view_of(v: int) -> int | None:
        w = last_at.get(address(v)) if planned(v) and v not in names else None
        return w if w is not None and w in names and nbytes(w) == nbytes(v) else None

    def same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
        return a is not None and b is not None and np.array_equal(a.ravel(), b.ravel())

    for k, (instr, node, op, args, delegated) in enumerate(_nodes(plan)):
        logged = runs[0].get(instr, [])
        if delegated:  # the trailing arguments it wrote (new tensors, not a view of what it reads)
            outs: list[tuple[int, int]] = []  # (argument position, logged position)
            for j in reversed(range(len(args))):
                v, w = args[j], view_of(args[j])
                if not (planned(v) or v in plan.outputs) or v in names or (
                        w is not None and j < len(logged) and same(logged[j], data.get(w))):
                    break
                outs.insert(0, (j, j))
        else:  # a kernel logs its out arguments: last, but for the alias it returns
            n = len(logged)
            outs = [(len(args) - 1 - n + p, p) for p in range(n)]
        written = {args[j] for j, _ in outs}
        ins = []
        for a in args:
            for v in ([i for i in values[a].items if i >= 0] if isinstance(values[a], TensorList) else [a]):
                if v not in written and isinstance(values[v], EtTensor):
                    ins.append(view_of(v) if view_of(v) is not None else v)
        for j, p in outs:
            if address(args[j]) is not None:
                last_at[address(args[j])] = args[j]
            if p < len(logged):
                data[args[j]] = logged[p]  # type: ignore[assignment]
        if not ins or all(v in const or not planned(v) and v not in names for v in ins):
            const.update(written)  # weights, and what is computed from them only (dequantized weights)
            continue
        inputs = tuple(dict.fromkeys(names[v] for v in ins if v in names))
        if op in INTERNAL_OPS and inputs:  # a copy of a tensor (quantized, dequantized): walked through
            names.update((v, inputs[0]) for v in written)
            continue
        weighted = delegated or (op in WEIGHTED_OPS and any(v in const or not planned(v) for v in ins))
        opaque = None
        if delegated:  # a block: the unit that holds the weighted ops, nothing inside it seen
            ops = inner.get(instr, [])
            opaque = (f"block {node}: " + (f"{len(ops)} ops inside ({_contents(ops)})" if ops else
                                                 "its ops are not listed by the delegate")
                      + "; ETDump records only the block's inputs and outputs")
        for q, (j, p) in enumerate(outs):
            name = f"{node}:{q}"
            names[args[j]] = name
            where[name] = (instr, p)
            order.append(Tensor(name, op, node, k, inputs, weighted, named=False, opaque=opaque))
    layers = []
    for t in order[len(plan.inputs):]:
        i, p = where[t.name]
        got = [r[i][p] if p < len(r.get(i, [])) else None for r in runs]
        if all(x is not None for x in got):  # logged on every run (a tensor list is not)
            t.values = got  # type: ignore[assignment]
            layers.append(t)
    return order[:len(plan.inputs)] + float_tensors(layers)


@RUNTIMES.register
class ExecuTorchRuntime(Runtime):
    name = "executorch"
    label = "ExecuTorch"
    formats = frozenset({ModelFormat.PTE})
    exposes = frozenset({ModelFormat.PTE})  # its intermediate tensors
    requires = ("executorch", "torch")
    #: the package README's own section: ExecuTorch's C++ command line, for a device with no Python (what the
    #: program runs on in production)
    package_readme = """
## Without Python: ExecuTorch's `executor_runner`

On the device, the same program runs from C++. Build ExecuTorch's example runner with the XNNPACK delegate from a
checkout of github.com/pytorch/executorch at the tag of the version in requirements.txt (its tutorial "Building
and Running ExecuTorch with XNNPACK Backend" has the details for cross-compiling):

```sh
cmake -S executorch -B cmake-out -DEXECUTORCH_BUILD_XNNPACK=ON -DCMAKE_BUILD_TYPE=Release
cmake --build cmake-out -j --target executor_runner
cmake-out/executor_runner --model_path={model}
```

It loads `{model}`, runs it once on inputs of ones and prints the outputs (not `input.npy`: `run.py` is what
checks `expected_output.npy`).
"""
    package_loader = '''
def load(model, precision=None):
    import numpy as np
    import torch
    from executorch.runtime import Runtime

    program = Runtime.get().load_program(model)
    method = program.load_method("forward")
    meta = program.metadata("forward")
    names = [f"input_{i}" for i in range(meta.num_inputs())]

    def run(feeds):
        args = [torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in names]
        return method.execute(args)[0].numpy()
    return names, run
'''

    def devices(self) -> list[DeviceInfo]:
        import importlib.metadata

        version = importlib.metadata.version("executorch")
        return [DeviceInfo(self.name, "CPU", f"ExecuTorch {version} (XNNPACK delegate, portable ops)")]

    def load(self, path: str | Path, *, device: str = "CPU", threads: int | None = None,
             precision: str | None = None) -> Session:
        device = self.check_device(device)
        return EtSession(load_program(path), device)

    def profile_ops(self, path: Path, feeds: dict[str, np.ndarray], *, runs: int,
                    threads: int | None) -> OpTimes:
        """ETDump's events (the first 5 runs are warm-up): an op's OPERATOR_CALL; in a delegated block, each of
        the delegate's own ops (XNNPACK's profiler, in whole microseconds), and the block itself (``#N
        XnnpackBackend``) with its DELEGATE_CALL time outside them (all of it where the delegate lists no ops)."""
        plan = _plan(path)
        nodes = {instr: (node, op, delegated) for instr, node, op, _, delegated in _nodes(plan)}
        inspector, walls = _etdump(path, _inputs(plan, feeds), runs=WARMUP_RUNS + runs)
        per_node: dict[str, list[float]] = {}
        types: dict[str, str] = {}
        kernels: dict[str, str | None] = {}
        inside: dict[str, list[float]] = defaultdict(lambda: [0.0] * runs)
        count: Counter[str] = Counter()
        for e in _events(inspector):
            found = nodes.get(getattr(e, "_instruction_id", -1))
            if found is None or e.perf_data is None:
                continue
            node, op, delegated = found
            times = [float(t) for t in e.perf_data.raw][-runs:]
            if e.is_delegated_op:  # one of the delegate's own ops
                name = f"{node}/{e.name}"
                per_node[name], types[name], kernels[name] = times, re.sub(r" #\d+$", "", str(e.name)), op
                inside[node] = [a + b for a, b in zip(inside[node], times)]
                count[node] += 1
            elif e.name == "DELEGATE_CALL" and delegated:
                per_node[node], types[node], kernels[node] = times, f"{op} block", "delegate"
            elif e.name == "OPERATOR_CALL" and not delegated:
                per_node[node], types[node], kernels[node] = times, op, "ExecuTorch kernels"
        for node in count:  # a block whose delegate lists its ops: the call's own time, less theirs
            if kernels.get(node) == "delegate":
                per_node[node] = [max(0.0, t - s) for t, s in zip(per_node[node], inside[node])]
                types[node] = f"{types[node].removesuffix(' block')} call, outside its ops"
                kernels[node] = f"delegate ({count[node]} ops inside)"
        return OpTimes(per_node, types, kernels, walls[WARMUP_RUNS:])

    def intermediate_tensors(self, path: Path, feeds: list[dict[str, np.ndarray]]) -> list[Tensor]:
        """ETDump's debug buffer: every op's outputs; a delegated block only its inputs and outputs (``opaque``)."""
        return _program_tensors(Path(path), feeds)
