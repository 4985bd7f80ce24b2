"""Mixed-precision rescue: keep the fewest layers in float so an INT8 model passes the accuracy guard.

The search is driven by the per-layer comparison (:mod:`edgestudio.bench.layers`): quantize, take the weighted
layers ``debug`` blames (the largest own error first, then the first diverging one), keep the first untried one in
float (ONNX Runtime ``nodes_to_exclude``, NNCF ``ignored_scope``, the TFLite quantization debugger's
``denylisted_nodes``: all three are the ``ignored_scope`` option) on top of the best attempt so far, quantize again;
an attempt that does not improve on the best is dropped and the next blamed layer tried. It stops when the guard
passes (top-1 drop <= ``max_drop`` on a labeled dataset, else the model output's cosine to the parent >=
``min_cosine``), after ``max_steps`` attempts, when the next attempt would end past ``budget_s`` seconds, when no
blamed layer is left to try, or when the quantizer fails; the reason is always in the result (``stopped``). Every
attempt is measured (size, p50, the guard's figure), so the price of each rescued layer is visible; the best attempt
is the artifact, written whenever it improved on plain INT8, even if it does not pass the guard (then it says so).

What is compared layer by layer is the float model *in the quantizer's own format*: the ONNX parent for ONNX Runtime,
the float IR for NNCF (an ONNX parent is read into one first), the float TFLite conversion of the Keras/SavedModel
parent for LiteRT. The layer kept in float is named as that quantizer names it: the ONNX node, the OpenVINO op (the
Convolution behind a diverging Add/Relu), the TFLite op's output tensor. Each runtime says both itself
(:meth:`~edgestudio.backends.runtimes.base.Runtime.rescue_reference` and ``rescue_scope``): this search names none.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgestudio.backends.optimizers.base import OptimizeOptions
from edgestudio.core.errors import Cancelled, UsageError, clean_message
from edgestudio.core.formats import detect_format
from edgestudio.core.modelinfo import model_size_bytes
from edgestudio.core.progress import CancelToken, ProgressCallback, noop_progress

if TYPE_CHECKING:
    from edgestudio.backends.runtimes.base import Runtime


def rescue_runtimes() -> list[str]:
    """The runtimes the rescue runs on (their class can :meth:`~edgestudio.backends.runtimes.base.Runtime.can_rescue`),
    in catalog order: an extra catalog's runtime that implements the capability is one of them."""
    from edgestudio.backends.runtimes import RUNTIMES

    return [name for name, cls in RUNTIMES.all().items() if cls.can_rescue()]


def rescue_runtime(runtime: str) -> type[Runtime]:
    """The class of ``runtime``, or an error the user can act on when the rescue does not run on it (it names the
    runtimes the rescue runs on)."""
    from edgestudio.backends.runtimes import RUNTIMES

    cls = RUNTIMES.all().get(runtime)
    if cls is None or not cls.can_rescue():
        able = ", ".join(rescue_runtimes())
        raise UsageError(None, f"the rescue runs on {able}, not {runtime}" if cls else
                         f"unknown runtime {runtime!r}: the rescue runs on {able}")
    return cls


def rescue_suffix(runtime: str) -> str:
    """The file suffix of ``runtime``'s rescued model (its native format's: what its quantizer writes)."""
    fmt = rescue_runtime(runtime).native_format()
    return fmt.default_suffix if fmt else ""


def _candidates(layers: dict[str, Any], rt: Runtime, reference: Path, child: Path) -> list[str]:
    """The layers to keep in float next, as the quantizer names them: ``debug``'s blame (the largest own error
    first), then the first diverging layer's weighted op, then the weighted ops behind the least faithful pairs."""
    from edgestudio.bench.layers import blamed_layers

    out: list[str] = []
    blamed = list(layers.get("blame") or blamed_layers(layers["pairs"]))
    first = layers.get("first_diverging")
    rest = sorted((x for x in layers["pairs"] if x["cosine"] is not None and x["cosine"] < 1 - 1e-7),
                  key=lambda x: x["cosine"])
    for item in [*blamed, *([first] if first else []), *rest]:
        for n in rt.rescue_scope(reference, child, item, layers["pairs"]):
            if n not in out:
                out.append(n)
    return out


