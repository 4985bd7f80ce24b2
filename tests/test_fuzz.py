"""Hostile and odd inputs: a seeded fuzz run of 80 cases (250 when slow; benchmarks/fuzz_inputs.py runs thousands),
and a test for each hole the fuzz run of the hostile-inputs issue found."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from edgestudio.core.errors import EdgeStudioError
from tests.conftest import ROOT, SAMPLES, run_cli


# 80 cases of seed 3 hold every kind at least once (each CLI process takes ~0.5 s); 250 of seed 5 hold each
# hostile kind several times: slow
@pytest.mark.parametrize("cases,seed", [(80, 3), pytest.param(250, 5, marks=pytest.mark.slow)])
def test_fuzz_cases_one_line_errors_nothing_written_outside(cases: int, seed: int) -> None:
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fuzz_inputs.py"), "--cases", str(cases), "--seed",
                        str(seed), "--json"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode in (0, 1), r.stderr[-2000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["cases"] == cases and report["bad"] == [], report["bad"][:5]
    kinds = report["by_kind"]
    assert {"truncate", "flip", "rename", "bomb", "symlink", "odd-name", "package-name", "payload", "tf-ops",
            "manifest", "onnx-bomb", "npz-bomb", "fifo", "yaml-bomb", "recipe-escape", "number", "out-dir"} <= set(kinds)
    for kind in ("payload", "tf-ops", "manifest", "onnx-bomb", "npz-bomb", "fifo", "yaml-bomb", "recipe-escape",
                 "number"):  # hostile inputs: every one refused (the fuzz run also checks no payload ran)
        assert kinds[kind]["rc12"] == kinds[kind]["cases"], kind
    assert kinds["truncate"]["rc12"] == kinds["truncate"]["cases"]  # a truncated model is never "fine"
    assert kinds["symlink"]["rc12"] == kinds["symlink"]["cases"]
    assert report["seconds"] < 240


# ------------------------------------------------------------------------------------ 1. package paths
@pytest.mark.parametrize("name", ["..onnx", "...onnx"])
def test_package_of_a_dot_named_model_stays_inside(tmp_path: Path, name: str) -> None:
    d = tmp_path / "models"
    d.mkdir()
    (tmp_path / "unrelated.txt").write_text("not yours")
    shutil.copy(SAMPLES / "digits_cnn.onnx", d / name)
    r = run_cli("package", str(d / name), "-o", str(tmp_path / "out" / "p.zip"), "--iterations", "2")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models", "out", "unrelated.txt"]
    assert sorted(p.name for p in d.iterdir()) == [name]
    with zipfile.ZipFile(tmp_path / "out" / "p.zip") as z:
        names = z.namelist()
        report = json.loads(z.read(next(n for n in names if n.endswith("report.json"))))
    assert {n.split("/")[0] for n in names} == {"model"} and not any(".." in n for n in names)
    assert "unrelated.txt" not in " ".join(names)
    # 9. no absolute source paths in the report
    assert str(tmp_path) not in json.dumps(report)


def test_zip_entry_guard() -> None:
    from edgestudio.packaging.deploy import safe_name, zip_entry

    assert safe_name("..") == "model" and safe_name("a b/../c") == "a_b_.._c" and safe_name("x\ny") == "x_y"
    with pytest.raises(EdgeStudioError, match="outside"):
        zip_entry(Path("pkg/../x"), "pkg")
    with pytest.raises(EdgeStudioError, match="outside"):
        zip_entry(Path("other/x"), "pkg")


# -------------------------------------------------------------------------------------- 2. symlinks
def test_import_refuses_links_out_of_the_folder_and_device_files(tmp_path: Path) -> None:
    m = tmp_path / "m"
    shutil.copytree(SAMPLES / "digits_cnn_savedmodel", m)
    (m / "variables" / "zero").symlink_to("/dev/zero")
    r = run_cli("import", str(m), "--workspace", str(tmp_path / "ws"))
    assert r.returncode == 1 and "variables/zero is a link that leaves the model folder" in r.stderr
    (m / "variables" / "zero").unlink()
    (tmp_path / "secret.txt").write_text("secret")
    (m / "assets").mkdir(exist_ok=True)
    (m / "assets" / "s.txt").symlink_to(tmp_path / "secret.txt")
    r = run_cli("import", str(m), "--workspace", str(tmp_path / "ws"))
    assert r.returncode == 1 and "leaves the model folder" in r.stderr
    assert not list((tmp_path / "ws").rglob("s.txt"))
    (m / "assets" / "s.txt").unlink()
    os.mkfifo(m / "assets" / "fifo")
    r = run_cli("inspect", str(m))
    assert r.returncode == 1 and "not a regular file" in r.stderr
    (m / "assets" / "fifo").unlink()
    (m / "assets" / "inside").symlink_to(m / "variables")  # a link inside the folder is fine
    assert run_cli("import", str(m), "--workspace", str(tmp_path / "ws")).returncode == 0


# -------------------------------------------------------------------------------- 3. decompression bombs
def test_keras_decompression_bomb_is_refused_before_reading(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.keras"
    with zipfile.ZipFile(SAMPLES / "digits_cnn.keras") as zin, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        for item in zin.infolist():
            data = zin.read(item.filename)
            z.writestr(item.filename, data + (b" " * (64 << 20) if item.filename == "config.json" else b""))
    assert bomb.stat().st_size < 1 << 20
    r = run_cli("inspect", str(bomb))
    assert r.returncode == 1 and "decompression bomb" in r.stderr and "config.json" in r.stderr


# ------------------------------------------------------------------------------------------- 4. names
def test_non_utf8_and_hostile_names(tmp_path: Path) -> None:
    raw = os.fsencode(str(tmp_path)) + b"/bad\xff.tflite"
    shutil.copy(SAMPLES / "digits_cnn.tflite", os.fsdecode(raw))
    r = subprocess.run([sys.executable, "-m", "edgestudio", "bench", raw, b"--iterations", b"2"], capture_output=True,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr  # was "corrupt TFLite model"
    evil = tmp_path / "evil\n\x1b[31mname.onnx"
    evil.write_bytes(b"not a model at all")
    r = run_cli("inspect", str(evil))
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "\x1b" not in r.stderr
    assert "evil\\n\\x1b[31mname.onnx" in r.stderr


def test_ort_file_named_onnx_follows_content(tmp_path: Path) -> None:
    ort = tmp_path / "real.ort"
    assert run_cli("convert", str(SAMPLES / "digits_cnn.onnx"), "--to", "ort", "-o", str(ort)).returncode == 0
    shutil.copy(ort, tmp_path / "fake.onnx")
    r = run_cli("bench", str(tmp_path / "fake.onnx"), "--iterations", "2", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(run_cli("inspect", str(tmp_path / "fake.onnx"), "--json").stdout)["format"] == "ort"


# ---------------------------------------------------------------------------------- 5. error hygiene
def test_errors_name_the_file_and_native_logs_stay_off_stderr(tmp_path: Path) -> None:
    tfjs = tmp_path / "web"
    tfjs.mkdir()
    (tfjs / "model.json").write_text(json.dumps({"format": "graph-model", "modelTopology": {"node": []},
                                                 "weightsManifest": []}))
    r = run_cli("bench", str(tfjs), "--iterations", "2")
    assert r.returncode == 1 and r.stderr.startswith(f"error: {tfjs}: ")  # "no installed runtime runs ..." alone
    ok = run_cli("bench", str(SAMPLES / "digits_cnn.tflite"), "--iterations", "2")
    assert ok.returncode == 0 and ok.stderr == ""  # no "INFO: Created TensorFlow Lite XNNPACK delegate"
    fp = tmp_path / "sm"
    shutil.copytree(SAMPLES / "digits_cnn_savedmodel", fp)
    (fp / "fingerprint.pb").write_bytes(b"\x12\x34garbage" * 3)
    r = run_cli("inspect", str(fp))
    assert r.returncode == 0 and "Traceback" not in r.stderr and r.stderr == ""


def test_worker_segfault_is_one_line_on_the_cli() -> None:
    """A worker that segfaults: faulthandler's dump goes to the native log, the CLI prints one line."""
    code = ("import argparse, sys\n"
            "from edgestudio import cli\n"
            "from edgestudio.core.jobs import JobKind, JobSpec\n"
            "ns = argparse.Namespace(workspace=None, json=False, model='m.onnx')\n"
            "log = cli._NativeLog.start()\n"
            "try:\n"
            "    cli.run_job(ns, JobSpec(JobKind.CALL, options={'function': 'ctypes:string_at', 'kwargs': {'ptr': 0}}))\n"
            "except Exception as e:\n"
            "    cli._error(str(e), log); log.stop(keep=True); sys.exit(1)\n")
    env = dict(os.environ, PYTHONFAULTHANDLER="1")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert r.returncode == 1
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "SIGSEGV" in lines[0] and "Fatal Python error" not in r.stderr, r.stderr
    log = lines[0].rsplit("[native log: ", 1)[1].rstrip("]")
    assert "Fatal Python error" in Path(log).read_text()  # the dump is kept, in the log
    Path(log).unlink()


