"""Compare variants: one row per (model variant, runtime, device) with latency, throughput, size and
accuracy, sorted by p50, the accuracy-vs-latency Pareto front marked.

The pieces are separate so the CLI (which waits) and the GUI (which fills rows as jobs finish) share them:
:func:`plan_rows` -> submit the specs -> :func:`apply_result` per finished job -> :func:`finalize_rows`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgestudio.core.errors import EdgeStudioError
from edgestudio.core.formats import ModelFormat, detect_format
from edgestudio.core.jobs import JobKind, JobSpec
from edgestudio.core.modelinfo import model_size_bytes


def runs_format(runtime: str, fmt: ModelFormat) -> bool:
    from edgestudio.backends.runtimes import RUNTIMES

    cls = RUNTIMES.all().get(runtime)
    return cls is not None and fmt in cls.formats


def _plan(model: str, fmt: ModelFormat, runtime: str, device: str, dataset: str | None, iterations: int,
          warmup: int, inputs: dict[str, Any] | None = None, threads: int | None = None
          ) -> tuple[dict[str, Any], list[JobSpec]]:
    row: dict[str, Any] = {"model": str(model), "format": fmt.value, "runtime": runtime, "device": device,
                           "threads": threads, "threads_asked": threads is not None,
                           "size_bytes": model_size_bytes(Path(model), fmt), "error": None,
                           "inputs": dict(inputs or {})}
    if not runs_format(runtime, fmt):
        row["error"] = f"{runtime} does not run {fmt.label} models"
        return row, []
    specs = [JobSpec(JobKind.BENCH, model=str(model), runtime=runtime, device=device,
                     options={"iterations": iterations, "warmup": warmup, "keep_samples": False,
                              "inputs": dict(inputs or {}), "threads": threads})]
    if dataset:
        specs.append(JobSpec(JobKind.EVAL, model=str(model), runtime=runtime, device=device,
                             options={"dataset": dataset, "inputs": dict(inputs or {})}))
    return row, specs


def _thread_list(threads: list[int] | None) -> list[int | None]:
    """A thread sweep (each count once, in order), or [None]: the engine's default (equal on every runtime)."""
    return list(dict.fromkeys(int(t) for t in threads)) if threads else [None]


def plan_rows(models: list[str], runtimes: list[str] | None, *, dataset: str | None = None,
              device: str | list[str] = "CPU",
              iterations: int = 100, warmup: int = 10, inputs: dict[str, Any] | None = None,
              browser: str | None = None, threads: list[int] | None = None
              ) -> list[tuple[dict[str, Any], list[JobSpec]]]:
    """A row per model x runtime (x thread count, for a thread sweep), with the jobs that fill it (none, and an
    error, where it cannot run). ``browser`` picks the browser of the browser runtimes (chromium, qtwebengine).
    Accuracy is evaluated once per model and runtime (at the sweep's first thread count)."""
    from edgestudio.backends.runtimes import RUNTIMES, runtime_for_format
    from edgestudio.backends.runtimes.ort_web import browser_device

    out = []
    for model in models:
        fmt = detect_format(model)
        for rt in runtimes or [runtime_for_format(fmt)]:
            for one in ([device] if isinstance(device, str) else device):  # e.g. CPU and CPU@agent:pi side by side
                in_browser = browser and getattr(RUNTIMES.all().get(rt), "in_browser", False)
                dev = browser_device(rt, one, browser) if in_browser else one
                counts = _thread_list(threads) if runs_format(rt, fmt) else [None]  # one row says it cannot run
                for i, t in enumerate(counts):
                    out.append(_plan(model, fmt, rt, dev, dataset if i == 0 else None, iterations, warmup, inputs, t))
    return out


def plan_matrix(models: list[str], targets: list[tuple[str, str]], *, dataset: str | None = None,
                iterations: int = 100, warmup: int = 10, inputs: dict[str, Any] | None = None,
                inputs_for: Callable[[str], dict[str, Any]] | None = None, threads: list[int] | None = None,
                dataset_for: Callable[[str], str | None] | None = None
                ) -> tuple[list[tuple[dict[str, Any], list[JobSpec]]], list[tuple[str, str, str]]]:
    """Variants x (runtime, device) targets, as one batch: a row for each pair whose runtime runs the variant's
    format. Returns the planned rows and the pairs left out, as (model, runtime, device). Each variant is fed
    ``inputs_for(path)`` (its own input specification) when given, else ``inputs``; it is evaluated on ``dataset``
    when given, else on ``dataset_for(path)`` (its own data: one model's data never judges another's)."""
    out, skipped = [], []
    for model in models:
        fmt = detect_format(model)
        data = dataset or (dataset_for(str(model)) if dataset_for is not None else None)
        for rt, device in targets:
            if runs_format(rt, fmt):
                spec = inputs_for(str(model)) if inputs_for is not None else inputs
                for i, t in enumerate(_thread_list(threads)):  # accuracy once: it does not change with threads
                    out.append(_plan(model, fmt, rt, device, data if i == 0 else None, iterations, warmup, spec, t))
            else:
                skipped.append((str(model), rt, device))
    return out, skipped


