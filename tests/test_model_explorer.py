"""Model Explorer beside Netron, for real: its server (the catalog's ``model-explorer`` environment, created once in
``.cache/envs``, ~800 MB from the registry) on loopback with a parent and its child side by side, the per-layer
figures of ``debug`` and ``profile`` as node data on node ids its own adapters give, the page offline, the command
line that serves until Ctrl-C, and the studio's actions (the page in QtWebEngine, or its URL without it)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from edgestudio.execution import model_explorer as me
from tests.conftest import ENVS, ROOT, SAMPLES, ensure_env
from tests.test_layers import real_inputs  # noqa: F401 - the digits' 8 real samples (a fixture)

PARENT = SAMPLES / "digits_cnn.onnx"
heavy = pytest.mark.heavy


@pytest.fixture(scope="session")
def explorer_env() -> Path:
    """The catalog's model-explorer environment (created with its declared requirements when missing, ~35 s)."""
    return ensure_env(me.ENV, timeout=1800)


@pytest.fixture
def envs(explorer_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EDGESTUDIO_ENVS", str(ENVS))
    return explorer_env


@pytest.fixture(scope="module")
def server(explorer_env: Path):  # type: ignore[no-untyped-def]
    with me.ExplorerServer(str(explorer_env)) as s:
        s.wait_ready()
        yield s


@pytest.fixture(scope="module")
def broken_child(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits CNN with its second convolution's weights changed: a child whose error starts at a known layer."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(PARENT))
    conv = [n for n in model.graph.node if n.op_type == "Conv"][1]
    for i, init in enumerate(model.graph.initializer):
        if init.name == conv.input[1]:
            w = numpy_helper.to_array(init) * 1.5 + 0.05
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(w.astype(np.float32), init.name))
    path = tmp_path_factory.mktemp("child") / "digits_broken.onnx"
    onnx.save(model, str(path))
    return path




def _data_param(url: str) -> dict:  # type: ignore[type-arg]
    return json.loads(urllib.parse.parse_qs(urllib.parse.urlparse(url).query)["data"][0])


# --------------------------------------------------------------------------------------------------- no server
def test_the_url_opens_two_models_side_by_side(broken_child: Path, tmp_path: Path) -> None:
    """Two models: two panes, the parent left; a graph id both share is the one the page renames (``x (2)``)."""
    plan = me.prepare([str(PARENT), str(broken_child)], str(tmp_path))
    data = _data_param(me.explorer_url("http://127.0.0.1:1", plan))
    assert [m["url"] for m in data["models"]] == [str(PARENT), str(broken_child.resolve())]
    panes = data["uiState"]["paneStates"]
    assert [(p["selectedCollectionLabel"], p["selectedGraphId"]) for p in panes] == [
        ("digits_cnn.onnx", "tf2onnx"), ("digits_broken.onnx", "tf2onnx (2)")]
    assert data["sync"] == {"mode": "match_node_id"} and "nodeData" not in data
    assert me.shown_graph_ids(["main", "main", "x", "main"]) == ["main", "main (2)", "x", "main (3)"]
    # a child named like its parent is shown through a link of another name (the page labels models by file name)
    twin = tmp_path / "twin" / "digits_cnn.onnx"
    twin.parent.mkdir()
    twin.write_bytes(PARENT.read_bytes())
    labels = me.prepare([str(PARENT), str(twin)], str(tmp_path / "nd"))["labels"]
    assert labels == ["digits_cnn.onnx", "digits_cnn-2.onnx"]


def test_formats_model_explorer_does_not_read_are_refused(tmp_path: Path) -> None:
    from edgestudio.core.errors import UsageError

    with pytest.raises(UsageError, match="reads ONNX and TFLite"):
        me.prepare([str(SAMPLES / "digits_cnn.keras")], str(tmp_path))


# ---------------------------------------------------------------------------------------------- with a server
@heavy
def test_node_ids_are_the_ones_model_explorer_draws(server: me.ExplorerServer, broken_child: Path) -> None:
    """The ids written into node data are those of the running server's own adapters (model_explorer_onnx, the
    built-in TFLite flatbuffer adapter), each on a node of the same op."""
    for model in (PARENT, SAMPLES / "digits_cnn.tflite", broken_child):
        index = me.graph_index(model)
        graphs = server.convert(model)
        nodes = {n["id"]: n for c in graphs.get("graphCollections") or [graphs] for g in c["graphs"]
                 if g["id"] == index.graph_id for n in g["nodes"]}
        assert nodes, f"{model.name}: no graph {index.graph_id!r} in Model Explorer's answer"
        assert set(index.ops) <= set(nodes)
        for node_id, op in index.ops.items():  # the same op: ONNX "Conv"; TFLite "CONV_2D" drawn as "conv_2d"
            assert nodes[node_id]["label"].upper() == op.upper(), (model.name, node_id, op)


@heavy
def test_the_served_page_stays_offline(server: me.ExplorerServer) -> None:
    """The page names nothing outside the server (no Google Fonts, no CDN), its scripts are served, and its version
    check answers at once without asking PyPI or GitHub."""
    html = server.get("/").decode()
    assert "<title>Model Explorer</title>" in html
    external = re.findall(r'(?:src|href)\s*=\s*"(https?://[^"]+)"|url\(\s*[\'"]?(https?://[^)\'"]+)', html)
    assert not external, external
    for asset in re.findall(r'(?:src|href)="([\w.-]+\.(?:js|css))"', html):
        assert len(server.get("/" + asset)) > 1000
    t0 = time.monotonic()
    assert json.loads(server.get("/api/v1/check_new_version"))["version"] == ""
    assert time.monotonic() - t0 < 2
    assert server.ready_after is not None and server.ready_after < 60
    # the server reads any file it is asked for: a page whose own name points at 127.0.0.1 gets nothing
    rebound = urllib.request.Request(f"{server.base_url}/api/v1/read_text_file?path=/etc/hostname",
                                     headers={"Host": f"evil.example:{server.port}"})
    with pytest.raises(urllib.error.HTTPError, match="403"):
        urllib.request.urlopen(rebound, timeout=10)


@heavy
def test_a_parent_and_its_broken_child_with_their_figures(server: me.ExplorerServer, broken_child: Path,
                                                          real_inputs: Path, tmp_path: Path) -> None:
    """debug's cosine (both graphs) and own error, profile's time per node (both): every node id written is a node
    of the target's graph as the server converts it, the broken convolution is the coldest node, and the page
    reads each file through the server as it will when opened."""
    import onnx

    plan = me.prepare([str(PARENT), str(broken_child)], str(tmp_path), debug=True, profile=True,
                      inputs={"data": str(real_inputs)}, samples=8)
    names = {Path(d["path"]).name for d in plan["node_data"]}
    assert names == {"digits_cnn.onnx.cosine-to-digits_broken.onnx.json",
                     "digits_broken.onnx.cosine-to-digits_cnn.onnx.json",
                     "digits_cnn.onnx.own-error-to-digits_broken.onnx.json",
                     "digits_cnn.onnx.ms-onnxruntime.json", "digits_broken.onnx.ms-onnxruntime.json"}
    assert plan["debug"]["verdict"] == "diverges" and plan["notes"] == []
    for d in plan["node_data"]:
        doc = json.loads(Path(d["path"]).read_text())
        model = plan["models"][plan["labels"].index(d["target"])]
        ids = me.graph_node_ids(server.convert(model))[d["graph"]]
        assert doc["results"] and set(doc["results"]) <= ids, d["name"]
        assert ("thresholds" in doc) != ("gradient" in doc)
        served = json.loads(server.get(f"/api/v1/read_text_file?path={d['path']}"))
        assert json.loads(served["content"]) == doc
    conv2 = [n.name for n in onnx.load(str(PARENT)).graph.node if n.op_type == "Conv"][1]
    cosine = json.loads(Path(next(d["path"] for d in plan["node_data"] if d["name"].startswith("digits_cnn.onnx.cos")))
                        .read_text())["results"]
    first = min(cosine, key=lambda k: cosine[k]["value"])
    assert first == conv2 or cosine[conv2]["value"] < 0.99, (first, cosine)
    assert all(v["value"] > 0.99999 for k, v in cosine.items() if "conv1" in k)  # before it: the parent's
    ms = json.loads(Path(next(d["path"] for d in plan["node_data"] if d["name"] == "digits_cnn.onnx.ms-onnxruntime"))
                    .read_text())["results"]
    assert conv2 in ms and all(v["value"] >= 0 for v in ms.values())
    # the page: the URL the server answers, with both models and every node-data file
    url = me.explorer_url(server.base_url, plan)
    with urllib.request.urlopen(url, timeout=30) as r:
        assert r.status == 200 and b"Model Explorer" in r.read()
    data = _data_param(url)
    assert data["nodeData"] == [d["path"] for d in plan["node_data"]]
    assert data["nodeDataTargets"] == [d["target"] for d in plan["node_data"]]
    # each pane shows the run it loads last: the cosine
    assert [Path(p).name.split(".onnx.")[1].split("-")[0] for p in data["nodeData"][-2:]] == ["cosine", "cosine"]


@heavy
def test_the_studio_view_shows_both_graphs_offline(explorer_env: Path, broken_child: Path, real_inputs: Path,
                                                   tmp_path: Path) -> None:
    """The embedded view (QtWebEngine, offscreen; in a process of its own, set up before Qt starts): the left pane
    holds the parent, the right one the child, every node-data run is loaded, WebGL draws, and the page asks for
    nothing outside the local server."""
    pytest.importorskip("PySide6.QtWebEngineWidgets")
    plan = me.prepare([str(PARENT), str(broken_child)], str(tmp_path / "nd"), debug=True, profile=True,
                      inputs={"data": str(real_inputs)}, samples=8)
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan))
    shots = ROOT / "docs" / "screenshots" if os.environ.get("EDGESTUDIO_SHOTS") else tmp_path
    shot = shots / "model-explorer-compare.png"
    r = subprocess.run([sys.executable, "-m", "tests.helpers.explorer_probe", str(plan_file), str(shot)],
                       capture_output=True, text=True, timeout=300, cwd=ROOT,
                       env=dict(os.environ, EDGESTUDIO_ENVS=str(ENVS)))
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["panes"] == [["digits_cnn.onnx", "tf2onnx"], ["digits_broken.onnx", "tf2onnx (2)"]], report
    assert report["webgl"] and not report["webgl_message"], report
    assert sorted(report["runs_shown"]) == sorted(Path(d["path"]).name for d in plan["node_data"]), report
    assert report["blocked"] == [], report
    assert report["status"] == "digits_cnn.onnx and digits_broken.onnx in Model Explorer"
    assert shot.stat().st_size > 20_000


