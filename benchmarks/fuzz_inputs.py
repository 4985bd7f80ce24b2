"""Hostile and odd inputs, seeded: truncations, byte flips, renamed formats, decompression bombs, symlinks,
odd names (newlines, ANSI escapes, bytes that are not UTF-8), path-traversal names; and the hostile-input
classes: PyTorch archives whose pickles carry code, TensorFlow graphs with file-system ops, weights manifests
that point at devices or declare gigabytes, ONNX graphs with cycles or huge ConstantOfShape / inputs, npz
deflate bombs, FIFOs as data, YAML alias bombs, recipes that try to write or read outside their folder,
out-of-range numbers, and ``-o`` naming an existing folder (which must survive).

Every case runs the real command line (`edgestudio.cli.main`, in this process: one import of the heavy
libraries for thousands of runs) on a file in a folder of its own, and is judged:
- exit code 0 (the input was still a valid model) or 1/2 with exactly one stderr line `error: <file>: ...`
  that names the file (as `display()` shows it) and carries no traceback;
- nothing written anywhere but the case's declared output;
- a hostile input is refused, its payload never runs (its marker file never appears), no case runs past
  CASE_LIMIT_S, and every command is held to the memory budget (BUDGET: past it, the command fails).

    .venv/bin/python benchmarks/fuzz_inputs.py                 # 2000 cases
    .venv/bin/python benchmarks/fuzz_inputs.py --cases 300 --seed 7 --json
The test suite runs a few hundred of them (tests/test_fuzz.py).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SAMPLES = ROOT / "resources" / "samples"
Case = tuple[str, Path, list[str]]  # (kind, the input, extra CLI args)

ODD_NAMES = ["new\nline", "esc\x1b[31mred", "tab\there", os.fsdecode(b"bytes\xff\xfe"), "..", "...", "-dash",
             "sp ace", "quote'\"", "ünïcødé", "a" * 200]


def _seeds(work: Path) -> dict[str, Path]:
    import openvino as ov

    ir = work / "seed_ir" / "digits.xml"
    ir.parent.mkdir()
    ov.save_model(ov.convert_model(str(SAMPLES / "digits_cnn.onnx")), str(ir), compress_to_fp16=False)
    tfjs = work / "seed_tfjs"
    tfjs.mkdir()
    (tfjs / "model.json").write_text(json.dumps({
        "format": "graph-model", "modelTopology": {"node": [
            {"name": "x", "op": "Placeholder", "attr": {"shape": {"shape": {"dim": [{"size": "1"}, {"size": "4"}]}}}},
            {"name": "w", "op": "Const"}, {"name": "y", "op": "MatMul", "input": ["x", "w"]}]},
        "weightsManifest": [{"paths": ["group1-shard1of1.bin"], "weights": [
            {"name": "w", "shape": [4, 2], "dtype": "float32"}]}]}))
    (tfjs / "group1-shard1of1.bin").write_bytes(bytes(32))
    import numpy as np

    with zipfile.ZipFile(work / "seed_bomb.npz", "w", zipfile.ZIP_DEFLATED) as z, \
            z.open("x.npy", "w", force_zip64=True) as f:
        np.lib.format.write_array(f, np.zeros((160, 1024, 1024), np.float32))  # 640 MB of zeros in ~0.6 MB
    return {"onnx": SAMPLES / "digits_cnn.onnx", "tflite": SAMPLES / "digits_cnn.tflite",
            "keras": SAMPLES / "digits_cnn.keras", "savedmodel": SAMPLES / "digits_cnn_savedmodel", "ir": ir,
            "tfjs": tfjs, "npz_bomb": work / "seed_bomb.npz"}


def _copy(src: Path, dst: Path) -> Path:
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy(src, dst)
        if src.suffix == ".xml":
            shutil.copy(src.with_suffix(".bin"), dst.with_suffix(".bin"))
    return dst


def make_cases(seed: int, n: int, work: Path) -> list[Case]:
    """``n`` cases, the same for the same seed."""
    rng = random.Random(seed)
    seeds = _seeds(work)
    files = {k: v for k, v in seeds.items() if v.is_file() and k != "npz_bomb"}
    makers: list[tuple[str, Callable[[Path], Case]]] = []

    def truncate(d: Path) -> Case:
        kind, src = rng.choice(list(files.items()))
        data = src.read_bytes()
        out = d / f"trunc{src.suffix}"
        out.write_bytes(data[: rng.randrange(0, max(1, len(data)))])
        if src.suffix == ".xml":
            shutil.copy(src.with_suffix(".bin"), out.with_suffix(".bin"))
        return ("truncate", out, [])

    def flip(d: Path) -> Case:
        kind, src = rng.choice(list(files.items()))
        data = bytearray(src.read_bytes())
        for _ in range(rng.choice([1, 2, 8, 64])):
            i = rng.randrange(len(data))
            data[i] = rng.randrange(256)
        out = d / f"flip{src.suffix}"
        out.write_bytes(bytes(data))
        if src.suffix == ".xml":
            shutil.copy(src.with_suffix(".bin"), out.with_suffix(".bin"))
        return ("flip", out, [])

    def rename(d: Path) -> Case:
        kind, src = rng.choice(list(files.items()))
        suffix = rng.choice([".onnx", ".tflite", ".keras", ".h5", ".xml", ".ort", ".pb", ".json", ""])
        return ("rename", _copy(src, d / f"renamed{suffix}") if suffix != ".xml" or src.suffix == ".xml"
                else Path(shutil.copy(src, d / "renamed.xml")), [])

    def bomb(d: Path) -> Case:
        out = d / "bomb.keras"
        member = rng.choice(["config.json", "model.weights.h5"])
        with zipfile.ZipFile(SAMPLES / "digits_cnn.keras") as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            for item in zin.infolist():
                data = zin.read(item.filename)
                if item.filename == member:
                    # padding that compresses ~1000x: the member unpacks to 100x more than the archive holds
                    data = data + b" " * (rng.choice([2 << 20, 8 << 20]) if member == "config.json" else 96 << 20)
                z.writestr(item.filename, data)
        return ("bomb", out, [])

    def symlink(d: Path) -> Case:
        folder = _copy(seeds[rng.choice(["savedmodel", "tfjs"])], d / "linked")
        target = rng.choice(["/dev/zero", "/etc/hostname", str(d.parent), "missing-target"])
        where = folder / rng.choice(["variables/zero", "assets_x", "link"])
        where.parent.mkdir(exist_ok=True)
        where.symlink_to(target)
        return ("symlink", folder, [])

    def odd_name(d: Path) -> Case:
        kind, src = rng.choice([(k, v) for k, v in seeds.items() if k != "npz_bomb"])
        name = rng.choice(ODD_NAMES) + (src.suffix if src.is_file() else "")
        if name == "..":  # a folder cannot be called that
            name = "..model"
        return ("odd-name", _copy(src, d / name), [])

    def traversal_package(d: Path) -> Case:
        name = rng.choice(["..onnx", "...onnx", "..tflite", ".hidden.onnx"])
        src = SAMPLES / ("digits_cnn.tflite" if name.endswith(".tflite") else "digits_cnn.onnx")
        model = _copy(src, d / name)
        return ("package-name", model, ["package", "--iterations", "2", "-o", str(d / "out" / "pkg.zip")])

    hostile = _hostile_makers(rng, seeds)
    makers = [("truncate", truncate), ("flip", flip), ("rename", rename), ("bomb", bomb), ("symlink", symlink),
              ("odd-name", odd_name), ("package-name", traversal_package), *hostile]
    weights = [30, 30, 12, 4, 8, 12, 4, *([3] * len(hostile))]
    cases = []
    for i in range(n):
        d = work / f"case{i:05d}"
        d.mkdir()
        name, maker = rng.choices(makers, weights)[0]
        cases.append(maker(d))
    return cases


# ------------------------------------------------------------------------------ the hostile-input classes
#: kinds whose every case must be refused (exit 1 or 2), whose marker file must never appear, and which must
#: stay under the memory budget the fuzz run sets
MUST_FAIL = {"payload", "tf-ops", "manifest", "onnx-bomb", "npz-bomb", "fifo", "yaml-bomb", "recipe-escape",
             "number"}
MARKER = "PWNED"
ESCAPE = Path(tempfile.gettempdir()) / "edgestudio-fuzz-escape"
CASE_LIMIT_S = 120
#: the budget the fuzz run holds every command to (the CLI's own process and its workers)
BUDGET = "4G"


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def _pt2_zip(path: Path, sample: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("m/archive_format", "pt2")
        z.writestr("m/models/model.json", "{}")
        z.writestr("m/data/weights/model_weights_config.json", json.dumps({"config": {}}))
        z.writestr("m/data/sample_inputs/model.pt", sample)
    return path


def _tfjs(folder: Path, nodes: list[dict], manifest: list[dict]) -> Path:  # type: ignore[type-arg]
    folder.mkdir()
    (folder / "model.json").write_text(json.dumps({"format": "graph-model", "modelTopology": {"node": [
        {"name": "x", "op": "Placeholder"}, {"name": "w", "op": "Const"}, *nodes]}, "weightsManifest": manifest}))
    return folder


def _hostile_makers(rng: random.Random, seeds: dict[str, Path]) -> list[tuple[str, Callable[[Path], Case]]]:
    import pickle

    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def out_args(d: Path, cmd: str) -> list[str]:
        return {"package": ["-o", str(d / "out" / "p.zip")], "import": ["--workspace", str(d / "out_ws")]}.get(cmd, [])

    def payload(d: Path) -> Case:
        evil = pickle.dumps(_Payload(d / MARKER), protocol=rng.choice([2, 4]))
        how = rng.choice(["raw", "nested", "torchscript"])
        if how == "torchscript":
            model = d / "evil.pt"
            with zipfile.ZipFile(model, "w") as z:
                z.writestr("m/code/__torch__.py", "class M:\n  pass\n")
                z.writestr("m/constants.pkl", pickle.dumps((), protocol=2))
                z.writestr("m/data.pkl", evil)
        else:
            if how == "nested":
                buf = io.BytesIO()
                with zipfile.ZipFile(buf, "w") as z:
                    z.writestr("archive/data.pkl", evil)
                evil = buf.getvalue()
            model = _pt2_zip(d / "evil.pt2", evil)
        cmd = rng.choice(["inspect", "bench", "import", "package"])
        return ("payload", model, [cmd, *out_args(d, cmd)])

    def tf_ops(d: Path) -> Case:
        op = rng.choice(["ReadFile", "WriteFile", "MatchingFiles", "PyFunc", "EagerPyFunc", "ImmutableConst"])
        folder = _tfjs(d / "ops_tfjs", [{"name": "r", "op": op, "input": ["w"]}], [])
        cmd = rng.choice(["inspect", "bench", "import", "package"])
        return ("tf-ops", folder, [cmd, *out_args(d, cmd)] + (["--runtime", "tfjs-graph"] if cmd == "bench" else []))

    def manifest(d: Path) -> Case:
        how = rng.choice(["device", "traversal", "link", "huge", "sparse"])
        shard = {"device": "/dev/zero", "traversal": "../../../../etc/hostname"}.get(how, "s.bin")
        shape = [1024, 1024, 1024] if how in ("device", "huge", "link") else [4, 2]
        folder = _tfjs(d / "m_tfjs", [{"name": "y", "op": "MatMul", "input": ["x", "w"]}],
                       [{"paths": [shard], "weights": [{"name": "w", "shape": shape, "dtype": "float32"}]}])
        if how == "link":
            (folder / "s.bin").symlink_to("/dev/zero")
        elif how == "huge":
            (folder / "s.bin").write_bytes(bytes(32))
        elif how == "sparse":
            with open(folder / "s.bin", "wb") as fh:
                fh.truncate(8 << 30)
        cmd = rng.choice(["inspect", "bench", "import", "package"])
        return ("manifest", folder, [cmd, *out_args(d, cmd)] + (["--runtime", "tfjs-graph"] if cmd == "bench" else []))

    def onnx_bomb(d: Path) -> Case:
        how = rng.choice(["cycle", "constantofshape", "input"])
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [768, 1024, 1024] if how == "input" else [1])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
        inits = []
        if how == "cycle":
            nodes = [helper.make_node("Relu", ["y"], ["z"]), helper.make_node("Relu", ["z"], ["y"])]
        elif how == "constantofshape":
            inits = [numpy_helper.from_array(np.array([rng.choice([3, 6]), 1024, 1024, 256], np.int64), "s")]
            nodes = [helper.make_node("ConstantOfShape", ["s"], ["c"]), helper.make_node("Add", ["x", "c"], ["y"])]
        else:
            nodes = [helper.make_node("Relu", ["x"], ["y"])]
        model = d / f"{how}.onnx"
        onnx.save(helper.make_model(helper.make_graph(nodes, how, [x], [y], initializer=inits),
                                    opset_imports=[helper.make_opsetid("", 17)]), str(model))
        cmd = rng.choice([["bench"], ["convert", "--to", "openvino", "-o", str(d / "out" / "m.xml")],
                          ["convert", "--to", "tflite", "-o", str(d / "out" / "m.tflite")], ["profile"]])
        return ("onnx-bomb", model, cmd)

    def npz_bomb(d: Path) -> Case:
        data = _copy(seeds["npz_bomb"], d / "data.npz")
        flag = rng.choice([["bench", "--input"], ["eval", "--dataset"], ["optimize", "--method", "int8-static",
                                                                          "--runtime", "onnxruntime", "--calibration"]])
        model = _copy(seeds["onnx"], d / "m.onnx")
        extra = ["-o", str(d / "out" / "q.onnx")] if flag[0] == "optimize" else []
        return ("npz-bomb", model, [*flag, str(data), *extra])

    def fifo(d: Path) -> Case:
        f = d / rng.choice(["data.npz", "r.yaml"])
        os.mkfifo(f)
        if f.suffix == ".yaml":
            return ("fifo", f, [rng.choice(["run", "sweep"])])
        model = _copy(seeds["onnx"], d / "m.onnx")
        flag = rng.choice([["bench", "--input"], ["eval", "--dataset"], ["optimize", "--method", "int8-static",
                                                                          "--runtime", "onnxruntime", "--calibration"]])
        return ("fifo", model, [*flag, str(f)])

    def yaml_bomb(d: Path) -> Case:
        lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
        for i, name in enumerate("bcdefgh"[: rng.choice([5, 6, 7])]):
            lines.append(f"{name}: &{name} [" + ",".join([f"*{'abcdefgh'[i]}"] * 9) + "]")
        f = d / "bomb.yaml"
        f.write_text("\n".join(lines) + "\n")
        return ("yaml-bomb", f, [rng.choice(["run", "sweep"])])

    def recipe_escape(d: Path) -> Case:
        _copy(seeds["onnx"], d / "m.onnx")
        how = rng.choice(["id", "absolute", "dotdot"])
        step = "{id: ov, convert: {from: model, to: openvino}}"
        if how == "id":
            body = f"model: m.onnx\nsteps:\n- {{id: \"z/../../../../../{ESCAPE.relative_to('/')}\", convert: {{from: model, to: openvino}}}}\n"
        elif how == "absolute":
            body = f"model: {d / 'm.onnx'}\nsteps:\n- {step}\n"
        else:
            body = f"model: ../{d.name}/m.onnx\ninputs: {{data: ../../etc/hostname}}\nsteps:\n- {step}\n"
        f = d / "r.yaml"
        f.write_text("edgestudio_recipe: 1\n" + body)
        return ("recipe-escape", f, ["run", "--out", str(d / "out")])

    def number(d: Path) -> Case:
        model = _copy(seeds["onnx"], d / "m.onnx")
        cmd = rng.choice([["bench", "--threads", "100000"], ["bench", "--iterations", "-5"],
                          ["bench", "--warmup", "10000000000"], ["debug", "--parent", str(model), "--samples", "100000000"],
                          ["profile", "--runs", "0"], ["compare", "--threads", "1,100000"], ["bench", "--duration", "inf"]])
        return ("number", model, cmd)

    def out_dir(d: Path) -> Case:
        out = d / "out"
        out.mkdir()
        (out / "keep.txt").write_text("mine")
        model = _copy(seeds["onnx"], d / "m.onnx")
        cmd = rng.choice([["package", "--iterations", "2"], ["convert", "--to", "ort"],
                          ["optimize", "--method", "fp16", "--runtime", "onnxruntime"]])
        return ("out-dir", model, [*cmd, "-o", str(out)])

    return [("payload", payload), ("tf-ops", tf_ops), ("manifest", manifest), ("onnx-bomb", onnx_bomb),
            ("npz-bomb", npz_bomb), ("fifo", fifo), ("yaml-bomb", yaml_bomb), ("recipe-escape", recipe_escape),
            ("number", number), ("out-dir", out_dir)]


def _listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def run_case(case: Case, work: Path) -> dict[str, object]:
    from edgestudio.cli import main
    from edgestudio.core.errors import display

    kind, path, extra = case
    cmd = extra[0] if extra else "inspect"
    argv = [cmd, str(path), *extra[1:]]
    case_dir = path.parent
    before_work = {p.name for p in work.iterdir()}
    before_case = _listing(case_dir)
    # a file, not a pipe: multiprocessing's resource tracker keeps a copy of stderr open for good
    err_file = tempfile.TemporaryFile()
    saved = os.dup(2)
    os.dup2(err_file.fileno(), 2)
    out = io.StringIO()
    t0 = time.perf_counter()
    real_stderr = sys.stderr
    sys.stderr = os.fdopen(os.dup(2), "w", buffering=1)
    def too_long(signum, frame):  # type: ignore[no-untyped-def]
        raise TimeoutError

    signal.signal(signal.SIGALRM, too_long)
    signal.alarm(CASE_LIMIT_S)
    try:
        with redirect_stdout(out):
            rc = main(argv)
    except SystemExit as exc:
        rc = int(exc.code or 0)
    except TimeoutError:
        rc = -1
    finally:
        signal.alarm(0)
        sys.stderr.flush()
        sys.stderr.close()
        sys.stderr = real_stderr
        os.dup2(saved, 2)
        os.close(saved)
    err_file.seek(0)
    stderr = err_file.read().decode("utf-8", "replace")
    err_file.close()
    secs = time.perf_counter() - t0
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    problems = []
    if rc == -1:
        problems.append(f"ran past {CASE_LIMIT_S} s")
    elif rc not in (0, 1, 2):
        problems.append(f"exit code {rc}")
    if rc != 0:
        # the model, or the data file / output the error is about
        named = any(display(Path(a).name) in stderr for a in argv[1:] if "/" in a or a == str(path))
        if len(lines) != 1 or not lines[0].startswith("error: "):
            problems.append(f"{len(lines)} stderr lines")
        if not named:
            problems.append("the error does not name the file")
    elif lines:
        problems.append(f"stderr on success: {lines[0][:80]}")
    if "Traceback" in stderr:
        problems.append("traceback")
    if kind in MUST_FAIL and rc == 0:
        problems.append("a hostile input was accepted")
    if any(p.name == MARKER for p in work.rglob(MARKER)):
        problems.append("its payload ran (the marker file appeared)")
    if ESCAPE.exists():
        problems.append(f"wrote outside through a recipe: {ESCAPE}")
        shutil.rmtree(ESCAPE, ignore_errors=True)
    if kind == "out-dir" and (rc != 0 or (case_dir / "out" / "keep.txt").read_text() != "mine"):
        problems.append("-o naming a folder failed or touched what the folder held")
    new_work = {p.name for p in work.iterdir()} - before_work
    if new_work:
        problems.append(f"wrote outside its folder: {sorted(new_work)}")
    allowed_out = {p for p in _listing(case_dir) - before_case if p.startswith("out")}
    stray = _listing(case_dir) - before_case - allowed_out
    if stray:
        problems.append(f"wrote beside the input: {sorted(stray)[:3]}")
    for p in allowed_out:
        if p.endswith(".zip"):
            with zipfile.ZipFile(case_dir / p) as z:
                bad = [e for e in z.namelist() if e.startswith(("/", "..")) or "/../" in e or "\\" in e]
                if bad or len({e.split("/")[0] for e in z.namelist()}) != 1:
                    problems.append(f"zip entries outside one top folder: {z.namelist()[:3]}")
    return {"kind": kind, "argv": [display(a) for a in argv], "rc": rc, "stderr": lines[:3], "seconds": round(secs, 3),
            "problems": problems}


def run(seed: int, n: int) -> list[dict[str, object]]:
    os.environ.setdefault("EDGESTUDIO_MEMORY_BUDGET", BUDGET)
    from edgestudio.core.loaders import quiet_tensorflow

    quiet_tensorflow()
    with tempfile.TemporaryDirectory(prefix="edgestudio-fuzz-") as tmp:
        work = Path(tmp)
        cases = make_cases(seed, n, work)
        return [run_case(c, work) for c in cases]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    results = run(args.seed, args.cases)
    bad = [r for r in results if r["problems"]]
    if args.json:
        print(json.dumps({"cases": len(results), "bad": bad, "seconds": round(time.perf_counter() - t0, 1),
                          "by_kind": _by_kind(results)}))
    else:
        for kind, counts in sorted(_by_kind(results).items()):
            print(f"{kind:<14} {counts['cases']:>5} cases  rc0 {counts['rc0']:>5}  rc1/2 {counts['rc12']:>5}  bad {counts['bad']}")
        for r in bad[:20]:
            print("BAD", r)
        print(f"{len(results)} cases, {len(bad)} with problems, {time.perf_counter() - t0:.0f} s")
    return 1 if bad else 0


def _by_kind(results: list[dict[str, object]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for r in results:
        c = out.setdefault(str(r["kind"]), {"cases": 0, "rc0": 0, "rc12": 0, "bad": 0})
        c["cases"] += 1
        c["rc0" if r["rc"] == 0 else "rc12"] += 1
        c["bad"] += bool(r["problems"])
    return out


if __name__ == "__main__":
    raise SystemExit(main())
