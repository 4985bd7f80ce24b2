"""Build a deployment package: a zip with the model, a standalone runner for one runtime, requirements
pinned to that runtime only, a sample input with EdgeStudio's output for it, the benchmark and accuracy
report (Markdown + JSON), the lineage with every tool's version, and optionally TFLite Micro C sources."""

from __future__ import annotations

import importlib.metadata
import json
import platform
import re
import shutil
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from edgestudio import __version__
from edgestudio.core.errors import EdgeStudioError, UsageError, clean_message, display
from edgestudio.core.formats import ModelFormat, detect_format
from edgestudio.core.inputspec import InputSpec
from edgestudio.core.progress import CancelToken, ProgressCallback, noop_progress
from edgestudio.core.workspace import hash_model, model_files


def package_runtimes() -> list[str]:
    """Runtimes a deployment package can be made for (from the backend catalog)."""
    from edgestudio.core.catalog import runtime_names

    return runtime_names(packaged=True)


def _decl(runtime: str):  # type: ignore[no-untyped-def]
    from edgestudio.core.catalog import runtime as decl

    d = decl(runtime)
    if d is None or not d.package:
        raise UsageError(None, f"packages are made for {', '.join(package_runtimes())}, not {runtime!r}")
    return d



def default_package_runtime(fmt: ModelFormat) -> str | None:
    """The runtime a model of this format is deployed with by default (its native one, if it packages)."""
    from edgestudio.core.catalog import native_runtime
    from edgestudio.core.catalog import runtime as decl

    rt = native_runtime(fmt.value)
    if rt in package_runtimes():
        return rt
    # no package for the native runtime (TF.js graphs run natively in TensorFlow): the first that packages it
    return next((r for r in package_runtimes() if fmt.value in decl(r).formats), None)



RUNNER = '''#!/usr/bin/env python3
"""Run {model} with {runtime_label}: one inference on an input, its latency, its output.

    pip install -r requirements.txt
    python run.py                       # runs input.npy, prints latency and the top class
    python run.py --input x.npy --output y.npy --runs 100

Made by EdgeStudio {version}. Inputs: a .npy for one input, or a .npz with one array per input name.
"""

import argparse
import json
import os
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "model", "{model}")
{loader}

def read_input(path, names):
    data = np.load(path, allow_pickle=False)
    if isinstance(data, np.ndarray):
        return {{names[0]: data}}
    return {{name: data[name] for name in names}}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", default=os.path.join(HERE, "input.npy"))
    ap.add_argument("--output", help="save the first output here (.npy)")
    ap.add_argument("--runs", type=int, default=1, help="timed runs after the first")
    ap.add_argument("--precision", default={precision!r}, help="inference precision hint where the runtime has one")
    args = ap.parse_args()
    t0 = time.perf_counter()
    names, run = load(MODEL, args.precision)
    load_ms = (time.perf_counter() - t0) * 1e3
    feeds = read_input(args.input, names)
    t0 = time.perf_counter()
    out = np.asarray(run(feeds))
    first_ms = (time.perf_counter() - t0) * 1e3
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        run(feeds)
        times.append((time.perf_counter() - t0) * 1e3)
    if args.output:
        np.save(args.output, out)
    report = {{"model": "{model}", "runtime": "{runtime}", "load_ms": round(load_ms, 3),
              "first_inference_ms": round(first_ms, 3), "output_shape": list(out.shape)}}
    if times:
        report["latency_ms_p50"] = round(float(np.percentile(times, 50)), 4)
    if out.ndim >= 1 and out.shape[-1] > 1:
        report["top1"] = np.asarray(out).reshape(-1, out.shape[-1]).argmax(1).tolist()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
'''


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def requirements_for(runtime: str) -> list[str]:
    pins = []
    for dist in [*_decl(runtime).pip, "numpy"]:
        v = _version(dist)
        pins.append(f"{dist}=={v}" if v else dist)
    return pins