# -------------------------------------------------------------------------------------- 6. disk full
def _tmpfs(path: Path, size_kb: int) -> bool:
    path.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def fill(path: Path) -> None:
    """Write zeros to ``path`` until its disk is full."""
    with open(path, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
        except OSError:
            pass


def test_disk_full_is_said_and_keeps_the_workspace(tmp_path: Path) -> None:
    full = tmp_path / "full"
    if not _tmpfs(full, 600):
        pytest.skip("cannot mount a small tmpfs here")
    try:
        assert run_cli("models", "--workspace", str(full / "ws")).returncode == 0
        fill(full / "fill")
        r = run_cli("bench", str(SAMPLES / "digits_cnn.onnx"), "--workspace", str(full / "ws"), "--iterations", "5")
        assert r.returncode == 1 and "no space left on" in r.stderr and r.stderr.count("\n") == 1, r.stderr
        r = run_cli("convert", str(SAMPLES / "digits_cnn.onnx"), "--to", "openvino", "-o", str(full / "d.xml"))
        assert r.returncode == 1 and "no space left on" in r.stderr, r.stderr
        (full / "fill").unlink()
        jobs = run_cli("jobs", "--workspace", str(full / "ws"), "--json")
        assert jobs.returncode == 0, jobs.stderr  # still a consistent workspace
        assert not list(full.glob("d.*"))
    finally:
        subprocess.run(["umount", str(full)], capture_output=True)


# ------------------------------------------------------------------------------------- 7. plausibility
def test_implausible_graphs_are_refused(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    cases = {
        "empty_op.onnx": helper.make_graph([helper.make_node("", ["x"], ["y"])], "g", [x], [y]),
        "dangling.onnx": helper.make_graph([helper.make_node("Add", ["x", "nowhere"], ["y"])], "g", [x], [y]),
        "cycle.onnx": helper.make_graph([helper.make_node("Relu", ["t"], ["y"]), helper.make_node("Relu", ["y"], ["t"])],
                                        "g", [x], [y]),
    }
    for name, g in cases.items():
        onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / name))
        r = run_cli("inspect", str(tmp_path / name))
        assert r.returncode == 1 and "invalid ONNX graph" in r.stderr and name in r.stderr, (name, r.stderr)
    (tmp_path / "empty.xml").write_text('<?xml version="1.0"?><net name="n" version="11"><layers>'
                                        '<layer id="0" name="x" type="Parameter" version="opset1"/></layers></net>')
    (tmp_path / "empty.bin").write_bytes(b"")
    r = run_cli("inspect", str(tmp_path / "empty.xml"))
    assert r.returncode == 1 and "no operations" in r.stderr
    web = tmp_path / "web"
    web.mkdir()
    (web / "model.json").write_text(json.dumps({"format": "graph-model", "modelTopology": {"node": []},
                                                "weightsManifest": [{"paths": ["w.bin"], "weights": [
                                                    {"name": "w", "shape": [1 << 40, 1 << 40], "dtype": "float32"}]}]}))
    (web / "w.bin").write_bytes(bytes(16))
    r = run_cli("inspect", str(web))
    assert r.returncode == 1 and "implausible" in r.stderr


