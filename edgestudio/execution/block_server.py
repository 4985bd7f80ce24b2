"""Timed blocks in another Python environment, for a paired round: a process of the environment loads one variant
and, on each request, times a block of runs and answers with the latencies. The paired round alternates these
blocks with its own (only one process runs at a time), so a runtime that lives in its own environment (TVM) is
ranked beside the others on the same footing: same warm-up rule, same timed loop, same block sizes.

Protocol: JSON lines on stdin/stdout. ``{"load": {model, runtime, device, threads, precision, inputs}}`` ->
``{"ok": true, "threads", "warmup_runs", "steady"}`` or ``{"error"}``; ``{"block": n}`` -> ``{"ms": [...]}``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import numpy as np


class EnvBlocks:
    """The paired round's handle on a variant measured in environment ``env``."""

    def __init__(self, env: str, variant: dict[str, Any], warmup: int) -> None:
        from edgestudio.execution.envs import _env_vars, get_env

        info = get_env(env)
        from edgestudio.core.process import helper_command

        self.proc = subprocess.Popen(helper_command("edgestudio.execution.block_server", info.python), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     env=_env_vars(env))
        answer = self._ask({"load": {**variant, "warmup": warmup}})
        if "error" in answer:
            self.close()
            raise RuntimeError(answer["error"])
        self.facts = answer

    def _ask(self, msg: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the environment's process ended (exit code {self.proc.poll()})")
        return json.loads(line)  # type: ignore[no-any-return]

    def block(self, n: int) -> np.ndarray:
        return np.asarray(self._ask({"block": int(n)})["ms"], dtype=np.float64)

    def close(self) -> None:
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
            self.proc.wait(10)
        except Exception:  # noqa: BLE001
            self.proc.kill()


def paired_benchmark(variants: list[dict[str, Any]], *, blocks: int = 6, block: int = 50, warmup: int = 10,
                     progress: Any = None, cancel: Any = None) -> dict[str, Any]:
    """The paired round of :mod:`edgestudio.bench.paired`, with the variants of other Python environments (TVM)
    timed block by block in their environment's process."""
    from edgestudio.bench.paired import paired_benchmark as paired
    from edgestudio.core.progress import noop_progress

    return paired(variants, blocks=blocks, block=block, warmup=warmup, progress=progress or noop_progress,
                  cancel=cancel, elsewhere=EnvBlocks)


def paired_job(rows: list[dict[str, Any]], *, blocks: int = 6, block: int = 50) -> Any:
    """The job of a comparison's final round: every measured local row again, all loaded at once and timed in
    alternating blocks (:func:`paired_benchmark`); None when fewer than two rows can take part."""
    from edgestudio.bench.paired import pairable
    from edgestudio.core.jobs import JobKind, JobSpec

    variants = [{"model": r["model"], "runtime": r["runtime"], "device": r.get("device") or "CPU",
                 "inputs": r.get("inputs") or {}, **({"threads": r["threads"]} if r.get("threads_asked") else {})}
                for r in rows
                if r.get("p50_ms") is not None and pairable(r["runtime"], r.get("device"))]
    if len(variants) < 2:
        return None
    return JobSpec(JobKind.CALL, exclusive=True, options={
        "function": f"{__name__}:paired_benchmark",  # other envs too
        "kwargs": {"variants": variants, "blocks": blocks, "block": block}})


def main() -> None:
    from edgestudio.backends.runtimes import get_runtime
    from edgestudio.backends.runtimes.base import timed_loop, warm_up
    from edgestudio.bench.inputs import make_inputs
    from edgestudio.core.errors import describe_exception
    from edgestudio.core.inputspec import InputSpec
    from edgestudio.core.machine import default_threads

    call = None
    for line in sys.stdin:
        msg = json.loads(line)
        try:
            if "load" in msg:
                v = msg["load"]
                threads = v.get("threads") or default_threads()
                session = get_runtime(v["runtime"]).load(v["model"], device=v.get("device") or "CPU", threads=threads,
                                                         precision=v.get("precision"))
                feeds = make_inputs(session.inputs, InputSpec.from_dict(v.get("inputs") or {}), model=str(v["model"]))
                call = session.bind(feeds)
                call()
                runs, steady = warm_up(call, int(v.get("warmup", 10)))
                answer: dict[str, Any] = {"ok": True, "threads": threads, "warmup_runs": runs, "steady": steady}
            elif "block" in msg and call is not None:
                answer = {"ms": timed_loop(call, int(msg["block"])).tolist()}
            else:
                answer = {"error": "nothing loaded"}
        except Exception as exc:  # noqa: BLE001 - one line back, never a traceback
            answer = {"error": describe_exception(exc, (msg.get("load") or {}).get("model"))}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