def _figure(row: dict[str, Any]) -> tuple[float, float]:
    """What makes one attempt better than another: top-1 on the labeled dataset, else top-1 agreement with the
    float model, then the output's (worst sample's) cosine."""
    cos = row.get("output_cosine")
    top = row["top1"] if row.get("top1") is not None else row.get("top1_agreement")
    return (top if top is not None else 0.0, cos if cos is not None else -1.0)


def rescue(parent: str | Path, output: str | Path, *, runtime: str | None = None, method: str = "int8-static",
           options: OptimizeOptions | dict[str, Any] | None = None, inputs: Any = None, max_drop: float = 0.01,
           min_cosine: float = 0.999, max_steps: int = 8, budget_s: float = 600.0, iterations: int = 100,
           progress: ProgressCallback = noop_progress, cancel: CancelToken | None = None) -> dict[str, Any]:
    """Search for the fewest layers kept in float that pass the guard (see the module), on ``runtime`` (default: the
    one that optimizes the parent's format; :func:`rescue_runtimes` lists those it runs on). The result always says
    why the search stopped (``stopped``) and which attempt is the best (``best_step``); ``output`` is set when the
    best attempt was written (it passed, or it improved on plain INT8)."""
    from edgestudio.backends.runtimes import get_runtime
    from edgestudio.bench.accuracy import evaluate
    from edgestudio.bench.latency import BenchConfig, run_benchmark
    from edgestudio.bench.layers import compare_layers, output_agreement
    from edgestudio.core.inputspec import InputSpec
    from edgestudio.core.model_files import copy_model
    from edgestudio.optimization.engine import default_runtime_for, optimize_model

    parent, output = Path(parent), Path(output)
    runtime = runtime or default_runtime_for(detect_format(parent))
    rescue_runtime(runtime)  # one the rescue runs on, before its installation is checked
    rt = get_runtime(runtime)
    cancel = cancel or CancelToken()
    opts = OptimizeOptions.from_dict(options) if isinstance(options, dict) else (options or OptimizeOptions())
    # one input spec for the comparison, the output check and the benchmark (a dynamic-shape model needs it)
    spec = inputs if isinstance(inputs, InputSpec) else InputSpec.from_dict(inputs) if isinstance(inputs, dict) \
        else InputSpec()
    if not spec.data and (isinstance(inputs, (str, Path)) or opts.calibration):
        spec = spec.merged(InputSpec(data=str(inputs if isinstance(inputs, (str, Path)) else opts.calibration)))
    work = Path(tempfile.mkdtemp(prefix="edgestudio-rescue-"))
    t0 = time.monotonic()
    try:
        source, reference_model = rt.rescue_reference(parent, work)
        suffix = rescue_suffix(runtime)
        reference = evaluate(reference_model, opts.dataset).top1 if opts.dataset else None
        base: list[str] = list(opts.ignored_scope)  # the best attempt's layers kept in float
        tried: set[str] = set(base)
        steps: list[dict[str, Any]] = []
        best: dict[str, Any] | None = None
        candidates: list[str] = []
        stopped = ""
        kept = list(base)
        for step in range(max_steps + 1):
            cancel.check()
            if step:
                spent = time.monotonic() - t0
                per_step = spent / step
                if spent + per_step > budget_s:
                    stopped = (f"time budget spent: {spent:.0f} s of {budget_s:g} s, and an attempt takes about "
                               f"{per_step:.0f} s")
                    break
                nxt = next((c for c in candidates if c not in tried), None)
                if nxt is None:
                    stopped = "nothing left to try: every layer the comparison blames was tried"
                    break
                tried.add(nxt)
                kept = [*base, nxt]
            progress(step / (max_steps + 1), f"attempt {step}: quantizing with {len(kept)} layer(s) kept in float")
            child = work / f"step{step}{suffix}"
            started = time.monotonic()
            try:
                optimize_model(source, method, runtime=runtime, output=child,
                               # the guard is this search's: the optimizer's own would stop at the first failing step
                               options=OptimizeOptions.from_dict({**opts.to_dict(), "ignored_scope": list(kept),
                                                                  "keep_lossy": True, "dataset": None}),
                               cancel=cancel)
            except Cancelled:
                raise
            except Exception as exc:  # the quantizer's own words, and the search keeps what it has
                why = clean_message(exc, 300)
                steps.append({"step": step, "kept_in_float": list(kept), "error": why, "passed": False})
                stopped = f"the quantizer failed with {', '.join(kept) or 'nothing'} kept in float: {why}"
                break
            try:
                layers = compare_layers(reference_model, child, inputs=spec, samples=8)
                outputs = output_agreement(reference_model, child, spec, 8)
                bench = run_benchmark(child, BenchConfig(runtime=runtime, iterations=iterations, warmup=10,
                                                         inputs=spec))
            except Cancelled:
                raise
            except Exception as exc:
                why = clean_message(exc, 300)
                steps.append({"step": step, "kept_in_float": list(kept), "error": why, "passed": False})
                stopped = f"measuring attempt {step} failed: {why}"
                break
            row: dict[str, Any] = {
                "step": step, "kept_in_float": list(kept), "size_bytes": model_size_bytes(child, detect_format(child)),
                "p50_ms": bench.latency_ms.p50, "output_cosine": outputs["output_cosine"],
                "top1_agreement": outputs["top1_agreement"],
                "first_diverging": layers["first_diverging"], "biggest_contributor": layers["biggest_contributor"]}
            if reference is not None:
                row["top1"] = evaluate(child, opts.dataset, runtime=runtime).top1
                row["passed"] = reference - row["top1"] <= max_drop + 1e-12
            else:
                row["passed"] = outputs["output_cosine"] is not None and outputs["output_cosine"] >= min_cosine
            row["seconds"] = round(time.monotonic() - started, 2)
            steps.append(row)
            if best is None or row["passed"] or _figure(row) >= _figure(best):
                # kept (a tie too: two layers may only help together, as the two sides of one quantized tensor);
                # the next layers to try are what this attempt's comparison blames (keeping one moves the others)
                row["improved"] = best is not None and _figure(row) > _figure(best)
                if best is None or row["passed"] or row["improved"]:
                    best = row
                base = list(kept)
                candidates = _candidates(layers, rt, reference_model, child) + candidates
            else:
                row["improved"] = False  # worse: dropped, the next attempt starts again from the one before
            if row["passed"]:
                stopped = (f"guard met at attempt {step} with {len(kept)} layer(s) kept in float" if step else
                           "plain INT8 already meets the guard: nothing to rescue, nothing added")
                break
        else:
            stopped = f"attempt budget spent: {max_steps} attempt(s) after plain INT8 (--max-steps)"
        passed = bool(best and best["passed"])
        # plain INT8 (attempt 0) is the variant the user has already: a copy of it is never a rescue
        written = best is not None and best["step"] > 0
        if written:
            assert best is not None
            copy_model(work / f"step{best['step']}{suffix}", output)  # an IR's .bin with it
        progress(1.0, stopped)
        kept_best = best["kept_in_float"] if best else list(opts.ignored_scope)
        return {"parent": str(parent), "runtime": runtime, "method": method, "reference_top1": reference,
                "guard": {"max_drop": max_drop} if reference is not None else {"min_output_cosine": min_cosine},
                "steps": steps, "passed": passed, "kept_in_float": kept_best,
                "best_step": best["step"] if best else None, "stopped": stopped,
                "seconds": round(time.monotonic() - t0, 1), "budget_s": budget_s,
                "output": str(output) if written else None,
                # for a workspace: the rescued model joins the lineage as a variant of the float parent
                "artifacts": [{"path": str(output), "options": {
                    "method": method, "runtime": runtime, "rescued": True, "kept_in_float": kept_best,
                    "guard_passed": passed, "top1": best.get("top1"), "output_cosine": best["output_cosine"]}}]
                if written and best else []}
    finally:
        shutil.rmtree(work, ignore_errors=True)