# ---------------------------------------------------------------------------------------------- command line
def _cli(*args: str, envs: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgestudio", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env=dict(os.environ, EDGESTUDIO_ENVS=str(envs), PYTHONWARNINGS="ignore"))


@heavy
def test_the_command_serves_until_ctrl_c(explorer_env: Path, broken_child: Path, real_inputs: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "edgestudio", "explore", str(PARENT), str(broken_child), "--debug",
                             "--input", str(real_inputs), "--no-browser", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=dict(os.environ, EDGESTUDIO_ENVS=str(ENVS), PYTHONWARNINGS="ignore"))
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # one JSON document once the server answers
        assert line, proc.stderr.read() if proc.stderr else ""
        d = json.loads(line)
        assert d["url"].startswith("http://127.0.0.1:") and d["debug"]["verdict"] in ("diverges", "outputs agree")
        assert len(d["node_data"]) == 3 and all(Path(f["path"]).is_file() for f in d["node_data"])
        with urllib.request.urlopen(d["url"], timeout=30) as r:
            assert r.status == 200
        port = int(urllib.parse.urlparse(d["server"]).port or 0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "stopped" in err and "Traceback" not in err
        with socket.socket() as s:  # the server is gone, and the node data with it
            assert s.connect_ex(("127.0.0.1", port)) != 0
        assert not any(Path(f["path"]).exists() for f in d["node_data"])
    finally:
        if proc.poll() is None:
            proc.kill()


@heavy
def test_the_command_writes_node_data_without_model_explorer(broken_child: Path, real_inputs: Path,
                                                             tmp_path: Path) -> None:
    """--save-node-data needs no Model Explorer here: the files, for any Model Explorer; serving says how to
    install it, in one line."""
    out = tmp_path / "nd"
    r = _cli("explore", str(PARENT), str(broken_child), "--debug", "--input", str(real_inputs), "--save-node-data",
             str(out), "--json", envs=tmp_path / "no-envs")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert {Path(f["path"]).name for f in d["node_data"]} == {p.name for p in out.glob("*.json")} and d["node_data"]
    r = _cli("explore", str(PARENT), envs=tmp_path / "no-envs")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip() == ("error: Model Explorer is not installed (install it once with "
                                "`edgestudio envs create model-explorer`, about 800 MB)")
    r = _cli("explore", str(PARENT), str(broken_child), str(PARENT), envs=tmp_path / "no-envs")
    assert r.returncode == 2 and "at most two" in r.stderr


# --------------------------------------------------------------------------------------------------- studio
def test_the_studio_says_how_to_install_model_explorer(qtbot, window, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGESTUDIO_ENVS", str(tmp_path / "no-envs"))
    [model_id] = window.import_paths([PARENT])
    assert window.model_action("explore", model_id) is None
    box = window.explorer_message
    assert "edgestudio envs create model-explorer" in box.text() and box.isVisible()
    assert any(b.text() == "Python environments…" for b in box.buttons())
    assert window.model_action("explore_parent", model_id) is None  # an imported model has no parent
    assert "has no parent" in window.explorer_message.text()
    assert {"explore", "explore_parent"} <= set(window.actions_)


def test_the_studio_compares_a_variant_with_its_parent(qtbot, window, envs: Path,  # type: ignore[no-untyped-def]
                                                       broken_child: Path, real_inputs: Path, tmp_path: Path) -> None:
    """Compare with parent in Model Explorer: the figures are a job, the server starts without blocking the window,
    and the view opens the page of both models with their node data (here without QtWebEngine: its URL and the
    browser button); closing the window stops the server."""
    [parent_id] = window.import_paths([PARENT])
    child = window.workspace.add_artifact(broken_child, parent_id=parent_id, job_id=None, options={"method": "test"})
    window.workspace.set_inputs(child.id, {"data": str(real_inputs)})  # what Details ▸ Inputs to use saves
    window.sync()
    win = window.model_action("explore_parent", child.id)
    qtbot.waitUntil(lambda: win.view.url is not None, timeout=180_000)
    data = _data_param(win.view.url)
    assert [m["url"] for m in data["models"]] == [str(Path(window.workspace.model(parent_id).path).resolve()),
                                                  str(Path(child.path).resolve())]
    assert len(data["nodeData"]) >= 3 and all(Path(p).is_file() for p in data["nodeData"])
    assert "QtWebEngine is not available" in win.view.status.text() and win.view.open_button.isEnabled()
    assert "layers:" in win.head.text()
    with urllib.request.urlopen(win.view.url, timeout=30) as r:
        assert r.status == 200
    win.resize(1000, 300)
    win.grab().save(str(tmp_path / "model-explorer-window.png"))
    server = win.view.server
    win.close()
    assert win.view.server is None and server.proc is None and not Path(win.folder).exists()