def apply_result(row: dict[str, Any], kind: JobKind | str, succeeded: bool, result: dict[str, Any] | None,
                 error: str | None) -> None:
    if not succeeded:
        row["error"] = row.get("error") or error
        return
    assert result is not None
    if JobKind(kind) is JobKind.BENCH:
        lat = result["latency_ms"]
        row.update(p50_ms=lat["p50"], p90_ms=lat["p90"], p99_ms=lat["p99"], mean_ms=lat["mean"],
                   throughput_fps=result["throughput_fps"], load_ms=result["load_ms"], precision=result.get("precision"),
                   ci_ms=result.get("ci_ms"))
        if row.get("threads") is None:
            row["threads"] = result.get("threads")
        if result.get("executed_on"):
            row["executed_on"] = result["executed_on"]
    elif JobKind(kind) is JobKind.EVAL:
        row.update(accuracy=result["top1"], top5=result.get("top5"))


def pareto_front(rows: list[dict[str, Any]], acc_key: str = "accuracy", lat_key: str = "p50_ms") -> set[int]:
    """Indices of rows no other row beats on both accuracy (higher) and latency (lower)."""
    front = set()
    for i, r in enumerate(rows):
        if r.get(acc_key) is None or r.get(lat_key) is None:
            continue
        dominated = any(
            o is not r and o.get(acc_key) is not None and o.get(lat_key) is not None
            and o[acc_key] >= r[acc_key] and o[lat_key] <= r[lat_key]
            and (o[acc_key] > r[acc_key] or o[lat_key] < r[lat_key])
            for o in rows)
        if not dominated:
            front.add(i)
    return front


def apply_paired(rows: list[dict[str, Any]], paired: dict[str, Any]) -> None:
    """Put the paired round's figures on the rows (matched by model, runtime, device)."""
    sweep = any(r.get("threads_asked") for r in rows)  # threads asked (a sweep): the count is part of the key

    def key(x: dict[str, Any]) -> tuple[Any, ...]:
        return (x["model"], x["runtime"], x.get("device") or "CPU", x.get("threads") if sweep else None)

    from edgestudio.bench.paired import not_pairable_because

    by_key = {key(v): v for v in paired.get("variants", [])}
    for r in rows:
        v = by_key.get(key(r))
        if v is None:
            why = not_pairable_because(r["runtime"], r.get("device")) if r.get("p50_ms") is not None else None
            if why:
                r["paired_note"] = f"not in the paired round ({why}): its own run's figures"
            continue
        if v.get("p50_ms") is not None:
            r.update(paired_p50_ms=v["p50_ms"], paired_ci_ms=v["ci_ms"], rank=v["rank"], tied=v["tied"],
                     threads=v.get("threads"))
        else:
            r["paired_note"] = v.get("error")


# ------------------------------------------------------------------------------ do the runtimes agree?
def _local(device: str | None) -> bool:
    return "@" not in (device or "CPU")


def agreement_specs(rows: list[dict[str, Any]], parent_for: Callable[[str], str | None] | None = None
                    ) -> list[JobSpec]:
    """One check per artifact measured on two or more runtimes here: do their outputs on the same inputs agree (and
    which agree with the artifact's parent, when it has one)? A runtime's wrong answer must never rank as a result."""
    by_model: dict[str, list[tuple[str, str]]] = {}
    inputs: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r.get("p50_ms") is None or not _local(r.get("device")):
            continue
        pair = (r["runtime"], r.get("device") or "CPU")
        if pair not in by_model.setdefault(r["model"], []):
            by_model[r["model"]].append(pair)
        inputs[r["model"]] = r.get("inputs") or {}
    specs = []
    for model, targets in by_model.items():
        if len({rt for rt, _ in targets}) < 2:
            continue
        parent = parent_for(model) if parent_for is not None else None
        specs.append(JobSpec(JobKind.CALL, model=model, options={
            "function": "edgestudio.bench.compare:runtime_agreement",
            "kwargs": {"model": model, "targets": [list(t) for t in targets], "parent": parent,
                       "inputs": inputs[model]}}))
    return specs


