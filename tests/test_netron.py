"""The graph view for real: Netron serves the model on localhost and QtWebEngine shows it, offline, with no
consent banner, and readable tensor shapes. (In a subprocess: QtWebEngine must be set up before Qt starts.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, SAMPLES


def test_embedded_netron_shows_the_graph() -> None:
    pytest.importorskip("PySide6.QtWebEngineWidgets")
    r = subprocess.run([sys.executable, "-m", "tests.helpers.netron_probe", str(SAMPLES / "digits_cnn.onnx")],
                       capture_output=True, text=True, timeout=180, cwd=ROOT, env=dict(os.environ))
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["status"] == "Graph of digits_cnn.onnx (Netron)" and report["url"].startswith("http://localhost:")
    assert report["has_conv"], "the graph's nodes are on the page"
    assert not report["consent_banner"] and not report["cjk_brackets"]


def test_per_layer_time_is_painted_on_the_graph(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The profile's heat overlay on the embedded Netron graph: every mapped node found on the page and coloured
    (Netron has no overlay API: the nodes are found by their SVG ids)."""
    pytest.importorskip("PySide6.QtWebEngineWidgets")
    from edgestudio.bench.profile import profile_model

    heat = profile_model(SAMPLES / "digits_cnn.onnx", runs=5)["graph"]
    overlay = tmp_path / "overlay.json"
    overlay.write_text(json.dumps(heat))
    shot = ROOT / "docs" / "screenshots" / "profile-on-graph.png" if os.environ.get("EDGESTUDIO_SHOTS") else ""
    r = subprocess.run([sys.executable, "-m", "tests.helpers.netron_probe", str(SAMPLES / "digits_cnn.onnx"),
                        str(shot), str(overlay)], capture_output=True, text=True, timeout=180, cwd=ROOT,
                       env=dict(os.environ))
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["overlay"] == {"painted": len(heat["nodes"]), "total": len(heat["nodes"])}
    assert report["fill"].startswith("rgb(")  # a painted node's header is coloured


def test_the_graph_gets_a_window_of_its_own() -> None:
    """View ▸ Graph in its own window (Ctrl+G): the real Netron page moves to a large window, follows the selected
    model there, and goes back to the Graph tab, still drawing."""
    pytest.importorskip("PySide6.QtWebEngineWidgets")
    shot = ROOT / "docs" / "screenshots" / "netron-window.png" if os.environ.get("EDGESTUDIO_SHOTS") else ""
    r = subprocess.run([sys.executable, "-m", "tests.helpers.netron_detached", str(SAMPLES / "digits_cnn.onnx"),
                        str(SAMPLES / "digits_cnn.tflite"), str(shot)], capture_output=True, text=True, timeout=240,
                       cwd=ROOT, env=dict(os.environ))
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["detached"] and report["first"], report
    assert min(report["size"]) >= 700  # room (the offscreen screen is 800 x 800; a real one gets up to 1400 x 900)
    assert report["second"] and report["title"].startswith("Graph of digits_cnn"), report
    assert report["attached"] and report["back"], report
