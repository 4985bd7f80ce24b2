"""Build a deployment package: a zip with the model, a standalone runner for one runtime, requirements
pinned to that runtime only, a sample input with EdgeStudio's output for it, the benchmark and accuracy
report (Markdown + JSON), the lineage with every tool's version, and optionally TFLite Micro C sources."""

from __future__ import annotations

import ast
import contextlib
import errno
import importlib.metadata
import json
import os
import platform
import re
import shutil
import stat
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgestudio import __version__
from edgestudio.core.errors import EdgeStudioError, ModelFormatError, UsageError, clean_message, display
from edgestudio.core.formats import ModelFormat, detect_format
from edgestudio.core.inputspec import InputSpec
from edgestudio.core.progress import CancelToken, ProgressCallback, noop_progress
from edgestudio.core.safety import member_file
from edgestudio.core.model_files import hash_model


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
"""Run this package's model: one inference on an input, its latency, its output.

    pip install -r requirements.txt
    python run.py                       # runs input.npy, prints latency and the top class
    python run.py --input x.npy --output y.npy --runs 100

Made by EdgeStudio. The model's file and runtime are read from report.json beside this file (data, never code).
Inputs: a .npy for one input, or a .npz with one array per input name.
"""

import argparse
import json
import os
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "report.json"), encoding="utf-8") as _fh:
    PACKAGE = json.load(_fh)
MODEL = os.path.join(HERE, "model", os.path.basename(PACKAGE["model"]["file"]))
%(loader)s

def read_input(path, names):
    data = np.load(path, allow_pickle=False)
    if isinstance(data, np.ndarray):
        return {names[0]: data}
    return {name: data[name] for name in names}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", default=os.path.join(HERE, "input.npy"))
    ap.add_argument("--output", help="save the first output here (.npy)")
    ap.add_argument("--runs", type=int, default=1, help="timed runs after the first")
    ap.add_argument("--precision", default=None, help="inference precision hint where the runtime has one")
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
    report = {"model": PACKAGE["model"]["file"], "runtime": PACKAGE["runtime"], "load_ms": round(load_ms, 3),
              "first_inference_ms": round(first_ms, 3), "output_shape": list(out.shape)}
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
    """The runtime's distributions pinned to the versions that made the package; a local build label (torch's
    ``+cpu``) is dropped: PyPI has no such file (the CPU wheel index does: see the package's README)."""
    pins = []
    for dist in [*_decl(runtime).pip, "numpy"]:
        v = _version(dist)
        pins.append(f"{dist}=={v.split('+', 1)[0]}" if v else dist)
    return pins


def runner_source(loader: str) -> str:
    """``run.py``: the fixed runner around the runtime's ``load`` function. Nothing about the model (its name, its
    files) is pasted into the code: the runner reads them from the package's report.json."""
    source = RUNNER.replace("%(loader)s", loader, 1)
    try:
        ast.parse(source)
    except SyntaxError as exc:  # the runtime's loader (code of EdgeStudio's, not data) is broken
        raise EdgeStudioError(None, f"the generated run.py does not parse ({exc.msg}, line {exc.lineno})") from None
    return source


