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
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    r = subprocess.run([sys.executable, "-m", "edgestudio", "--self-test"], capture_output=True, text=True,
                       timeout=600, cwd="/tmp", env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["ok"] is True
    assert report["inspect"]["format"] == "onnx" and report["convert"]["parity"] == [True]
    assert report["bench"]["p50_ms"] > 0
    assert report["charts"] == "LiveLatencyChart"
