"""TensorFlow Lite Micro export: the model as a C byte array, verified in the real TFLM interpreter.

:func:`verify_tflm` runs the model in TFLM itself (PyPI ``tflite-micro``): it names the operators TFLM does
not have, finds the **exact** tensor arena by search (the smallest size TFLM allocates and runs with, with the
recording allocator's head/tail/persistent parts), and compares TFLM's outputs with LiteRT's on the same inputs.
The measurement is on this 64-bit host: a 32-bit microcontroller needs a little less persistent memory
(pointers are half the size), so the measured figure is a safe upper bound there.

:func:`arena_estimate` (a liveness replay of the graph) is kept only as a rough figure for when TFLM is not
installed; it undercounts TFLM's persistent allocations (5,120 estimated vs 6,896 measured on the digits model).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from edgestudio.core.errors import EdgeStudioError, clean_message

_TYPE_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 9: 1, 10: 8, 16: 4, 17: 1}  # schema TensorType -> bytes
ALIGN = 16
OVERHEAD = 2048  # TFLM's per-model structures (node and tensor metadata), a rough allowance


def arena_estimate(path: str | Path) -> dict[str, Any]:
    from ai_edge_litert import schema_py_generated as schema

    buf = Path(path).read_bytes()
    model = schema.Model.GetRootAs(buf, 0)
    sg = model.Subgraphs(0)
    const = set()
    sizes: dict[int, int] = {}
    for t in range(sg.TensorsLength()):
        tensor = sg.Tensors(t)
        b = tensor.Buffer()
        if 0 < b < model.BuffersLength() and (model.Buffers(b).DataLength() > 0 or model.Buffers(b).Size() > 0):
            const.add(t)
            continue
        shape = [max(int(d), 1) for d in (tensor.ShapeSignatureAsNumpy() if tensor.ShapeSignatureLength() else
                                          tensor.ShapeAsNumpy() if tensor.ShapeLength() else [])]
        n = int(np.prod(shape)) if shape else 1
        sizes[t] = -(-n * _TYPE_BYTES.get(tensor.Type(), 4) // ALIGN) * ALIGN
    n_ops = sg.OperatorsLength()
    first: dict[int, int] = {t: 0 for t in sg.InputsAsNumpy().tolist() if t in sizes}
    last: dict[int, int] = {t: n_ops for t in sg.OutputsAsNumpy().tolist() if t in sizes}
    for i in range(n_ops):
        op = sg.Operators(i)
        for t in (op.InputsAsNumpy().tolist() if op.InputsLength() else []):
            if t in sizes:
                last[t] = max(last.get(t, i), i)
                first.setdefault(t, i)
        for t in (op.OutputsAsNumpy().tolist() if op.OutputsLength() else []):
            if t in sizes:
                first.setdefault(t, i)
                last[t] = max(last.get(t, i), i)
    peak = 0
    for i in range(n_ops + 1):
        live = sum(sizes[t] for t in sizes if first.get(t, 0) <= i <= last.get(t, -1))
        peak = max(peak, live)
    return {"arena_bytes": peak + OVERHEAD, "peak_activation_bytes": peak, "operators": n_ops,
            "constant_tensors": len(const), "model_bytes": len(buf)}


class TflmError(EdgeStudioError):
    """The model cannot run in TensorFlow Lite Micro."""


def builtin_ops(path: str | Path, *, unique: bool = True) -> list[str]:
    """The model's operators (BuiltinOperator names, or the custom code), in first-use order (``unique=False``:
    one entry per operator of the graph)."""
    from ai_edge_litert import schema_py_generated as schema

    buf = Path(path).read_bytes()
    model = schema.Model.GetRootAs(buf, 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
        custom = oc.CustomCode()
        codes.append(custom.decode("utf-8", "backslashreplace") if custom else names.get(code, f"OP_{code}"))
    used: list[str] = []
    for g in range(model.SubgraphsLength()):
        sg = model.Subgraphs(g)
        for j in range(sg.OperatorsLength()):
            name = codes[sg.Operators(j).OpcodeIndex()]
            if name not in used or not unique:
                used.append(name)
    return used


class _NativeOutput:
    """Capture what the C++ side prints on fd 1 and 2 (TFLM's MicroPrintf) for the duration of a block."""

    def __enter__(self) -> _NativeOutput:
        import os
        import sys
        import tempfile

        sys.stdout.flush()
        sys.stderr.flush()
        self._file = tempfile.TemporaryFile(mode="w+b")
        self._saved = (os.dup(1), os.dup(2))
        os.dup2(self._file.fileno(), 1)
        os.dup2(self._file.fileno(), 2)
        self.text = ""
        return self

    def __exit__(self, *exc: object) -> None:
        import os

        os.dup2(self._saved[0], 1)
        os.dup2(self._saved[1], 2)
        for fd in self._saved:
            os.close(fd)
        self._file.seek(0)
        self.text = self._file.read().decode("utf-8", "replace")
        self._file.close()


def _tflm_runtime(model: Path) -> Any:
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        raise TflmError(model, "TensorFlow Lite Micro is not installed here",
                        hint="pip install tflite-micro (the real interpreter, ~3 MB)") from None
    return runtime


def _try_arena(runtime: Any, data: bytes, size: int, feeds: list[list[np.ndarray]]) -> tuple[bool, str, Any]:
    """Does TFLM allocate and run the model in ``size`` bytes? (ok, what TFLM printed, the interpreter)"""
    with _NativeOutput() as out:
        try:
            it = runtime.Interpreter.from_bytes(data, arena_size=size)
            for sample in feeds[:1]:
                for i, x in enumerate(sample):
                    it.set_input(_tflm_in(it, i, x), i)
                if it.invoke() != 0:
                    raise RuntimeError("invoke failed")
            ok, why = True, ""
        except (RuntimeError, ValueError) as exc:
            ok, it, why = False, None, str(exc)
    return ok, out.text + (f"\n{why}" if why else ""), it


def _fits(runtime: Any, data: bytes, size: int, feeds: list[list[np.ndarray]]) -> bool:
    """Does TFLM allocate and run the model in ``size`` bytes, asked in a forked child? TFLM crashes (SIGSEGV)
    on some too-small arenas of models with resource variables instead of failing the allocation: a crash is a
    "no" for that size, never the end of the search."""
    import os

    pid = os.fork()
    if pid == 0:  # the child: answer with the exit code, nothing else
        try:
            ok = _try_arena(runtime, data, size, feeds)[0]
        except BaseException:  # noqa: BLE001 - any failure is a "no"
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def resource_variables(data: bytes) -> int:
    """How many resource variables (VAR_HANDLE shared names) the model keeps state in."""
    from tflite_micro.python.tflite_micro import runtime

    return int(runtime.count_resource_variables(data))


def _parse_allocations(text: str) -> dict[str, int]:
    parts: dict[str, int] = {}
    for key, label in (("total", "Arena allocation total"), ("head", "Arena allocation head"),
                       ("tail", "Arena allocation tail")):
        m = re.search(label + r" (\d+) bytes", text)
        if m:
            parts[key] = int(m.group(1))
    for m in re.finditer(r"'([^']+)' used (\d+) bytes", text):
        parts[m.group(1)] = int(m.group(2))
    return parts


def tflm_kernels() -> set[str] | None:
    """The builtin ops the installed TFLM interpreter has kernels for (its ``Register_<OP>`` symbols)."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("tflite_micro")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    libs = list(Path(next(iter(spec.submodule_search_locations))).rglob("_runtime*.so"))
    if not libs:
        return None
    return {m.decode() for m in re.findall(rb"Register_([A-Z0-9_]+)Ev", libs[0].read_bytes())}


RUNNER_STARTED = '{"runner": "started"}'  # its first line: what failed after it is the model's, not the install's


def verify_tflm(path: str | Path, inputs: Any = None, *, samples: int = 4, timeout_s: float = 600) -> dict[str, Any]:
    """Run ``path`` in the real TFLM interpreter: unsupported ops, the exact arena (searched), TFLM vs LiteRT.

    Returns ops, unsupported_ops, arena_bytes (measured), arena_parts (head = activations, tail = persistent),
    estimate_bytes, flash_bytes, parity (max_abs_diff, cosine, verdict). Runs in a process of its own: TFLM
    crashes on some models it cannot run, and segfaults in a process that has TensorFlow loaded."""
    import json
    import subprocess

    path = Path(path)
    _tflm_runtime(path)  # installed?
    ops = builtin_ops(path)
    kernels = tflm_kernels()
    missing = [op for op in ops if kernels is not None and op not in kernels]
    if missing:
        raise TflmError(path, f"TensorFlow Lite Micro has no kernel for {', '.join(missing)} (the model uses "
                              f"{', '.join(ops)})", hint="replace those layers, or keep this model off the MCU")
    spec = inputs.to_dict() if hasattr(inputs, "to_dict") else (inputs or {})
    from edgestudio.core.process import helper_command

    r = subprocess.run([*helper_command("edgestudio.packaging.tflm"), str(path), json.dumps(spec), str(samples)],
                       capture_output=True, text=True, timeout=timeout_s)
    answer = next((ln for ln in reversed(r.stdout.splitlines()) if ln.startswith("{")), None)
    if r.returncode > 0 and RUNNER_STARTED not in r.stdout:  # the runner itself, not the model, failed
        last = (r.stderr.strip().splitlines() or [f"exit code {r.returncode}"])[-1]
        raise TflmError(path, f"EdgeStudio's TensorFlow Lite Micro runner did not start: {clean_message(last, 200)}",
                        hint="a problem of this EdgeStudio installation, not of the model or the device")
    if r.returncode != 0 or answer is None:
        import signal

        lines = r.stderr.strip().splitlines()
        if r.returncode < 0:
            try:
                why = f"the interpreter crashed with {signal.Signals(-r.returncode).name}"
            except ValueError:
                why = f"the interpreter crashed (signal {-r.returncode})"
            why += f" ({clean_message(lines[-1], 160)})" if lines else " without a message"
        else:
            why = clean_message(lines[-1], 200) if lines else f"exit code {r.returncode}"
        blockers = _tflm_blockers(path)
        if blockers:
            why += f"; likely because {blockers}"
        hint = "the device would fail the same way; try another quantization or architecture"
        raise TflmError(path, f"TensorFlow Lite Micro could not run the model: {why}", hint=hint)
    out = json.loads(answer)
    if "error" in out:
        raise TflmError(path, out["error"], hint=out.get("hint"))
    return out  # type: ignore[no-any-return]


def _tflm_blockers(path: Path) -> str | None:
    """What in the model TFLM cannot allocate, said plainly: float16 tensors (FP16 weights dequantized at run
    time), dynamic shapes, or tensor types TFLM kernels do not take."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        details = Interpreter(model_path=str(path)).get_tensor_details()
    except Exception:  # noqa: BLE001 - a diagnosis only: the caller still has TFLM's own words
        return None
    reasons = []
    fp16 = [d["name"] for d in details if np.dtype(d["dtype"]) == np.float16]
    if fp16:
        dq = sum(op == "DEQUANTIZE" for op in builtin_ops(path, unique=False))
        reasons.append(f"it stores {len(fp16)} tensors as float16 (FP16 weights, {dq} DEQUANTIZE ops), which TFLM "
                       "cannot allocate")
    odd = sorted({np.dtype(d["dtype"]).name for d in details} - {"float32", "int8", "int16", "int32", "uint8", "bool",
                                                                  "float16", "resource", "object"})
    if odd:
        reasons.append(f"it has {', '.join(odd)} tensors")
    # a dynamic batch alone is fine for TFLM; dynamic inner dims are not (said only when nothing else explains it)
    dyn = [d["name"] for d in details if -1 in list(d.get("shape_signature", []))[1:]]
    if dyn and not reasons:
        reasons.append(f"{len(dyn)} tensors have dynamic shapes (e.g. {dyn[0]!r}); TFLM needs static ones")
    return "; ".join(reasons) or None


def _verify_here(path: Path, inputs: Any = None, *, samples: int = 4) -> dict[str, Any]:
    from edgestudio.core.inputspec import InputSpec, make_feeds

    runtime = _tflm_runtime(path)
    data = path.read_bytes()
    ops = builtin_ops(path)
    session = _reference_session(path)
    feeds_obj = make_feeds(session.inputs, InputSpec.from_dict(inputs) if isinstance(inputs, dict) else inputs,
                           count=samples, model=path)
    names = [s.name for s in session.inputs]
    feeds = []
    for f in feeds_obj.samples:  # a dataset given as one batch: one sample at a time, as the MCU sees them
        rows = min(int(np.asarray(f[n]).shape[0]) if np.asarray(f[n]).ndim else 1 for n in names)
        batch1 = all(s.shape and not (isinstance(s.shape[0], int) and s.shape[0] > 1) for s in session.inputs)
        for k in range(rows if batch1 and rows > 1 else 1):
            feeds.append([np.ascontiguousarray(np.asarray(f[n])[k:k + 1] if batch1 and rows > 1 else f[n])
                          for n in names])
            if len(feeds) >= samples:
                break
        if len(feeds) >= samples:
            break
    # (a) does TFLM have every op? A generous arena: a failure now is the model's, not the arena's
    generous = max(64 * 1024, len(data) * 16)
    ok, text, _ = _try_arena(runtime, data, generous, feeds)
    if not ok:
        missing = sorted(set(re.findall(r"Didn't find op for builtin opcode '(\w+)'", text)) |
                         set(re.findall(r"Failed to get registration from op code (\w+)", text)))
        if missing:
            raise TflmError(path, f"TensorFlow Lite Micro has no kernel for {', '.join(missing)} (the model uses "
                                  f"{', '.join(ops)})", hint="quantize to full INT8 or replace those layers")
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        why = _tflm_blockers(path)
        raise TflmError(path, "TensorFlow Lite Micro cannot run this model: "
                              + (why or clean_message(lines[-1] if lines else "AllocateTensors failed", 300)),
                        hint="make a full-INT8 model: edgestudio optimize MODEL --method int8-static --runtime litert "
                             "--calibration DATA")
    # (b) the exact arena: the smallest 16-byte multiple TFLM allocates and runs with
    lo, hi = 0, generous
    while hi - lo > ALIGN:
        mid = (lo + hi) // 2 // ALIGN * ALIGN
        if mid <= lo:
            break
        if _fits(runtime, data, mid, feeds):
            hi = mid
        else:
            lo = mid
    arena = hi
    ok, _, it = _try_arena(runtime, data, arena, feeds)
    assert ok, "the searched arena must work"
    with _NativeOutput() as out:
        it.print_allocations()
    parts = _parse_allocations(out.text)
    # (c) TFLM vs LiteRT on the same inputs, both from their first state (a stateful model's variables were
    # written by the arena's trial invoke)
    it.reset()
    ref, got = [], []
    for sample in feeds:
        feed = dict(zip(names, sample))
        ref.append(np.asarray(next(iter(session.run(feed).values())), dtype=np.float64))
        for i, x in enumerate(sample):
            it.set_input(_tflm_in(it, i, x), i)
        it.invoke()
        got.append(np.asarray(_tflm_out(it, 0), dtype=np.float64))
    a, b = np.concatenate([r.ravel() for r in ref]), np.concatenate([g.ravel() for g in got])
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    cosine = float(a @ b / denom) if denom > 0 else (1.0 if diff == 0 else 0.0)
    lsb = _output_scale(session)
    verdict = ("passed" if cosine >= 0.999 and (lsb is None or diff <= 2 * lsb + 1e-12) else
               "failed" if cosine < 0.99 else "inconclusive")
    internal = None
    if np.std(a) == 0:  # the output never moved on these inputs (a wake word that was not said): compare inside
        internal = _internal_agreement(runtime, path, data, feeds, generous)
        verdict = internal.pop("verdict")
    est = arena_estimate(path)
    return {
        "ops": ops, "unsupported_ops": [], "arena_bytes": arena, "arena_parts": parts,
        "estimate_bytes": est["arena_bytes"], "flash_bytes": len(data),
        "measured_on": "64-bit host (a 32-bit microcontroller needs a little less persistent memory: the "
                       "figure is an upper bound there)",
        "parity": {"verdict": verdict, "max_abs_diff": diff, "cosine": round(cosine, 6), "samples": len(feeds),
                   "output_lsb": lsb, "random_inputs": bool(feeds_obj.partly_random),
                   "vs": "LiteRT's reference kernels on the same inputs", **({"internal": internal} if internal else {})},
        "input_types": [str(np.asarray(x).dtype) for x in feeds[0]],
        "resource_variables": resource_variables(data),
    }


def _reference_interpreter(path: Path, **kwargs: Any) -> Any:
    """LiteRT with its reference kernels: the ones TFLM's are ported from (and CMSIS-NN / ESP-NN are bit-exact
    to). LiteRT's optimized kernels (XNNPACK, ruy) requantize differently and drift several steps on a real
    INT8 detector: against them TFLM's own correctness cannot be told."""
    import warnings

    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF, **kwargs)