def build_package(model: str | Path, runtime: str, out_zip: str | Path, *, input_npy: str | Path | None = None,
                  inputs: InputSpec | dict[str, Any] | None = None,
                  dataset: str | None = None, iterations: int = 100, tflm: bool = False,
                  lineage: list[dict[str, Any]] | None = None, progress: ProgressCallback = noop_progress,
                  cancel: CancelToken | None = None) -> dict[str, Any]:
    """Write the package to ``out_zip``; returns its manifest (also stored inside as report.json).

    The format is the one detected from the content, and the packaged model file gets that format's suffix (an
    ONNX model named ``x.json`` is packaged as ``x.onnx``). Every file the model consists of is checked (a regular
    file inside the model's folder: no link, no device) and copied into the package first; the checks, the
    benchmark and the reference output all run on that copy, the exact bytes the package ships."""
    from edgestudio.backends.runtimes import get_runtime
    from edgestudio.bench.latency import BenchConfig, run_benchmark
    from edgestudio.core.inputspec import make_feeds
    from edgestudio.core.inspection import inspect_model

    model = Path(model)
    cancel = cancel or CancelToken()
    decl = _decl(runtime)
    fmt = detect_format(model)
    if fmt.value not in decl.formats:
        native = decl.native[0] if decl.native else ModelFormat.ONNX.value  # its own format (the catalog's)
        raise EdgeStudioError(model, f"{runtime} does not run {fmt.label} models; convert it first "
                                     f"(edgestudio convert --to {native})")
    if tflm and fmt is not ModelFormat.TFLITE:
        raise EdgeStudioError(model, "TFLite Micro export needs a .tflite model")
    loader = get_runtime(runtime).package_loader
    if not loader:
        raise EdgeStudioError(model, f"runtime {runtime} has no standalone runner for packages")
    name = safe_name(model.stem if model.is_file() else model.name)
    packaged = name + fmt.default_suffix  # the model's file name inside the package: sanitized, its real suffix
    files = package_files(model, fmt)  # every file checked before anything reads the model
    with tempfile.TemporaryDirectory(prefix="edgestudio-pkg-") as tmp:
        root = Path(tmp) / name
        (root / "model").mkdir(parents=True)
        staged = copy_package_files(model, fmt, files, root / "model", name)
        with naming_the_model(model, staged):
            progress(0.05, "reading the model")
            info = inspect_model(staged, fmt)
            from edgestudio.backends.runtimes.base import check_precision

            session = get_runtime(runtime).load(staged, precision=check_precision(runtime))
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
            bench = run_benchmark(staged, BenchConfig(runtime=runtime, iterations=iterations, warmup=10, inputs=spec),
                                  cancel=cancel)
            accuracy = None
            if dataset:
                from edgestudio.bench.accuracy import evaluate

                progress(0.6, "measuring accuracy")
                accuracy = evaluate(staged, dataset, runtime=runtime, inputs=spec, cancel=cancel).to_dict()
        cancel.check()
        versions = {"edgestudio": __version__, "python": platform.python_version()}
        for dist in [*decl.pip, "numpy"]:
            versions[dist] = _version(dist) or "unknown"
        for step in lineage or []:
            versions.update((step.get("options") or {}).get("versions") or {})
        manifest: dict[str, Any] = {
            "package": name, "runtime": runtime, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "model": {"file": packaged, "format": fmt.value, "sha256": hash_model(staged, fmt), **{
                k: v for k, v in info.to_dict().items() if k in ("inputs", "outputs", "parameters", "macs", "size_bytes")}},
            "benchmark": {**bench.to_dict(), "model": packaged}, "inputs": _relative_spec(spec), "accuracy": accuracy,
            "requirements": requirements_for(runtime), "versions": versions,
            "lineage": lineage or [{"name": display(model.name), "format": fmt.value, "made_by": "import"}],
        }
        if len(files) > 1:
            manifest["model"]["files"] = sorted(str(f.relative_to(root / "model")) for f in (root / "model").rglob("*")
                                                if f.is_file())
        (root / "run.py").write_text(runner_source(loader))
        (root / "requirements.txt").write_text("\n".join(manifest["requirements"]) + "\n")
        if len(feeds) == 1:
            np.save(root / "input.npy", next(iter(feeds.values())))
        else:
            np.savez(root / "input.npz", **feeds)
        np.save(root / "expected_output.npy", expected)
        if tflm:
            from edgestudio.packaging.tflm import TflmError, verify_tflm
            from edgestudio.packaging.tflm_sources import export_c_array

            progress(0.8, "running the model in TensorFlow Lite Micro (arena search)")
            with naming_the_model(model, staged):
                try:
                    verified = verify_tflm(staged, spec)
                except TflmError as exc:
                    if "not installed" not in exc.cause:
                        raise  # an op TFLM lacks, or a model it cannot run: no package that would fail on the device
                    verified = None
                    manifest.setdefault("warnings", []).append(
                        "TensorFlow Lite Micro is not installed here: the arena in tflm/ is an ESTIMATE "
                        "(pip install tflite-micro to measure it)")
                manifest["tflm"] = export_c_array(staged, root / "tflm", name, verified=verified,
                                                  source_name=model.name)
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


@contextlib.contextmanager
def naming_the_model(model: Path, staged: Path) -> Iterator[None]:
    """Errors about the package's copy of the model name the user's model instead."""
    try:
        yield
    except EdgeStudioError as exc:
        if exc.path is None or Path(exc.path) != staged:
            raise
        try:
            renamed = type(exc)(model, exc.cause.replace(str(staged), display(model.name)), hint=exc.hint)
        except TypeError:  # a subclass with a signature of its own: keep it as it is
            raise exc from None
        raise renamed from None


# ----------------------------------------------------------------------------------------- the model's files
def package_files(model: Path, fmt: ModelFormat) -> list[tuple[Path, str]]:
    """The files a package of ``model`` copies, each with its path inside the packaged model (``""``: the model
    file itself, renamed; ``"*.bin"``: an IR's weights, renamed with it; a relative path: an ONNX model's external
    data file, a file of a SavedModel / TF.js folder, kept as the model names it). Each one is checked
    (:func:`edgestudio.core.safety.member_file`): a regular file (not a link, a device, a FIFO) inside the
    model's folder, else :class:`ModelFormatError` naming the model, the file and the cause."""
    model = Path(model)
    if model.is_dir():
        if fmt is ModelFormat.TFJS:
            return [(member_file(model, "model.json", model, "TF.js model file"), "model.json"), *_tfjs_shards(model)]
        return _folder_files(model)
    st = model.stat()  # the model itself: the path the user gave (a link the user made is followed)
    if not stat.S_ISREG(st.st_mode):
        raise ModelFormatError(model, "not a regular file (a device, FIFO or socket): refusing to package it")
    files: list[tuple[Path, str]] = [(model, "")]
    if fmt is ModelFormat.OPENVINO:
        files.append((member_file(model.parent, model.with_suffix(".bin").name, model, "OpenVINO IR weights file"),
                      "*.bin"))
    elif fmt is ModelFormat.ONNX:
        files += _onnx_external_files(model)
    return files