def runtime_agreement(model: str | Path, targets: list[list[str]] | list[tuple[str, str]], *,
                      parent: str | Path | None = None, inputs: Any = None, samples: int = 8) -> dict[str, Any]:
    """Run ``model`` on each (runtime, device) of ``targets`` on the same inputs and compare their outputs with the
    reference runtime's (the format's own when it is among them, else the first), within the lossy tolerance (a
    cosine of 0.99, and top-1 agreement for logits: runtimes round INT8 differently, never this much). With
    ``parent``, each runtime is also compared with the parent on its own runtime: the one that agrees with it is
    right. A row whose runtime disagrees gets a ``flag`` that says so."""
    import numpy as np

    from edgestudio.bench.parity import (
        DEFAULT_RTOL,
        FAILED,
        LOSSY_MIN_COSINE,
        _align_output,
        _output_kinds,
        _pair,
        check_output,
        default_runtime,
        feeds_for_child,
        follow_model,
        load_for_check,
        overall,
    )
    from edgestudio.core.inputspec import CHECK_DYNAMIC_DIM, InputSpec, make_feeds

    model = Path(model)
    spec = InputSpec.from_dict(inputs) if isinstance(inputs, dict) else (inputs or InputSpec())
    pairs = [(str(rt), str(dev or "CPU")) for rt, dev in targets]
    native = default_runtime(detect_format(model))
    ref = next((p for p in pairs if p[0] == native), pairs[0])
    names = {p: f"{p[0]}/{p[1]}" for p in pairs}
    ref_sess = load_for_check(model, ref[0], ref[1] if ref[1] != "CPU" else None)
    parent_out: list[dict[str, Any]] | None = None
    if parent is not None:  # the parent's samples, as the artifact takes them (names, layout, dtypes)
        psess = load_for_check(parent)
        pfeeds = make_feeds(psess.inputs, spec, count=samples, dynamic_default=CHECK_DYNAMIC_DIM, model=parent)
        feeds = feeds_for_child(psess.inputs, ref_sess.inputs, pfeeds.samples)
        parent_out = [psess.run(f) for f in pfeeds.samples]
        feeds_source = " ".join(pfeeds.sources.values())
        out_pairs = _pair(psess.outputs, ref_sess.outputs, "output")
        kinds = _output_kinds(spec, [po.name for po, _ in out_pairs], parent)
        kinds = {co.name: kinds.get(po.name) for po, co in out_pairs}
    else:
        own = InputSpec.from_dict(follow_model(spec.to_dict(), model, model))
        own_feeds = make_feeds(ref_sess.inputs, own, count=samples, dynamic_default=CHECK_DYNAMIC_DIM, model=model)
        feeds, feeds_source = own_feeds.samples, " ".join(own_feeds.sources.values())
        out_pairs = []
        kinds = _output_kinds(own, [o.name for o in ref_sess.outputs], model)
    outs: dict[tuple[str, str], list[dict[str, Any]]] = {ref: [ref_sess.run(f) for f in feeds]}
    errors: dict[tuple[str, str], str] = {}
    for pair in pairs:
        if pair == ref:
            continue
        try:
            sess = load_for_check(model, pair[0], pair[1] if pair[1] != "CPU" else None)
            outs[pair] = [sess.run(f) for f in feeds]
        except EdgeStudioError as exc:
            errors[pair] = exc.one_line()

    def judge(ref_runs: list[dict[str, Any]], got_runs: list[dict[str, Any]],
              names_map: list[tuple[str, str]]) -> dict[str, Any]:
        checks = []
        for rname, gname in names_map:
            a = [np.asarray(r[rname]) for r in ref_runs]
            b = [_align_output(np.asarray(g[gname]), x)[0] for g, x in zip(got_runs, a)]
            checks.append(check_output(rname, gname, a, b, mode="lossy", atol=0.0, rtol=DEFAULT_RTOL,
                                       min_cosine=LOSSY_MIN_COSINE, kind=kinds.get(gname), feeds=None))
        tops = [c.top1_agreement for c in checks if c.top1_agreement is not None]
        return {"verdict": overall([c.verdict for c in checks]), "cosine": min((c.cosine for c in checks), default=None),
                "top1_agreement": min(tops) if tops else None}

    own_names = [(o.name, o.name) for o in ref_sess.outputs]
    out: list[dict[str, Any]] = []
    for pair in pairs:
        entry: dict[str, Any] = {"runtime": pair[0], "device": pair[1], "reference": pair == ref}
        if pair in errors:
            entry["error"] = errors[pair]
            out.append(entry)
            continue
        if pair != ref:
            entry["vs_reference"] = judge(outs[ref], outs[pair], own_names)
        if parent_out is not None:
            entry["vs_parent"] = judge(parent_out, outs[pair], [(po.name, co.name) for po, co in out_pairs])
        out.append(entry)
    disagree = any((e.get("vs_reference") or {}).get("verdict") == FAILED for e in out)
    parent_name = Path(str(parent)).name if parent is not None else None
    random = "random" in feeds_source
    if disagree:
        # two camps: the reference runtime and those that agree with it, and the others; with a parent, the camp
        # whose outputs are nearer the parent's is right (on random inputs neither may pass, one is still nearer)
        camp_ref = [e for e in out if "error" not in e and (e["reference"] or (e.get("vs_reference") or {}).get(
            "verdict") != FAILED)]
        camp_other = [e for e in out if "error" not in e and e not in camp_ref]

        def nearness(camp: list[dict[str, Any]]) -> float:
            return max(((e.get("vs_parent") or {}).get("cosine") or -1.0) for e in camp) if camp else -2.0

        if parent is not None:
            right, wrong = (camp_ref, camp_other) if nearness(camp_ref) >= nearness(camp_other) else (camp_other, camp_ref)
            agree_text = ", ".join(names[(e["runtime"], e["device"])] for e in right)
            for e in wrong:
                vp = e.get("vs_parent") or {}
                e["flag"] = (f"wrong answer: {names[(e['runtime'], e['device'])]}'s outputs disagree with "
                             f"{agree_text}'s on this artifact and are far from its parent {parent_name}'s (cosine "
                             f"{_num(vp.get('cosine'))}{_top1(vp)}); {agree_text} agree"
                             f"{'s' if len(right) == 1 else ''} with the parent (cosine {_num(nearness(right))})"
                             + ("; on random inputs: save real ones in Details ▸ Inputs to use" if random else ""))
        else:
            for e in camp_other:
                vr = e.get("vs_reference") or {}
                e["flag"] = (f"runtimes disagree: {names[(e['runtime'], e['device'])]}'s outputs differ from "
                             f"{names[ref]}'s on this artifact (cosine {_num(vr.get('cosine'))}{_top1(vr)}); no parent "
                             "in the workspace to tell which is right")
    return {"model": str(model), "parent": str(parent) if parent is not None else None,
            "reference": list(ref), "verdict": "disagree" if disagree else "agree", "targets": out,
            "samples": len(feeds), "inputs": spec.describe(), "random_inputs": random}


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:.4f}"