def test_ir_with_short_bin_is_refused(tmp_path: Path, sample_ir: Path) -> None:
    shutil.copy(sample_ir, tmp_path / "m.xml")
    (tmp_path / "m.bin").write_bytes(sample_ir.with_suffix(".bin").read_bytes()[:100])
    r = run_cli("inspect", str(tmp_path / "m.xml"))
    assert r.returncode == 1 and "m.bin holds 100 bytes" in r.stderr


# ----------------------------------------------------------------------------------- 8. stale partials
def test_sigkill_mid_convert_leaves_a_partial_the_next_run_cleans(tmp_path: Path) -> None:
    import signal
    import time

    out = tmp_path / "out" / "digits.xml"
    proc = subprocess.Popen([sys.executable, "-m", "edgestudio", "convert", str(SAMPLES / "digits_cnn.keras"),
                             "--to", "openvino", "-o", str(out)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "out").glob(".*.partial-*")) if (tmp_path / "out").exists() \
            else time.time() < deadline:
        time.sleep(0.1)
    partials = list((tmp_path / "out").glob(".*.partial-*"))
    assert partials, "the convert never staged its output"
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its worker, as the OOM killer would
    proc.wait()
    time.sleep(0.5)
    assert list((tmp_path / "out").glob(".*.partial-*"))  # left behind...
    other = tmp_path / "out" / ".not-ours.partial-x"
    other.mkdir()
    r = run_cli("convert", str(SAMPLES / "digits_cnn.onnx"), "--to", "ort", "-o", str(tmp_path / "out" / "d.ort"))
    assert r.returncode == 0, r.stderr
    assert [p.name for p in (tmp_path / "out").glob(".*.partial-*")] == [other.name]  # ...cleaned: only ours


def test_a_kill_while_the_staging_folder_is_being_marked_leaves_nothing_unclaimed(tmp_path: Path) -> None:
    """The staging folder appears only with its owner mark; a kill before the rename leaves a temporary named
    by the dead pid, which the next run removes (a live process's temporary is left alone)."""
    from edgestudio.core.owners import clean_stale_partials, make_marked_folder, marked_owner

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".m.onnx.partial-job1.new-{dead.pid}"
    stale.mkdir()
    live = tmp_path / f".m.onnx.partial-job2.new-{os.getpid()}"
    live.mkdir()
    made = make_marked_folder(tmp_path / ".m.onnx.partial-job3")
    assert marked_owner(made) is not None
    assert clean_stale_partials(tmp_path) == [stale]
    assert live.exists() and made.exists()
