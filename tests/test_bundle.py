"""The standalone bundle's inputs are valid, and its --self-test path works from source.
(The bundle itself is built by `make package`: minutes and hundreds of MB, not part of the test suite.)"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys

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