def build_package(model: str | Path, runtime: str, out_zip: str | Path, *, input_npy: str | Path | None = None,
                  inputs: InputSpec | dict[str, Any] | None = None,
                  dataset: str | None = None, iterations: int = 100, tflm: bool = False,
                  lineage: list[dict[str, Any]] | None = None, progress: ProgressCallback = noop_progress,
                  cancel: CancelToken | None = None) -> dict[str, Any]:
    """Write the package to ``out_zip``; returns its manifest (also stored inside as report.json)."""
    from edgestudio.backends.runtimes import get_runtime
    from edgestudio.bench.latency import BenchConfig, run_benchmark
    from edgestudio.core.inputspec import make_feeds
    from edgestudio.core.inspection import inspect_model

    model = Path(model)
    cancel = cancel or CancelToken()
    decl = _decl(runtime)
    fmt = detect_format(model)
    if fmt.value not in decl.formats:
        raise EdgeStudioError(model, f"{runtime} does not run {fmt.label} models; convert it first "
                                     f"(edgestudio convert --to {'tflite' if runtime == 'litert' else 'onnx'})")
    if tflm and fmt is not ModelFormat.TFLITE:
        raise EdgeStudioError(model, "TFLite Micro export needs a .tflite model")
    progress(0.05, "reading the model")
    info = inspect_model(model, fmt)
    from edgestudio.backends.runtimes.base import check_precision

    session = get_runtime(runtime).load(model, precision=check_precision(runtime))
    spec = InputSpec.from_dict(inputs)
    if input_npy:
        spec = spec.merged(InputSpec(data=str(input_npy)))
    # the user's inputs, else random ones of a shape the user fixed: never a made-up 1x1 for a dynamic model
    feeds = make_feeds(session.inputs, spec, count=1, model=model).samples[0]
    try:
        expected = next(iter(session.run(feeds).values()))
    except Exception as exc:
        raise EdgeStudioError(model, f"the model does not run on {runtime} with these inputs "
                                     f"({spec.describe()}): {clean_message(exc, 200)}",
                              hint="give --shape / --value / --input") from None
    cancel.check()
    progress(0.2, f"benchmarking on {runtime}")
    bench = run_benchmark(model, BenchConfig(runtime=runtime, iterations=iterations, warmup=10, inputs=spec),
                          cancel=cancel)
    accuracy = None
    if dataset:
        from edgestudio.bench.accuracy import evaluate

        progress(0.6, "measuring accuracy")
        accuracy = evaluate(model, dataset, runtime=runtime, inputs=spec, cancel=cancel).to_dict()
    cancel.check()
    name = safe_name(model.stem if model.is_file() else model.name)
    packaged = name + model.suffix  # the model's file name inside the package: sanitized like the folder
    versions = {"edgestudio": __version__, "python": platform.python_version()}
    for dist in [*decl.pip, "numpy"]:
        versions[dist] = _version(dist) or "unknown"
    for step in lineage or []:
        versions.update((step.get("options") or {}).get("versions") or {})
    manifest: dict[str, Any] = {
        "package": name, "runtime": runtime, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": {"file": packaged, "format": fmt.value, "sha256": hash_model(model, fmt), **{
            k: v for k, v in info.to_dict().items() if k in ("inputs", "outputs", "parameters", "macs", "size_bytes")}},
        "benchmark": {**bench.to_dict(), "model": packaged}, "inputs": _relative_spec(spec), "accuracy": accuracy, "requirements": requirements_for(runtime),
        "versions": versions, "lineage": lineage or [{"name": display(model.name), "format": fmt.value,
                                                      "made_by": "import"}],
    }
    with tempfile.TemporaryDirectory(prefix="edgestudio-pkg-") as tmp:
        root = Path(tmp) / name
        (root / "model").mkdir(parents=True)
        for f in model_files(model, fmt):  # an IR's .xml and .bin keep one stem
            shutil.copy2(f, root / "model" / (name + f.suffix))
        loader = get_runtime(runtime).package_loader
        if not loader:
            raise EdgeStudioError(model, f"runtime {runtime} has no standalone runner for packages")
        (root / "run.py").write_text(RUNNER.format(model=packaged, runtime=runtime, version=__version__,
                                                   runtime_label=decl.label,
                                                   loader=loader, precision=None))
        (root / "requirements.txt").write_text("\n".join(manifest["requirements"]) + "\n")
        if len(feeds) == 1:
            np.save(root / "input.npy", next(iter(feeds.values())))
        else:
            np.savez(root / "input.npz", **feeds)
        np.save(root / "expected_output.npy", expected)
        if tflm:
            from edgestudio.packaging.tflm import TflmError, export_c_array, verify_tflm

            progress(0.8, "running the model in TensorFlow Lite Micro (arena search)")
            try:
                verified = verify_tflm(model, spec)
            except TflmError as exc:
                if "not installed" not in exc.cause:
                    raise  # an op TFLM lacks, or a model it cannot run: no package that would fail on the device
                verified = None
                manifest.setdefault("warnings", []).append(
                    "TensorFlow Lite Micro is not installed here: the arena in tflm/ is an ESTIMATE "
                    "(pip install tflite-micro to measure it)")
            manifest["tflm"] = export_c_array(model, root / "tflm", name, verified=verified)
        (root / "report.json").write_text(json.dumps(manifest, indent=2, default=str))
        (root / "lineage.json").write_text(json.dumps({"lineage": manifest["lineage"], "versions": versions},
                                                      indent=2, default=str))
        (root / "report.md").write_text(_markdown(manifest))
        (root / "README.md").write_text(_readme(manifest))
        progress(0.9, "writing the zip")
        out = write_package_zip(root, Path(out_zip))
    progress(1.0, "done")
    manifest["output"] = str(out)
    manifest["size_bytes"] = out.stat().st_size
    return manifest