def copy_package_files(model: Path, fmt: ModelFormat, files: list[tuple[Path, str]], into: Path, name: str) -> Path:
    """Copy checked ``files`` (:func:`package_files`) into ``into`` (the package's model/ folder); returns the
    packaged model's path (``<name><the format's suffix>``; a folder model: ``<name>/``)."""
    if model.is_dir():
        target = into / name
        for src, rel in files:
            copy_regular_file(src, target / rel, model)
        return target
    target = into / (name + fmt.default_suffix)
    for src, rel in files:
        dst = target if rel == "" else target.with_suffix(".bin") if rel == "*.bin" else into / rel
        if dst.exists() or not dst.resolve().is_relative_to(into.resolve()):
            raise ModelFormatError(model, f"{display(rel)} would overwrite {display(dst.name)} in the package "
                                          "(a model file and its data file share a name)")
        copy_regular_file(src, dst, model)
    return target


def _folder_files(folder: Path) -> list[tuple[Path, str]]:
    """Every file of a model folder (a SavedModel, a compiled TVM model), each checked; a linked folder refused."""
    out: list[tuple[Path, str]] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        here = Path(dirpath)
        for d in sorted(dirnames):
            if (here / d).is_symlink():  # os.walk does not enter it: said, not silently left out
                raise ModelFormatError(folder, f"folder {display((here / d).relative_to(folder).as_posix())} is a "
                                               "link: copy the real folder in")
        dirnames.sort()
        for fname in sorted(filenames):
            rel = (here / fname).relative_to(folder).as_posix()
            out.append((member_file(folder, rel, folder, "file"), rel))
    return out