def _top1(d: dict[str, Any]) -> str:
    return f", top-1 agreement {d['top1_agreement']:.0%}" if d.get("top1_agreement") is not None else ""


def apply_agreement(rows: list[dict[str, Any]], result: dict[str, Any]) -> None:
    """Put a runtime-agreement check's flags on the artifact's rows (each runtime's, all its thread counts)."""
    for t in result.get("targets") or []:
        for r in rows:
            if r["model"] == result["model"] and r["runtime"] == t["runtime"] and (r.get("device") or "CPU") == t["device"]:
                r["agreement"] = {k: t.get(k) for k in ("vs_reference", "vs_parent", "reference", "error")}
                if t.get("flag"):
                    r["flag"] = t["flag"]


#: a p99 this many times the p50: the run was disturbed (other work on the machine), its rank is not to be trusted
NOISY_P99_RATIO = 20.0


def noise_warning(row: dict[str, Any]) -> str | None:
    """Said beside a row whose run was noisy (its p99 twenty or more times its p50)."""
    p50, p99 = row.get("p50_ms"), row.get("p99_ms")
    if not p50 or p99 is None or p99 < NOISY_P99_RATIO * p50:
        return None
    return (f"noisy run: p99 {p99:.3g} ms is {p99 / p50:.0f}x its p50 {p50:.3g} ms (other work on this machine?); "
            "measure again before trusting this rank")


def ranked_p50(row: dict[str, Any]) -> float | None:
    """The p50 a row's rank stands on: the paired round's where it ran, else the row's own run (None: not measured).
    The charts show this one, so the #1 bar is the lowest; the table keeps the row's own run beside it."""
    return row.get("paired_p50_ms") if row.get("paired_p50_ms") is not None else row.get("p50_ms")


def finalize_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sort (by the paired round's p50 where there was one, else by p50) and mark the accuracy-vs-latency Pareto
    front (where accuracy was measured) on that same latency (``ranked_p50_ms``)."""
    # a row whose runtime gives a wrong answer is listed after the others, flagged, never ranked among them
    rows = sorted(rows, key=lambda r: (r.get("p50_ms") is None, bool(r.get("flag")), r.get("rank") is None,
                                       r.get("rank") or 0, r.get("p50_ms") or 0.0))
    for r in rows:
        r["ranked_p50_ms"] = ranked_p50(r)
        r["noise"] = noise_warning(r)
    front = pareto_front([r if not r.get("flag") else {} for r in rows], lat_key="ranked_p50_ms")
    for i, r in enumerate(rows):
        r["pareto"] = i in front
    return rows