def write_package_zip(root: Path, out_zip: Path) -> Path:
    """Zip the package folder ``root`` (its name is the zip's one top folder; every entry checked)."""
    out_zip.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out_zip, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(root.rglob("*")):
            if f.is_file():
                zf.write(f, zip_entry(f.relative_to(root.parent), root.name))
    return out_zip


def safe_name(stem: str) -> str:
    """A folder/file stem that cannot leave its folder or break generated code: ``..onnx`` -> ``model``."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:64]
    return clean or "model"


def zip_entry(rel: Path, top: str) -> str:
    """A package entry: relative, under the one top folder, no '..' (checked, not assumed)."""
    parts = rel.parts
    if rel.is_absolute() or not parts or parts[0] != top or any(p in ("", ".", "..") for p in parts):
        raise EdgeStudioError(None, f"refusing to write zip entry {display(str(rel))!r} outside {top}/")
    return "/".join(parts)


def _relative_spec(spec: InputSpec) -> dict[str, Any]:
    """The input specification for the report, without the user's absolute paths."""
    d = spec.to_dict()
    if d.get("data"):
        d["data"] = Path(d["data"]).name
    return d


def _markdown(m: dict[str, Any]) -> str:
    b = m["benchmark"]
    lat = b["latency_ms"]
    lines = [f"# {m['package']} on {m['runtime']}", "",
             f"Model `{m['model']['file']}` ({m['model']['format']}, {m['model']['size_bytes']:,} bytes, "
             f"{m['model'].get('parameters') or '?'} parameters), sha256 `{m['model']['sha256'][:16]}…`.", "",
             "## Benchmark", "", "| p50 ms | p90 ms | p99 ms | mean ms | throughput /s | load ms | device | precision |",
             "|---|---|---|---|---|---|---|---|",
             f"| {lat['p50']:.3f} | {lat['p90']:.3f} | {lat['p99']:.3f} | {lat['mean']:.3f} | {b['throughput_fps']:.0f} | "
             f"{b['load_ms']:.0f} | {b['device']} | {b.get('precision') or 'default'} |", ""]
    if m.get("accuracy"):
        a = m["accuracy"]
        lines += ["## Accuracy", "", f"top-1 {a['top1']:.4f}" + (f", top-5 {a['top5']:.4f}" if a.get("top5") else "")
                  + f" on {a['n']} samples.", ""]
    lines += ["## Lineage", ""] + [f"{i + 1}. {s.get('name')} ({s.get('format')})"
                                   + (f" — {s.get('made_by')}" if s.get("made_by") else "") for i, s in enumerate(m["lineage"])]
    lines += ["", "## Versions", ""] + [f"- {k} {v}" for k, v in sorted(m["versions"].items())]
    if m.get("tflm"):
        t = m["tflm"]
        lines += ["", "## TensorFlow Lite Micro", "", f"`tflm/{t['source']}`, `tflm/{t['header']}`, `tflm/{t['main']}` "
                  f"(op resolver with exactly: {', '.join(t['ops'])})."]
        if t.get("arena_measured"):
            parts = t.get("arena_parts") or {}
            par = t.get("parity") or {}
            lines += [f"- RAM: tensor arena **{t['arena_bytes']:,} bytes**, measured in the TFLM interpreter "
                      f"(head {parts.get('head', 0):,} activations, tail {parts.get('tail', 0):,} persistent) on a "
                      f"{t['measured_on']}; the graph-replay estimate was {t['estimate_bytes']:,}.",
                      f"- Flash: model {t['flash_bytes']:,} bytes (plus the TFLM library and your code).",
                      f"- TFLM vs LiteRT on {par.get('samples')} {'random' if par.get('random_inputs') else 'given'} "
                      f"inputs: {par.get('verdict')} (max abs diff {par.get('max_abs_diff'):.3g}, cosine "
                      f"{par.get('cosine')})."]
        else:
            lines += [f"- RAM: tensor arena ESTIMATED at {t['arena_bytes']:,} bytes (TFLM was not run here).",
                      f"- Flash: model {t['model_bytes']:,} bytes."]
    return "\n".join(lines) + "\n"


def _readme(m: dict[str, Any]) -> str:
    return (f"# {m['package']} for {m['runtime']}\n\n```sh\npython -m venv venv && venv/bin/pip install -r "
            f"requirements.txt\nvenv/bin/python run.py            # runs input.npy\nvenv/bin/python run.py --input "
            f"x.npy --output y.npy --runs 100\n```\n\n`expected_output.npy` is EdgeStudio's output for `input.npy`. "
            f"See report.md for latency and accuracy, lineage.json for how the model was made.\n")