def _tfjs_shards(folder: Path) -> list[tuple[Path, str]]:
    """The weight files a TF.js model.json lists (its weightsManifest paths), checked."""
    manifest = folder / "model.json"
    try:
        doc = json.loads(manifest.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(manifest, f"cannot read the TF.js model.json ({clean_message(exc, 160)})") from None
    out: list[tuple[Path, str]] = []
    groups = doc.get("weightsManifest") if isinstance(doc, dict) else None
    for group in groups if isinstance(groups, list) else []:
        for path in (group.get("paths") or []) if isinstance(group, dict) else []:
            if not isinstance(path, str):
                raise ModelFormatError(folder, f"TF.js weight shard {display(repr(path))} is not a file name")
            if path not in {r for _, r in out}:
                out.append((_member(folder, path, folder, "TF.js weight shard"), path))
    return out


def _onnx_external_files(model: Path) -> list[tuple[Path, str]]:
    """The external data files an ONNX model's tensors point to (initializers, constants, subgraphs), checked."""
    import onnx

    try:
        proto = onnx.load_model(str(model), format="protobuf", load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - the library's parse error: one line naming the file
        raise ModelFormatError(model, f"corrupt ONNX file ({clean_message(exc, 200)})") from None
    locations: list[str] = []
    for t in _onnx_tensors(proto):
        if t.data_location == onnx.TensorProto.EXTERNAL:
            loc = next((e.value for e in t.external_data if e.key == "location"), "")
            if loc not in locations:
                locations.append(loc)
    return [(_member(model.parent, loc, model, "ONNX external data file"), loc) for loc in locations]


def _member(folder: Path, rel: str, model: Path, what: str) -> Path:
    """:func:`member_file`, and a path that stays inside the package too (no ``..`` part, which would put the copy
    beside the package's model/ folder even when the source itself is inside the model's)."""
    if ".." in rel.replace("\\", "/").split("/"):
        raise ModelFormatError(model, f"{what} {display(rel)} leaves the model's folder")
    return member_file(folder, rel, model, what)


def _onnx_tensors(proto: Any) -> Iterator[Any]:
    def graph(g: Any) -> Iterator[Any]:
        yield from g.initializer
        for sp in g.sparse_initializer:
            yield sp.values
            yield sp.indices
        for n in g.node:
            yield from node(n)

    def node(n: Any) -> Iterator[Any]:
        for a in n.attribute:
            if a.HasField("t"):
                yield a.t
            yield from a.tensors
            if a.HasField("sparse_tensor"):
                yield a.sparse_tensor.values
                yield a.sparse_tensor.indices
            for sp in a.sparse_tensors:
                yield sp.values
                yield sp.indices
            if a.HasField("g"):
                yield from graph(a.g)
            for g in a.graphs:
                yield from graph(g)

    yield from graph(proto.graph)
    for f in proto.functions:
        for n in f.node:
            yield from node(n)


def copy_regular_file(src: Path, dst: Path, model: Path) -> None:
    """Copy ``src`` (checked) to ``dst``, opened without following a link and refused unless it is a regular file
    when opened: a file swapped for a link (or a FIFO) after the check is not copied either."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | (getattr(os, "O_NOFOLLOW", 0) if src != model else 0)
    try:
        fd = os.open(src, flags)
    except OSError as exc:
        why = "a symbolic link" if exc.errno == errno.ELOOP else clean_message(exc, 120)
        raise ModelFormatError(src, f"cannot be packaged ({why})") from None
    with os.fdopen(fd, "rb") as fin:
        if not stat.S_ISREG(os.fstat(fin.fileno()).st_mode):
            raise ModelFormatError(src, "not a regular file (a device, FIFO or socket): refusing to package it")
        dst.parent.mkdir(parents=True, exist_ok=True)
        with open(dst, "xb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
    shutil.copystat(src, dst, follow_symlinks=src == model)


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
    lines += ["## Lineage", ""] + [f"{i + 1}. {_md(s.get('name'))} ({_md(s.get('format'))})"
                                   + (f" — {_md(s.get('made_by'))}" if s.get("made_by") else "")
                                   for i, s in enumerate(m["lineage"])]
    lines += ["", "## Versions", ""] + [f"- {_md(k)} {_md(v)}" for k, v in sorted(m["versions"].items())]
    if m.get("tflm"):
        t = m["tflm"]
        lines += ["", "## TensorFlow Lite Micro", "", f"`tflm/{t['source']}`, `tflm/{t['header']}`, `tflm/{t['main']}` "
                  f"(op resolver with exactly: {', '.join(_md(op) for op in t['ops'])})."]
        if t.get("arena_measured"):
            from edgestudio.packaging.tflm import parity_words

            parts = t.get("arena_parts") or {}
            par = t.get("parity") or {}
            lines += [f"- RAM: tensor arena **{t['arena_bytes']:,} bytes**, measured in the TFLM interpreter "
                      f"(head {parts.get('head', 0):,} activations, tail {parts.get('tail', 0):,} persistent) on a "
                      f"{t['measured_on']}; the graph-replay estimate was {t['estimate_bytes']:,}.",
                      f"- Flash: model {t['flash_bytes']:,} bytes (plus the TFLM library and your code).",
                      f"- TFLM vs LiteRT's reference kernels on {par.get('samples')} {'random' if par.get('random_inputs') else 'given'} "
                      f"inputs: {_md(parity_words(par))}."]
            if t.get("resource_variables"):
                lines.append(f"- State: the model keeps {t['resource_variables']} resource variable(s) between "
                             "invokes (a streaming model); `main.cc` creates them in the arena with "
                             "`MicroResourceVariables::Create`, as the measurement did. Call "
                             "`interpreter.Reset()` to start a new stream.")
        else:
            lines += [f"- RAM: tensor arena ESTIMATED at {t['arena_bytes']:,} bytes (TFLM was not run here).",
                      f"- Flash: model {t['model_bytes']:,} bytes."]
    return "\n".join(lines) + "\n"


def _md(value: Any) -> str:
    """Text from the model or the workspace (a file name, an operator's name) as plain Markdown text on one line:
    its control characters shown as escapes, Markdown's punctuation (code fences, links, HTML) backslash-escaped."""
    return re.sub(r"([\\`*_{}\[\]<>()#+!|~&])", r"\\\1", display(str(value)))


def _readme(m: dict[str, Any]) -> str:
    return (f"# {m['package']} for {m['runtime']}\n\n```sh\npython -m venv venv && venv/bin/pip install -r "
            f"requirements.txt\nvenv/bin/python run.py            # runs input.npy\nvenv/bin/python run.py --input "
            f"x.npy --output y.npy --runs 100\n```\n\n`expected_output.npy` is EdgeStudio's output for `input.npy`. "
            f"See report.md for latency and accuracy, lineage.json for how the model was made.\n"
            + _runtime_readme(m))


def _runtime_readme(m: dict[str, Any]) -> str:
    """The runtime's own section (``Runtime.package_readme``: running the package without Python, say)."""
    from edgestudio.backends.runtimes import RUNTIMES

    try:
        text = RUNTIMES.get(m["runtime"]).package_readme
    except Exception:  # noqa: BLE001 - a runtime no longer in the catalog: the generic README only
        return ""
    return text.format(model=(m.get("model") or {}).get("file") or "model") if text else ""


