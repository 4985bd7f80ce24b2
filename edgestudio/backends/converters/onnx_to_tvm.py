"""ONNX -> Apache TVM: compiled for this CPU with the Relax frontend (Relay is gone from TVM), optionally tuned.

Runs in the ``tvm`` environment (apache-tvm and its FFI are pinned together: other FFI versions crash in tuning).
The input shapes are fixed first (``--shape``; a dynamic batch becomes 1) and ONNX Runtime folds the shape
arithmetic away (tf2onnx's Shape/Gather/Concat reshapes, which Relax's importer refuses). The target is ``llvm`` with
this CPU's name (``znver3``, ``skylake-avx512``...: its vector ISA) and core count.

Tuning (``tvm_trials`` > 0): MetaSchedule with its XGBoost cost model, in a process of its own so that a time
budget (``tvm_minutes``) can stop it; the records measured until then are applied (a record cut off mid-write is
dropped). Untuned, Relax's default CPU schedules are used. The result is a folder: ``model.so`` (the library, with
the weights), ``tvm.json`` (inputs, outputs, target, tuning, versions). It is checked against ONNX Runtime on the
same inputs like every hop.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from edgestudio.backends.converters.base import CONVERTERS, ConversionError, Converter, ConvertOptions
from edgestudio.core.errors import Cancelled
from edgestudio.core.formats import ModelFormat
from edgestudio.core.progress import CancelToken, ProgressCallback


def host_target(threads: int | None = None) -> dict[str, Any]:
    """``llvm`` for this CPU (its name carries its vector ISA) on its cores."""
    import tvm

    from edgestudio.core.machine import default_threads

    return {"kind": "llvm", "mcpu": tvm.target.codegen.llvm_get_system_cpu(), "num-cores": threads or default_threads()}


def _tune_child(mod_json: str, target: dict[str, Any], work: str, trials: int) -> None:
    """In a process of its own (its own process group, so a budget can stop its builders and runners too)."""
    os.setpgrp()
    import tvm
    from tvm.s_tir import meta_schedule as ms

    mod = tvm.ir.load_json(Path(mod_json).read_text())
    ms.relax_integration.tune_relax(mod, {}, tvm.target.Target(target), work, max_trials_global=trials,
                                    num_trials_per_iter=max(2, min(16, trials // 8)),
                                    strategy=os.environ.get("EDGESTUDIO_TVM_STRATEGY", "replay-trace"))


def _clean_database(work: Path) -> int:
    """Drop records cut off when a budget stopped the tuner; the number of records kept."""
    kept = 0
    for name in ("database_workload.json", "database_tuning_record.json"):
        f = work / name
        if not f.exists():
            f.write_text("")
            continue
        good = []
        for line in f.read_text().splitlines():
            try:
                json.loads(line)
            except ValueError:
                continue
            good.append(line)
        f.write_text("".join(g + "\n" for g in good))
        if name == "database_tuning_record.json":
            kept = len(good)
    return kept


def tune(mod: Any, target: dict[str, Any], work: Path, trials: int, minutes: float | None, *,
         progress: ProgressCallback, cancel: CancelToken) -> dict[str, Any]:
    import multiprocessing

    import tvm

    mod_json = work / "module.json"
    mod_json.write_text(tvm.ir.save_json(mod))
    proc = multiprocessing.get_context("spawn").Process(target=_tune_child, args=(str(mod_json), target, str(work),
                                                                                   trials), daemon=False)
    t0 = time.monotonic()
    proc.start()
    stopped = None
    try:
        while proc.is_alive():
            proc.join(0.5)
            records = work / "database_tuning_record.json"
            n = sum(1 for _ in records.open()) if records.exists() else 0
            elapsed = time.monotonic() - t0
            budget = f" of a {minutes:g} min budget" if minutes else ""
            progress(0.1 + 0.7 * min(1.0, max(n / trials, elapsed / (minutes * 60) if minutes else 0.0)),
                     f"tuning with MetaSchedule: {n} of {trials} trials measured, {elapsed:.0f} s{budget}")
            if cancel.cancelled:
                stopped = "cancelled"
            elif minutes and elapsed > minutes * 60:
                stopped = "budget"
            if stopped:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.join(10)
                break
    finally:
        if proc.is_alive():
            proc.kill()
    if stopped == "cancelled":
        raise Cancelled("cancelled while tuning")
    if stopped is None and proc.exitcode not in (0, None):
        raise RuntimeError(f"the MetaSchedule tuner exited with code {proc.exitcode}")
    kept = _clean_database(work)
    return {"trials": trials, "records": kept, "seconds": round(time.monotonic() - t0, 1),
            "stopped_by_budget": stopped == "budget", "budget_minutes": minutes}


def _fixed_and_folded(src: Path, shapes: dict[str, list[int]], work: Path) -> Path:
    """The ONNX model with its input dims fixed and its shape arithmetic folded by ONNX Runtime."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(src), format="protobuf")
    for inp in model.graph.input:
        if inp.name in shapes:
            dims = inp.type.tensor_type.shape.dim
            for d, v in zip(dims, shapes[inp.name]):
                d.ClearField("dim_param")
                d.dim_value = int(v)
    fixed = work / "fixed.onnx"
    onnx.save(model, str(fixed), format="protobuf")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # constant folding, no fusions
    opts.optimized_model_filepath = str(work / "folded.onnx")
    opts.log_severity_level = 3
    ort.InferenceSession(str(fixed), opts, providers=["CPUExecutionProvider"])
    return work / "folded.onnx"


