"""The standalone bundle's inputs are valid, its helper processes start through its entry point, and its
--self-test path works from source. The bundle itself is built (and its .deb installed, run and removed) by a
`slow` test: minutes and GBs, in `make test-slow`."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "packaging"))
import bundle_config as cfg  # noqa: E402


def test_spec_and_entry_are_valid_python() -> None:
    for name in ("edgestudio.spec", "entry.py", "build.py", "bundle_config.py"):
        ast.parse((ROOT / "packaging" / name).read_text(), name)
    spec = (ROOT / "packaging" / "edgestudio.spec").read_text()
    assert "Analysis(" in spec and "COLLECT(" in spec and "freeze_support" in (ROOT / "packaging" / "entry.py").read_text()


def test_everything_the_bundle_collects_exists() -> None:
    for src, _ in cfg.DATAS:
        assert src.exists(), src
    for variant in ("full", "lite"):
        plan = cfg.collect(variant)
        for package in plan["collect_all"] + plan["hidden"]:
            assert importlib.util.find_spec(package) is not None, package
    assert "tensorflow" in cfg.collect("lite")["excludes"] and "tensorflow" in cfg.collect("full")["collect_all"]
    assert (ROOT / "resources" / "icons" / "edgestudio.png").stat().st_size > 1000
    desktop = (ROOT / "packaging" / "linux" / "edgestudio.desktop").read_text()
    assert "Exec=/opt/edgestudio/edgestudio" in desktop and "Icon=edgestudio" in desktop


@pytest.mark.heavy
def test_self_test_from_source() -> None:
    """The studio's jobs, then the capabilities that start helper processes: the TFLM runner, the agent."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    r = subprocess.run([sys.executable, "-m", "edgestudio", "--self-test", "int8", "tflm", "agent"],
                       capture_output=True, text=True, timeout=600, cwd="/tmp", env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["ok"] is True
    assert report["inspect"]["format"] == "onnx" and report["convert"]["parity"] == [True]
    assert report["bench"]["p50_ms"] > 0
    assert report["charts"] == "LiveLatencyChart"
    rows = {row["capability"]: row for row in report["capabilities"]}
    assert set(rows) == {"int8 onnx", "int8 tflite", "tflm", "agent"}
    assert all(row["status"] == "ok" for row in rows.values()), rows
    assert "arena" in rows["tflm"]["detail"] and "@agent:selftest" in rows["agent"]["detail"]
    assert "tflm " in r.stdout and "agent " in r.stdout  # the table a user reads


def test_helpers_start_through_the_bundles_entry_point() -> None:
    """A frozen executable is not a Python: helper processes start as ``edgestudio --edgestudio-helper MODULE``,
    which the bundle's entry point runs (here from source: the same entry.py the bundle is built from)."""
    from edgestudio.core.process import HELPER_FLAG

    entry = [sys.executable, str(ROOT / "packaging" / "entry.py"), HELPER_FLAG]
    r = subprocess.run([*entry, "edgestudio.agent", "--help"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0 and "EdgeStudio's device agent" in r.stdout, r.stderr
    r = subprocess.run([*entry, "os", "--help"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 2 and "not one of EdgeStudio's helper modules" in r.stderr
    code = ("import sys; sys.frozen = True; from edgestudio.core.process import helper_command; "
            "print(helper_command('edgestudio.packaging.tflm')); print(helper_command('edgestudio.x', '/env/python'))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.stdout.splitlines() == [str([sys.executable, HELPER_FLAG, "edgestudio.packaging.tflm"]),
                                     str(["/env/python", "-m", "edgestudio.x"])]


def test_the_bundle_carries_the_sources_web_runtimes_and_metadata() -> None:
    sources = cfg.source_files()
    assert any(dst == "edgestudio/execution" and src.name == "env_worker.py" for src, dst in sources)
    assert not any("__pycache__" in str(src) for src, _ in sources)
    web = cfg.web_files()
    assert all(src.is_file() for src, _ in web), [src for src, _ in web if not src.is_file()]
    assert {src.name for src, _ in web} >= {"bench.html", "ort.wasm.min.mjs", "tf-core.min.js"}
    assert "tensorflowjs" in cfg.collect("full")["collect_all"] and "tflite_micro" in cfg.collect("lite")["collect_all"]
    from importlib import metadata

    for dist in cfg.collect("full")["metadata"]:
        assert metadata.version(dist), dist
    for package in cfg.collect("full")["with_sources"]:
        assert importlib.util.find_spec(package) is not None, package


@pytest.mark.slow
@pytest.mark.timeout(3600)  # the build alone takes about 11 minutes on 2 cores, past the suite's 600 s
def test_the_built_bundle_and_its_deb_pass_their_self_test(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`make package` for real (minutes, GBs): the bundle's self-test passes capability by capability with a clean
    environment; the .deb installs with dpkg, runs from /usr/bin with a fresh HOME, and is removed again."""
    import shutil

    r = subprocess.run([sys.executable, str(ROOT / "packaging" / "build.py"), "--variant", "full"], capture_output=True,
                       text=True, timeout=3600, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads(r.stdout.split("self-test: ", 1)[1].splitlines()[0])
    rows = {row["capability"]: row for row in report["capabilities"]}
    failed = {k: v["detail"] for k, v in rows.items() if v["status"] == "failed"}
    assert report["ok"] and not failed, failed
    assert all(rows[k]["status"] == "ok" for k in ("convert tfjs", "tflm", "agent", "bench onnxruntime")), rows
    deb = next((ROOT / "dist").glob("edgestudio_*_amd64.deb"))
    if os.geteuid() != 0 or not shutil.which("dpkg"):
        pytest.skip("installing the .deb needs root and dpkg")
    inst = subprocess.run(["dpkg", "-i", str(deb)], capture_output=True, text=True, timeout=1200)
    try:
        assert inst.returncode == 0, inst.stderr[-2000:]
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home"), "LANG": "C.UTF-8"}
        run = subprocess.run(["/usr/bin/edgestudio", "--self-test", "inspect", "tflm", "int8", "agent", "environment"],
                             capture_output=True, text=True, timeout=1800, cwd=tmp_path, env=env)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        installed = json.loads(run.stdout.strip().splitlines()[-1])
        assert all(row["status"] in ("ok", "skipped") for row in installed["capabilities"]), installed
        assert {row["capability"] for row in installed["capabilities"] if row["status"] == "ok"} >= {"tflm", "agent"}
    finally:
        subprocess.run(["dpkg", "-r", "edgestudio"], capture_output=True, timeout=600)
    assert not Path("/opt/edgestudio").exists() and not Path("/usr/bin/edgestudio").exists()
