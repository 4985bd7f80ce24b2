"""Paired comparison: every variant loaded once, then timed in alternating blocks (the order rotating from block to
block), so the machine's drift (20-40 % between runs on a shared machine) hits all of them alike.

The ranking comes with a 95 % bootstrap interval of each p50 and the paired evidence: a variant is behind the one
ranked above it only if it was slower in every block, side by side (a sign test), and their intervals do not
overlap; otherwise the two are tied ("tie"): this measurement cannot tell them apart, and says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from edgestudio.core.progress import CancelToken, ProgressCallback, noop_progress

LOCAL_ONLY = "a paired round runs the variants in one process: browser and remote runtimes are measured alone"


def pairable(runtime: str, device: str | None) -> bool:
    """Whether a variant can take part in a paired round: a runtime in this process, not a browser's, a remote
    device's or another Python environment's (those are measured where they run)."""
    return not_pairable_because(runtime, device) is None


def not_pairable_because(runtime: str, device: str | None) -> str | None:
    from edgestudio.backends.runtimes import RUNTIMES
    from edgestudio.core.catalog import current_env, env_ready

    cls = RUNTIMES.all().get(runtime)
    if cls is None:
        return f"{runtime} is not installed here"
    if getattr(cls, "in_browser", False):
        return "measured in the browser"
    if "@" in (device or ""):
        return "measured on its device"
    if cls.env() not in ("default", current_env()) and not env_ready(cls.env()):
        return f"its '{cls.env()}' Python environment does not exist here"
    return None


def paired_benchmark(variants: list[dict[str, Any]], *, blocks: int = 6, block: int = 50, warmup: int = 10,
                     progress: ProgressCallback = noop_progress, cancel: CancelToken | None = None,
                     elsewhere: Callable[[str, dict[str, Any], int], Any] | None = None) -> dict[str, Any]:
    """``variants``: dicts with ``model``, ``runtime`` and optionally ``device``, ``threads``, ``precision``,
    ``inputs`` (an InputSpec dict). Returns ``{"variants": [...], "blocks", "block", "fastest"}``; each variant
    gets ``p50_ms``, ``ci_ms`` (its p50's interval), ``block_p50_ms``, ``rank`` and ``tied`` (its interval overlaps
    the fastest's), or an ``error``. ``elsewhere(env, variant, warmup)`` opens a variant whose runtime lives in
    another Python environment: an object whose ``block(n)`` times n runs there (and ``close()``)."""
    cancel = cancel or CancelToken()
    out: list[dict[str, Any]] = []
    calls: list[Any] = []
    opened: list[Any] = []
    try:
        return _paired(variants, blocks, block, warmup, progress, cancel, elsewhere, out, calls, opened)
    finally:
        for handle in opened:
            handle.close()


def _paired(variants: list[dict[str, Any]], blocks: int, block: int, warmup: int, progress: ProgressCallback,
            cancel: CancelToken, elsewhere: Any, out: list[dict[str, Any]], calls: list[Any],
            opened: list[Any]) -> dict[str, Any]:
    from edgestudio.backends.runtimes import RUNTIMES, get_runtime
    from edgestudio.backends.runtimes.base import timed_loop, warm_up
    from edgestudio.bench.inputs import make_inputs
    from edgestudio.bench.stats import bootstrap_ci, overlaps
    from edgestudio.core.catalog import current_env
    from edgestudio.core.inputspec import InputSpec
    from edgestudio.core.machine import default_threads, machine_facts

    for v in variants:
        row = {**v, "error": None}
        out.append(row)
        device = v.get("device") or "CPU"
        if not pairable(v["runtime"], device):
            row["error"] = LOCAL_ONLY
            calls.append(None)
            continue
        try:
            env = RUNTIMES.all()[v["runtime"]].env()
            if env not in ("default", current_env()):  # timed in its environment's process, block by block
                if elsewhere is None:
                    raise RuntimeError(f"{v['runtime']} runs in the '{env}' Python environment")
                blocks_there = elsewhere(env, {**v, "device": device}, warmup)
                opened.append(blocks_there)
                row.update(threads=blocks_there.facts["threads"], warmup_runs=blocks_there.facts["warmup_runs"],
                           steady=blocks_there.facts["steady"], measured_in=env)
                calls.append(blocks_there)
                continue
            threads = v.get("threads") or default_threads()
            session = get_runtime(v["runtime"]).load(v["model"], device=device, threads=threads,
                                                     precision=v.get("precision"))
            feeds = make_inputs(session.inputs, InputSpec.from_dict(v.get("inputs") or {}), model=str(v["model"]))
            call = session.bind(feeds)
            call()
            row["threads"] = threads
            row["warmup_runs"], row["steady"] = warm_up(call, warmup, cancel)
            calls.append(call)
        except Exception as exc:  # noqa: BLE001 - one variant that cannot load leaves the others measured
            from edgestudio.core.errors import describe_exception

            row["error"] = describe_exception(exc, v["model"])
            calls.append(None)
    live = [i for i, c in enumerate(calls) if c is not None]
    samples: dict[int, list[np.ndarray]] = {i: [] for i in live}
    machine = machine_facts()
    for b in range(blocks):
        order = live[b % len(live):] + live[: b % len(live)] if live else []  # rotate: no variant always first
        for i in order:
            cancel.check()
            c = calls[i]
            samples[i].append(c.block(block) if hasattr(c, "block") else timed_loop(c, block))
        progress((b + 1) / blocks, f"block {b + 1}/{blocks}")
    for i in live:
        lat = np.concatenate(samples[i])
        out[i].update(p50_ms=float(np.median(lat)), ci_ms=bootstrap_ci(lat, (50,))["p50"],
                      block_p50_ms=[round(float(np.median(s)), 5) for s in samples[i]], samples=int(lat.size))
    ranked = sorted(live, key=lambda i: out[i]["p50_ms"])
    for r, i in enumerate(ranked):
        out[i]["rank"] = r + 1
        if r == 0:
            out[i]["tied"] = False
            continue
        # paired evidence against the one ranked just above: in how many blocks was it slower, measured side by
        # side? Slower in every block (a sign test: 6 of 6 happens by chance 3 % of the time) and apart by its
        # interval: a real gap; else a tie with it
        above = ranked[r - 1]
        slower = sum(a > b for a, b in zip(out[i]["block_p50_ms"], out[above]["block_p50_ms"]))
        out[i]["blocks_slower"] = slower
        out[i]["tied"] = slower < blocks or overlaps(out[i]["ci_ms"], out[above]["ci_ms"])
    return {"variants": out, "blocks": blocks, "block": block, "machine": machine,
            "fastest": out[ranked[0]] if ranked else None,
            "repeatable": not any(out[i]["tied"] for i in ranked[1:2])}