def _reference_session(path: Path) -> Any:
    from edgestudio.backends.runtimes.litert import LiteRtSession

    interp = _reference_interpreter(path)
    interp.allocate_tensors()
    return LiteRtSession(interp, "CPU")


def _internal_agreement(runtime: Any, path: Path, data: bytes, feeds: list[list[np.ndarray]],
                        arena: int) -> dict[str, Any]:
    """TFLM against LiteRT tensor by tensor (the same file: the same tensor indices), for when the output stayed
    constant and cannot tell: every activation both interpreters keep, on the same inputs from the first state.
    Integer tensors agree within 2 steps (TFLM's reference kernels round differently from LiteRT's optimized
    ones by one step at most); float tensors within 1e-4 of their range. Resource handles are never read
    (TFLM crashes on them)."""
    ref = _reference_interpreter(path, experimental_preserve_all_tensors=True)
    ref.allocate_tensors()
    ins = ref.get_input_details()
    tensors = [d for d in ref.get_tensor_details()
               if np.dtype(d["dtype"]).kind in "iuf" and len(d["shape"]) and d["index"] not in {i["index"] for i in ins}]
    with _NativeOutput():
        it = runtime.Interpreter.from_bytes(data, arena_size=arena * 4,
                                            intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
    worst: dict[str, float] = {}
    compared = 0
    for sample in feeds:
        for i, x in enumerate(sample):
            it.set_input(_tflm_in(it, i, x), i)
            ref.set_tensor(ins[i]["index"], _tflm_in(it, i, x))
        it.invoke()
        ref.invoke()
        for d in tensors:
            want = np.asarray(ref.get_tensor(d["index"]), dtype=np.float64)
            got = np.asarray(it.GetTensor(d["index"], 0)["tensor_data"], dtype=np.float64)
            if got.size != want.size or not want.size:
                continue
            err = float(np.max(np.abs(want - got.reshape(want.shape))))
            if np.dtype(d["dtype"]).kind == "f":
                err /= max(float(np.ptp(want)), 1e-12) * 1e-4 / 2  # in units of "2 steps" of the float budget
            worst[d["name"]] = max(err, worst.get(d["name"], 0.0))
            compared += 1
    if not compared:
        return {"verdict": "inconclusive", "tensors": 0}
    name, err = max(worst.items(), key=lambda kv: kv[1])
    return {"verdict": "passed" if err <= 2 else "failed", "tensors": len(worst), "samples": len(feeds),
            "worst_tensor": name, "worst_steps": round(err, 3),
            "why": "the output stayed constant on these inputs: the activations were compared instead"}


def parity_words(par: dict[str, Any]) -> str:
    """TFLM vs LiteRT in words, one wording for the CLI, the package's README and the studio."""
    inner = par.get("internal")
    if inner and inner.get("tensors"):
        return (f"{par.get('verdict')}: the output stayed constant on these inputs, so {inner['tensors']} activations "
                f"were compared instead (worst {inner['worst_steps']:g} quantization step(s), at "
                f"{inner['worst_tensor']})")
    return f"{par.get('verdict')} (max abs diff {par.get('max_abs_diff', 0):.3g}, cosine {par.get('cosine')})"


def _output_scale(session: Any) -> float | None:
    """The output's quantization step (one LSB) when the model's output is quantized, else None."""
    try:
        details = session._out[0]
        scale = float(details.get("quantization", (0.0, 0))[0]) if np.dtype(details["dtype"]).kind in "iu" else 0.0
    except Exception:
        return None
    return scale or None


def _tflm_q(details: dict[str, Any]) -> tuple[float, int] | None:
    q = details.get("quantization_parameters") or {}
    scales, zeros = q.get("scales"), q.get("zero_points")
    if np.dtype(details["dtype"]).kind not in "iu" or scales is None or not len(scales):
        return None
    return float(scales[0]), int(zeros[0]) if zeros is not None and len(zeros) else 0


def _tflm_in(it: Any, i: int, x: np.ndarray) -> np.ndarray:
    """A float sample quantized for TFLM's integer input ``i`` (TFLM takes the tensor's own type)."""
    d = it.get_input_details(i)
    q = _tflm_q(d)
    if q is None or x.dtype.kind != "f":
        return x.astype(d["dtype"])
    info = np.iinfo(np.dtype(d["dtype"]))
    return np.clip(np.round(x / q[0] + q[1]), info.min, info.max).astype(d["dtype"])


def _tflm_out(it: Any, i: int) -> np.ndarray:
    y = it.get_output(i)
    q = _tflm_q(it.get_output_details(i))
    return y if q is None else (y.astype(np.float32) - q[1]) * q[0]


def _main(argv: list[str]) -> int:
    """``python -m edgestudio.packaging.tflm MODEL INPUTS_JSON SAMPLES``: one JSON line (the answer or an error)."""
    import json

    path, spec, samples = Path(argv[0]), json.loads(argv[1]), int(argv[2])
    print(RUNNER_STARTED, flush=True)
    try:
        result: dict[str, Any] = _verify_here(path, spec or None, samples=samples)
    except EdgeStudioError as exc:
        result = {"error": exc.cause, "hint": exc.hint}
    print(json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(_main(sys.argv[1:]))
