"""Sweeps: models x runtimes x devices x thread counts, from a small YAML (or JSON) file, as typed benchmark (and
accuracy) requests any executor can run: the local pool, or Ray when the grid outgrows one machine.

    models: [a.onnx, b.tflite]          # paths relative to the file
    runtimes: [onnxruntime, openvino, litert]   # each applies to the models whose format it runs
    devices: [CPU]                      # optional
    threads: [1, 2]                     # optional: a thread sweep
    iterations: 100                     # optional
    dataset: test.npz                   # optional: adds top-1 per config
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgestudio.core.errors import UsageError
from edgestudio.core.formats import detect_format
from edgestudio.core.jobs import JobKind, JobSpec
from edgestudio.core.modelinfo import model_size_bytes

KEYS = {"models", "runtimes", "devices", "threads", "iterations", "warmup", "dataset", "inputs"}


def load_config(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    from edgestudio.core.safety import load_yaml

    data = load_yaml(path, "sweep file")
    if not isinstance(data, dict) or not data.get("models"):
        raise UsageError(path, "a sweep file needs at least `models:` (a list of model paths)")
    unknown = set(data) - KEYS
    if unknown:
        raise UsageError(path, f"unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(KEYS))})")
    base = path.parent
    data["models"] = [str((base / m).resolve()) for m in data["models"]]
    if data.get("dataset"):
        data["dataset"] = str((base / data["dataset"]).resolve())
    for m in data["models"]:
        if not Path(m).exists():
            raise UsageError(path, f"model {m}: no such file or folder")
    return data


def sweep_plan(config: dict[str, Any]) -> list[tuple[dict[str, Any], list[JobSpec]]]:
    """One row per (model, runtime, device, threads) the runtime can run, with its jobs."""
    from edgestudio.backends.runtimes import runtime_for_format
    from edgestudio.bench.compare import runs_format

    out = []
    for model in config["models"]:
        fmt = detect_format(model)
        for rt in config.get("runtimes") or [runtime_for_format(fmt)]:
            if not runs_format(rt, fmt):
                continue
            for device in config.get("devices") or ["CPU"]:
                for threads in config.get("threads") or [None]:
                    row = {"model": model, "format": fmt.value, "runtime": rt, "device": device, "threads": threads,
                           "error": None, "inputs": dict(config.get("inputs") or {}),
                           "size_bytes": model_size_bytes(Path(model), fmt)}
                    specs = [JobSpec(JobKind.BENCH, model=model, runtime=rt, device=device, options={
                        "iterations": int(config.get("iterations", 100)), "warmup": int(config.get("warmup", 10)),
                        "threads": threads, "keep_samples": False, "inputs": row["inputs"]})]
                    if config.get("dataset"):
                        specs.append(JobSpec(JobKind.EVAL, model=model, runtime=rt, device=device,
                                             options={"dataset": config["dataset"], "inputs": row["inputs"]}))
                    out.append((row, specs))
    if not out:
        raise UsageError(None, "the sweep has no configuration a listed runtime can run")
    return out
