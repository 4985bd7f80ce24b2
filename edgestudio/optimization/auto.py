"""Auto-optimize: try the sensible variants (runtime x precision x key options), measure each, drop those
that break the accuracy guard, return the fastest with the whole table.

The candidate list (the backend catalog's ``auto`` entries) steers clear of traps measured on x86 CPUs (see ../shared/FACTS.md): no ONNX Runtime
dynamic INT8 for CNNs (several times slower), ONNX Runtime static INT8 with uint8 activations (S8S8 gains
nothing), OpenVINO measured at its default precision (bf16 on AMX) *and* with the f32 hint, each with its
own accuracy, and sessions that do not spin.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgestudio.backends.optimizers.base import OptimizeOptions
from edgestudio.bench.compare import pareto_front
from edgestudio.core.errors import EdgeStudioError
from edgestudio.core.formats import ModelFormat, detect_format
from edgestudio.core.modelinfo import model_size_bytes
from edgestudio.core.progress import CancelToken, ProgressCallback, noop_progress
from edgestudio.core.model_files import remove_model_files


@dataclass
class Candidate:
    label: str
    runtime: str
    method: str | None  # None: the FP32 model in the runtime's format
    precision: str | None = None  # OpenVINO inference precision hint; None = the device default
    options: dict[str, Any] = field(default_factory=dict)


def candidates(src_fmt: ModelFormat, runtime: str) -> list[Candidate]:
    """What to try, from the backend catalog's ``auto`` entries of each runtime (``runtime`` "any": all)."""
    from edgestudio.core.catalog import runtimes
    from edgestudio.core.machine import isa_flags

    out = [Candidate(c.label, r.name, c.method, c.precision, dict(c.options))
           for r in runtimes() if runtime in ("any", r.name)
           for c in r.auto if c.sources is None or src_fmt.value in c.sources]
    # ISA-aware: a runtime's device-default precision may be the very precision another candidate asks for
    # (OpenVINO's CPU default is bf16 only where the CPU computes bf16 natively): measured once, not twice
    from edgestudio.backends.runtimes import RUNTIMES

    isa = set(isa_flags())

    def same_as_a_hint(c: Candidate) -> bool:
        if c.precision is not None:
            return False
        try:
            default = RUNTIMES.get(c.runtime)().default_precision(isa)
        except KeyError:
            return False
        return default is not None and any(o.runtime == c.runtime and o.method == c.method and o.precision == default
                                           for o in out)

    return [c for c in out if not same_as_a_hint(c)]


