"""Hostile and odd inputs, seeded: truncations, byte flips, renamed formats, decompression bombs, symlinks,
odd names (newlines, ANSI escapes, bytes that are not UTF-8), path-traversal names.

Every case runs the real command line (`edgestudio.cli.main`, in this process: one import of the heavy
libraries for thousands of runs) on a file in a folder of its own, and is judged:
- exit code 0 (the input was still a valid model) or 1/2 with exactly one stderr line `error: <file>: ...`
  that names the file (as `display()` shows it) and carries no traceback;
- nothing written anywhere but the case's declared output.

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
    return {"onnx": SAMPLES / "digits_cnn.onnx", "tflite": SAMPLES / "digits_cnn.tflite",
            "keras": SAMPLES / "digits_cnn.keras", "savedmodel": SAMPLES / "digits_cnn_savedmodel", "ir": ir,
            "tfjs": tfjs}


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
    files = {k: v for k, v in seeds.items() if v.is_file()}
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
        kind, src = rng.choice(list(seeds.items()))
        name = rng.choice(ODD_NAMES) + (src.suffix if src.is_file() else "")
        if name == "..":  # a folder cannot be called that
            name = "..model"
        return ("odd-name", _copy(src, d / name), [])

    def traversal_package(d: Path) -> Case:
        name = rng.choice(["..onnx", "...onnx", "..tflite", ".hidden.onnx"])
        src = SAMPLES / ("digits_cnn.tflite" if name.endswith(".tflite") else "digits_cnn.onnx")
        model = _copy(src, d / name)
        return ("package-name", model, ["package", "--iterations", "2", "-o", str(d / "out" / "pkg.zip")])

    makers = [("truncate", truncate), ("flip", flip), ("rename", rename), ("bomb", bomb), ("symlink", symlink),
              ("odd-name", odd_name), ("package-name", traversal_package)]
    weights = [30, 30, 12, 4, 8, 12, 4]
    cases = []
    for i in range(n):
        d = work / f"case{i:05d}"
        d.mkdir()
        name, maker = rng.choices(makers, weights)[0]
        cases.append(maker(d))
    return cases


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
    try:
        with redirect_stdout(out):
            rc = main(argv)
    except SystemExit as exc:
        rc = int(exc.code or 0)
    finally:
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
    if rc not in (0, 1, 2):
        problems.append(f"exit code {rc}")
    if rc != 0:
        named = display(path.name) in stderr or display(str(path)) in stderr
        if len(lines) != 1 or not lines[0].startswith("error: "):
            problems.append(f"{len(lines)} stderr lines")
        if not named:
            problems.append("the error does not name the file")
    elif lines:
        problems.append(f"stderr on success: {lines[0][:80]}")
    if "Traceback" in stderr:
        problems.append("traceback")
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