@CONVERTERS.register
class OnnxToTvm(Converter):
    name = "tvm-relax"
    label = "Apache TVM (Relax)"
    sources = frozenset({ModelFormat.ONNX})
    target = ModelFormat.TVM
    requires = ("tvm", "onnx", "onnxruntime")
    distributions = ("apache-tvm", "apache-tvm-ffi", "onnx")
    uses = ("shapes", "tvm_trials", "tvm_minutes")
    preference = 10
    tolerance = 1e-4

    def convert(self, src: Path, fmt: ModelFormat, dst: Path, opts: ConvertOptions, *,
                progress: ProgressCallback, cancel: CancelToken) -> None:
        import numpy as np
        import onnx
        import tvm
        from tvm import relax
        from tvm.relax import transform
        from tvm.relax.frontend.onnx import from_onnx

        from edgestudio.core.inputspec import InputSpec, resolve_shapes
        from edgestudio.core.inspection import inspect_model

        info = inspect_model(src, fmt)
        spec = InputSpec.from_dict(opts.inputs).merged(InputSpec(shapes=dict(opts.shapes)))
        shapes = resolve_shapes(info.inputs, spec, model=src)
        target = host_target()
        dst.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="edgestudio-tvm-") as tmp:
            work = Path(tmp)
            progress(0.05, "fixing the input shapes and folding shape arithmetic (ONNX Runtime)")
            folded = _fixed_and_folded(src, shapes, work)
            graph = onnx.load(str(folded), format="protobuf")
            progress(0.08, "importing with the Relax ONNX frontend")
            try:
                mod = from_onnx(graph, shape_dict=shapes)
            except Exception as exc:
                raise ConversionError(src, f"TVM's Relax ONNX frontend cannot import it: "
                                           f"{' '.join(str(exc).split())[-300:]}", converter=self.name) from None
            with tvm.target.Target(target):
                mod = tvm.transform.Sequential([transform.DecomposeOpsForInference(), transform.CanonicalizeBindings(),
                                                relax.pipeline.zero_pipeline()])(mod)
            tuning = None
            if opts.tvm_trials:
                cancel.check()
                tuning = tune(mod, target, work, int(opts.tvm_trials), opts.tvm_minutes, progress=progress,
                              cancel=cancel)
                with tvm.target.Target(target):
                    mod = transform.MetaScheduleApplyDatabase(str(work))(mod)
            cancel.check()
            progress(0.85, f"compiling for {target['mcpu']} ({target['num-cores']} cores)")
            t0 = time.monotonic()
            executable = tvm.compile(mod, target=tvm.target.Target(target))
            executable.export_library(str(dst / "model.so"))
            compile_s = time.monotonic() - t0
        # the outputs' shapes and dtypes, from one run of what was written
        vm = relax.VirtualMachine(tvm.runtime.load_module(str(dst / "model.so")), tvm.cpu())
        feeds = [np.zeros(shapes[s.name], dtype=s.dtype if s.dtype not in ("?", "unknown") else "float32")
                 for s in info.inputs]
        from edgestudio.backends.runtimes.tvm import _outputs

        outs = [o.numpy() for o in _outputs(vm["main"](*[tvm.runtime.tensor(x) for x in feeds]))]
        names = [o.name for o in info.outputs] if len(info.outputs) == len(outs) else [f"output_{i}" for i in
                                                                                         range(len(outs))]
        ops: dict[str, int] = {}
        for node in graph.graph.node:
            ops[node.op_type] = ops.get(node.op_type, 0) + 1
        doc = {"format": "edgestudio-tvm/1", "tvm_version": tvm.__version__, "source": str(src),
               "target": target, "inputs": [{"name": s.name, "shape": shapes[s.name], "dtype": str(x.dtype)}
                                            for s, x in zip(info.inputs, feeds)],
               "outputs": [{"name": n, "shape": list(o.shape), "dtype": str(o.dtype)} for n, o in zip(names, outs)],
               "ops": ops, "parameters": info.parameters, "tuning": tuning, "compile_seconds": round(compile_s, 2)}
        (dst / "tvm.json").write_text(json.dumps(doc, indent=1))
        progress(1.0, "compiled")