def auto_optimize(src: str | Path, *, runtime: str = "any", options: OptimizeOptions | None = None,
                  folder: Path | None = None, iterations: int = 200, warmup: int = 20,
                  progress: ProgressCallback = noop_progress, cancel: CancelToken | None = None,
                  log: Callable[[str], None] = lambda line: None,
                  bench: Callable[..., dict[str, Any]] | None = None,
                  bench_runtimes: Collection[str] | None = None) -> dict[str, Any]:
    """Returns ``{"best": row, "candidates": [rows]}``; each row has label, runtime, method, precision, path,
    size_bytes, p50_ms, p99_ms, throughput_fps, accuracy (top-1, or top-1 agreement without labels),
    accuracy_kind, passed, pareto, error. ``bench(path, config, cancel)`` measures a candidate elsewhere (a remote
    device: the workers pass one) and returns a benchmark result as a dict; by default it runs here.
    ``bench_runtimes``: the runtimes where it measures (a device's): other candidates are not built."""
    from edgestudio.backends.optimizers.base import find_optimizer
    from edgestudio.bench.accuracy import agreement, evaluate
    from edgestudio.bench.latency import BenchConfig, run_benchmark
    from edgestudio.core.catalog import output_format
    from edgestudio.conversion.engine import convert_model, default_output
    from edgestudio.optimization.engine import optimize_model, optimized_name

    src = Path(src)
    opts = options or OptimizeOptions()
    cancel = cancel or CancelToken()
    fmt = detect_format(src)
    cands = candidates(fmt, runtime)
    if not cands:
        raise EdgeStudioError(src, f"no candidates for runtime {runtime} from a {fmt.label} model")
    calibration = opts.calibration or opts.dataset or "random"
    opts = replace(opts, calibration=calibration)
    tmp = Path(tempfile.mkdtemp(prefix="edgestudio-auto-"))
    out_dir = folder or tmp
    rows: list[dict[str, Any]] = []
    fp32: dict[str, Path] = {}
    try:
        for i, cand in enumerate(cands):
            cancel.check()
            frac = i / len(cands)
            progress(frac, f"{cand.label}: preparing")
            row: dict[str, Any] = {"label": cand.label, "runtime": cand.runtime, "method": cand.method or "fp32",
                                   "precision": cand.precision, "path": None, "error": None}
            rows.append(row)
            if bench_runtimes is not None and cand.runtime not in bench_runtimes:
                row["error"] = f"{cand.runtime} is not on the device (it has: {', '.join(sorted(bench_runtimes))})"
                continue
            try:
                own = output_format(cand.runtime)
                if own is None:
                    raise EdgeStudioError(src, f"{cand.runtime} declares no format of its own in the catalog")
                if cand.method is None:
                    target = ModelFormat(own)
                    if cand.runtime not in fp32:
                        if fmt is target:
                            fp32[cand.runtime] = src
                        else:
                            fp32[cand.runtime] = Path(convert_model(
                                src, target, output=default_output(src, target, out_dir), cancel=cancel).output)
                    path = fp32[cand.runtime]
                else:
                    # an optimizer whose preferred input is its runtime's own format starts from the FP32 model in
                    # it; one that prefers another (TFLite quantization: the TensorFlow model) from the user's model
                    prefers = find_optimizer(cand.method, cand.runtime).sources[0]
                    base = fp32.get(cand.runtime, src) if prefers is ModelFormat(own) else src
                    out = out_dir / optimized_name(src, cand.method, cand.runtime, ModelFormat(own))
                    path = Path(optimize_model(base, cand.method, runtime=cand.runtime, output=out,
                                               options=replace(opts, dataset=None, **cand.options),
                                               cancel=cancel).output)
                row["path"] = str(path)
                row["size_bytes"] = model_size_bytes(path, detect_format(path))
                progress(frac + 0.4 / len(cands), f"{cand.label}: benchmarking")
                config = BenchConfig(runtime=cand.runtime, iterations=iterations, warmup=warmup,
                                     precision=cand.precision)
                measured = (bench(path, config, cancel) if bench is not None
                            else run_benchmark(path, config, cancel=cancel).to_dict())
                row.update(p50_ms=measured["latency_ms"]["p50"], p99_ms=measured["latency_ms"]["p99"],
                           throughput_fps=measured["throughput_fps"], precision_used=measured.get("precision"),
                           device=measured.get("device"))
                progress(frac + 0.7 / len(cands), f"{cand.label}: accuracy")
                if opts.dataset:
                    acc = evaluate(path, opts.dataset, runtime=cand.runtime, ov_precision=cand.precision, cancel=cancel)
                    row.update(accuracy=acc.top1, accuracy_kind="top1")
                else:
                    agr = agreement(src, path, calibration, child_runtime=cand.runtime,
                                    child_ov_precision=cand.precision, cancel=cancel)
                    row.update(accuracy=agr["top1_agreement"], accuracy_kind="top1_agreement")
                log(f"{cand.label}: p50 {row['p50_ms']:.3f} ms, accuracy {row['accuracy']:.4f}")
            except EdgeStudioError as exc:
                row["error"] = exc.one_line()
                log(f"{cand.label}: {row['error']}")
            except Exception as exc:
                if type(exc).__name__ == "Cancelled":
                    raise
                row["error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
                log(f"{cand.label}: {row['error']}")
        measured = [r for r in rows if r.get("accuracy") is not None]
        if opts.dataset:
            reference = max((r["accuracy"] for r in measured if r["method"] == "fp32"), default=None)
        else:
            reference = 1.0  # agreement with the original model itself
        for r in rows:
            r["passed"] = (r.get("accuracy") is not None and reference is not None
                           and reference - r["accuracy"] <= opts.max_drop + 1e-12)
        front = pareto_front(rows)
        for i, r in enumerate(rows):
            r["pareto"] = i in front
        ok = [r for r in rows if r["passed"] and r.get("p50_ms") is not None]
        best = min(ok, key=lambda r: r["p50_ms"]) if ok else None
        final = None
        top = sorted(ok, key=lambda r: r["p50_ms"])[:3]
        if len(top) >= 2 and bench is None:  # the pick is made in a paired round: one-off timings drift 20-40 %
            from edgestudio.bench.paired import paired_benchmark

            progress(0.95, f"paired final round of the top {len(top)}")
            from edgestudio.core.machine import default_threads

            # the finalists at every core count and at one thread (on a busy or small device one thread can win)
            counts = sorted({default_threads(), 1}, reverse=True)
            entries = [(r, t) for r in top for t in counts]
            final = paired_benchmark([{"model": r["path"], "runtime": r["runtime"], "precision": r["precision"],
                                       "threads": t, "inputs": opts.inputs} for r, t in entries], blocks=6,
                                     block=max(20, iterations // 4), cancel=cancel)
            results = [(r, t, v) for (r, t), v in zip(entries, final["variants"]) if v.get("p50_ms") is not None]
            for r in top:  # each finalist's row: its best thread count
                mine = [(t, v) for rr, t, v in results if rr is r]
                if mine:
                    t, v = min(mine, key=lambda tv: tv[1]["rank"])
                    r.update(paired_p50_ms=v["p50_ms"], paired_ci_ms=v["ci_ms"], paired_rank=v["rank"],
                             tied=v["tied"], threads=t,
                             paired_by_threads={str(tt): round(vv["p50_ms"], 5) for tt, vv in mine})
            ranked = [r for r in top if r.get("paired_rank")]
            if ranked:
                best = min(ranked, key=lambda r: r["paired_rank"])
        for r in rows:
            r["kept"] = bool(folder is not None and r is best)
        if folder is not None:  # keep only the pick (and what it was converted from) in the output folder
            keep = {best["path"]} if best else set()
            for r in rows:
                p = r.get("path")
                if p and p not in keep and Path(p).is_relative_to(folder) and Path(p) != src:
                    remove_model_files(Path(p))
                    r["path"] = None
        progress(1.0, "done")
        return {"best": best, "candidates": sorted(rows, key=lambda r: (r.get("p50_ms") is None, r.get("p50_ms") or 0)),
                "reference_accuracy": reference, "max_drop": opts.max_drop,
                "paired_final": {"blocks": final["blocks"], "block": final["block"],
                                 "repeatable": final["repeatable"]} if final else None,
                "accuracy_kind": "top1" if opts.dataset else "top1_agreement",
                "warnings": [] if opts.calibration != "random" else
                ["no data given: calibrated on random data and accuracy measured as agreement on random inputs"]}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
