"""Google's Model Explorer beside Netron: two graphs side by side (a model and the one made from it), with
EdgeStudio's per-layer figures painted on their nodes as Model Explorer "node data" (``debug``'s cosine and own error
per layer, ``profile``'s time per node).

Model Explorer (``ai-edge-model-explorer`` + ``model-explorer-onnx``) lives in the catalog's ``model-explorer``
environment (``edgestudio envs create model-explorer``): its TFLite adapter is a 480 MB native library, and it
brings Flask and IPython, which the app does not need. A process of that environment serves it on a free loopback
port (:class:`ExplorerServer`); nothing here imports it. The served page is kept offline: the version check it
makes at start (PyPI, GitHub) is switched off, and the Google Fonts its index.html names are dropped (the wheel
carries the Latin faces it uses).

Node ids are the ones Model Explorer's adapters give (checked against the running server's own conversion by
tests/test_model_explorer.py):

- ONNX (model_explorer_onnx): a node's id is its name (``<node_I>`` for the I-th node when it has none), the graph's
  id the graph's name (``<main>`` when it has none).
- TFLite (the built-in flatbuffer adapter): an op's id is its index in the subgraph, the graph's id the subgraph's
  name.

Everything this module computes is plain data; :func:`prepare` is the studio's job (no Qt, no server).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgestudio.core.errors import EdgeStudioError, UsageError
from edgestudio.core.formats import ModelFormat, detect_format

ENV = "model-explorer"
ENABLE_COMMAND = f"edgestudio envs create {ENV}"
#: what Model Explorer reads in its environment, and the adapter that reads it
ADAPTERS = {ModelFormat.ONNX: "onnx_adapter", ModelFormat.TFLITE: "builtin_tflite_flatbuffer"}
HOST = "127.0.0.1"


class ExplorerUnavailable(EdgeStudioError):
    """Model Explorer is not installed: the message gives the command that installs it."""

    named = True  # about no model: the command line does not prefix the model's path


def explorer_python() -> str:
    """The interpreter that serves Model Explorer: the ``model-explorer`` environment's, or this one when Model
    Explorer and its ONNX adapter are installed here. Raises :class:`ExplorerUnavailable` saying how to install it."""
    import importlib.util

    from edgestudio.core.catalog import env_ready, envs_root

    if env_ready(ENV):
        python = envs_root() / ENV / "bin" / "python"
        if python.exists():
            return str(python)
    if importlib.util.find_spec("model_explorer") and importlib.util.find_spec("model_explorer_onnx"):
        return sys.executable
    raise ExplorerUnavailable(None, "Model Explorer is not installed",
                              hint=f"install it once with `{ENABLE_COMMAND}`, about 800 MB")


def check_explorable(path: str | Path) -> ModelFormat:
    """The model's format, when Model Explorer reads it here (ONNX, TFLite); a :class:`UsageError` otherwise."""
    fmt = detect_format(path)
    if fmt not in ADAPTERS:
        raise UsageError(path, f"Model Explorer reads ONNX and TFLite models here, not {fmt.label} (Netron shows "
                               "every format; convert it to compare it in Model Explorer)")
    return fmt


# --------------------------------------------------------------------------------------------- the graphs' ids
@dataclass
class GraphIndex:
    """A model's graph as Model Explorer's adapter names it: the graph's id and, per node id, its op; which node
    produces each tensor; and EdgeStudio's names for the nodes (profile's ONNX node names, debug's TFLite ``OP_I``)."""

    model: str
    label: str  # the collection's label in Model Explorer: the file's name
    graph_id: str
    ops: dict[str, str] = field(default_factory=dict)  # node id -> op type
    by_tensor: dict[str, str] = field(default_factory=dict)  # output tensor -> node id
    by_name: dict[str, str] = field(default_factory=dict)  # EdgeStudio's node name -> node id


def graph_index(path: str | Path) -> GraphIndex:
    """The ids Model Explorer gives ``path``'s main graph and its nodes (ONNX, TFLite)."""
    p = Path(path)
    fmt = check_explorable(p)
    if fmt is ModelFormat.ONNX:
        import onnx

        g = onnx.load(str(p), format="protobuf", load_external_data=False).graph
        index = GraphIndex(str(p), p.name, g.name or "<main>")
        for i, node in enumerate(g.node):
            node_id = node.name or f"<node_{i}>"
            index.ops[node_id] = node.op_type
            index.by_name[node_id] = node_id  # profile's names: the ONNX node's
            index.by_tensor.update({out: node_id for out in node.output if out})
        return index
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(p.read_bytes(), 0)
    if model.SubgraphsLength() == 0:
        raise UsageError(p, "the TFLite model has no subgraph")
    sub = model.Subgraphs(0)
    codes = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    index = GraphIndex(str(p), p.name, (sub.Name() or b"main").decode())
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        kind = codes.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        node_id = str(i)
        index.ops[node_id] = kind
        index.by_name[f"{kind}_{i}"] = node_id  # the name edgestudio.bench.layers gives a TFLite op
        for t in op.OutputsAsNumpy():
            if t >= 0:
                index.by_tensor[sub.Tensors(int(t)).Name().decode()] = node_id
    return index


# ------------------------------------------------------------------------------------------------ node data
# the colours of EdgeStudio's Netron overlay (green -> yellow -> red), for Model Explorer's node backgrounds
GOOD, WARN, BAD, WORSE = "#a9dfbf", "#f9e79f", "#f5b041", "#ec7063"


@dataclass
class NodeData:
    """One of Model Explorer's node-data runs for one model: a number per node id, coloured by ``thresholds``
    (value <= threshold: that colour) or by a ``gradient`` over the values' range."""

    name: str  # the file's stem, which Model Explorer shows as the run's name
    index: GraphIndex
    values: dict[str, float]
    thresholds: list[dict[str, Any]] = field(default_factory=list)
    gradient: list[dict[str, Any]] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        """The JSON Model Explorer reads: its ``GraphNodeData`` (node id -> value, and the colours), which the page
        attaches to the main graph of the model it targets. Not keyed by graph id: the page renames a graph whose id
        another model's graph has (``main``, ``main (2)``), as a parent's and its child's often do."""
        doc: dict[str, Any] = {"results": {k: {"value": v} for k, v in self.values.items()}}
        if self.gradient:
            doc["gradient"] = self.gradient
        elif self.thresholds:
            doc["thresholds"] = self.thresholds
        return doc

    def write(self, folder: Path) -> Path:
        # the page fetches the file by a path it does not URL-encode: a plain name in a plain folder
        path = folder / f"{_safe(self.name)}.json"
        path.write_text(json.dumps(self.document(), indent=1), encoding="utf-8")
        return path


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "data"


def _cosine_thresholds(min_cosine: float) -> list[dict[str, Any]]:
    """debug's scale: red at twice past the divergence threshold, orange past it, yellow below 0.9999."""
    return [{"value": 1 - 2 * (1 - min_cosine), "bgColor": WORSE}, {"value": min_cosine, "bgColor": BAD},
            {"value": 0.9999, "bgColor": WARN}, {"value": 2.0, "bgColor": GOOD}]


def debug_node_data(result: dict[str, Any], parent: GraphIndex, child: GraphIndex) -> list[NodeData]:
    """:func:`edgestudio.bench.layers.compare_layers`'s pairs on both graphs: each node's cosine to its twin (the
    worst of its outputs), and on the parent's graph each node's own error (its cosine below its inputs')."""
    min_cos = float(result.get("thresholds", {}).get("min_cosine", 0.99))
    on_parent: dict[str, float] = {}
    on_child: dict[str, float] = {}
    own: dict[str, float] = {}
    for pair in result.get("pairs", []):
        cos = pair["cosine"] if pair.get("cosine") is not None else 1.0
        p_id = parent.by_tensor.get(pair["parent"]) or parent.by_name.get(pair.get("node", ""))
        c_id = child.by_tensor.get(pair["child"])
        if p_id is not None:
            on_parent[p_id] = min(cos, on_parent.get(p_id, cos))
            own[p_id] = max(own.get(p_id, 0.0), max(0.0, float(pair.get("contribution") or 0.0)))
        if c_id is not None:
            on_child[c_id] = min(cos, on_child.get(c_id, cos))
    scale = _cosine_thresholds(min_cos)
    out = [NodeData(f"{parent.label}.cosine-to-{child.label}", parent, on_parent, thresholds=scale),
           NodeData(f"{child.label}.cosine-to-{parent.label}", child, on_child, thresholds=scale)]
    if any(v > 0 for v in own.values()):
        out.append(NodeData(f"{parent.label}.own-error-to-{child.label}", parent, own,
                            gradient=[{"stop": 0, "bgColor": "#ffffff"}, {"stop": 1, "bgColor": WORSE}]))
    return [d for d in out if d.values]


def profile_node_data(result: dict[str, Any], index: GraphIndex) -> NodeData:
    """:func:`edgestudio.bench.profile.profile_model`'s kernels summed per node (ms), coloured from the fastest
    node to the slowest."""
    from edgestudio.bench.profile import resolve_nodes

    mapped, _ = resolve_nodes(result["model"], result["layers"])
    values = {index.by_name[n]: round(sum(r["ms"] for r in rs), 6) for n, rs in mapped.items() if n in index.by_name}
    return NodeData(f"{index.label}.ms-{result['runtime']}", index, values,
                    gradient=[{"stop": 0, "bgColor": GOOD}, {"stop": 0.5, "bgColor": WARN},
                              {"stop": 1, "bgColor": WORSE}])


# ------------------------------------------------------------------------------------------------- the plan
def prepare(models: list[str], folder: str, *, debug: bool = False, profile: bool = False, inputs: Any = None,
            samples: int = 4, runs: int = 50, progress: Callable[[float, str], None] | None = None,
            cancel: Any = None) -> dict[str, Any]:
    """What Model Explorer is to show: ``models`` (one, or a parent and its child), and in ``folder`` the node-data
    files of ``debug`` (the child against the parent, layer by layer) and ``profile`` (each model's time per
    node, where its runtime has a profiler). Returns the plan :func:`explorer_url` turns into the page's URL.
    Heavy (runs the models) only when figures are asked for; the studio runs it as a job."""
    say = progress or (lambda fraction, message: None)
    if not 1 <= len(models) <= 2:
        raise UsageError(None, "Model Explorer shows one model, or a parent and its child side by side")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    served = _distinct_names([Path(m) for m in models], out)
    indexes = [graph_index(m) for m in served]
    data: list[NodeData] = []
    notes: list[str] = []
    summary: dict[str, Any] = {}
    if debug:
        if len(models) != 2:
            raise UsageError(models[0], "--debug compares a child with its parent: give both")
        from edgestudio.bench.layers import compare_layers

        say(0.1, "comparing the models layer by layer")
        result = compare_layers(models[0], models[1], inputs=inputs, samples=samples)
        data += debug_node_data(result, indexes[0], indexes[1])
        summary["debug"] = {k: result.get(k) for k in ("verdict", "matched", "note")}
        summary["debug"]["first_diverging"] = (result.get("first_diverging") or {}).get("node")
        if result.get("note"):
            notes.append(f"debug: {result['note']}")
    if profile:
        from edgestudio.bench.profile import profile_model

        for i, (model, index) in enumerate(zip(models, indexes)):
            if cancel is not None:
                cancel.check()
            say(0.5 + 0.4 * i / len(models), f"profiling {Path(model).name}")
            try:
                result = profile_model(model, runs=runs, inputs=inputs)
            except EdgeStudioError as exc:  # LiteRT has no op profiler: said, and the rest is shown
                notes.append(f"profile: {exc.one_line()}")
                continue
            data.append(profile_node_data(result, index))
            summary.setdefault("profile", []).append({"model": model, "runtime": result["runtime"],
                                                      "total_layer_ms": result["total_layer_ms"]})
    files = []
    # the page shows the run it loads last: the cosine, where there is one
    data.sort(key=lambda d: ".cosine-to-" in d.name)
    for d in data:
        path = d.write(out)
        files.append({"name": d.name, "path": str(path), "target": d.index.label, "graph": d.index.graph_id,
                      "nodes": len(d.values)})
    say(1.0, "ready")
    return {"models": [str(m) for m in served], "sources": list(models), "labels": [i.label for i in indexes],
            "graphs": [i.graph_id for i in indexes], "nodes": [len(i.ops) for i in indexes],
            "formats": [detect_format(m).value for m in served],
            "node_data": files, "notes": notes, "folder": str(out), **summary}


def _distinct_names(paths: list[Path], folder: Path) -> list[Path]:
    """Model Explorer labels a model by its file name (and targets node data by it): a child named like its parent
    is shown through a link of another name."""
    out: list[Path] = []
    for i, p in enumerate(paths):
        p = p.resolve()
        if any(q.name == p.name for q in out):
            link = folder / f"{p.stem}-{i + 1}{p.suffix}"
            link.unlink(missing_ok=True)
            link.symlink_to(p)
            p = link
        out.append(p)
    return out


#: up to this many nodes, a graph opens flat (every op drawn); larger ones open as Model Explorer's layers
FLAT_UP_TO = 400


def shown_graph_ids(graph_ids: list[str]) -> list[str]:
    """The ids the page gives the models' main graphs: it renames a graph whose id an earlier model's graph has
    (``main``, ``main (2)``, ``main (3)``)."""
    seen: dict[str, int] = {}
    out = []
    for gid in graph_ids:
        n = seen.get(gid, 0)
        out.append(gid if n == 0 else f"{gid} ({n + 1})")
        seen[gid] = n + 1
    return out


def explorer_url(base: str, plan: dict[str, Any]) -> str:
    """The page that opens ``plan``'s models (two: side by side, the parent on the left) with its node data."""
    models = plan["models"]
    data: dict[str, Any] = {"models": [{"url": m, "adapterId": ADAPTERS[ModelFormat(f)]}
                                       for m, f in zip(models, plan["formats"])]}
    if plan.get("node_data"):
        data["nodeData"] = [d["path"] for d in plan["node_data"]]
        data["nodeDataTargets"] = [d["target"] for d in plan["node_data"]]
    graphs = shown_graph_ids(plan["graphs"])
    data["uiState"] = {"paneStates": [
        {"deepestExpandedGroupNodeIds": [], "selectedNodeId": "", "selectedGraphId": graph,
         "selectedCollectionLabel": label, "widthFraction": 1 / len(models), "selected": i == 0,
         "flattenLayers": nodes <= FLAT_UP_TO}
        for i, (graph, label, nodes) in enumerate(zip(graphs, plan["labels"], plan["nodes"]))]}
    if len(models) == 2 and plan["formats"][0] == plan["formats"][1]:
        data["sync"] = {"mode": "match_node_id"}  # the same node names on both sides: selecting one shows both
    return f"{base.rstrip('/')}/?data={urllib.parse.quote(json.dumps(data))}"


# ------------------------------------------------------------------------------------------------ the server
# Runs in the Model Explorer environment: its server, on HOST:PORT, kept offline (no version check against PyPI and
# GitHub; index.html without the Google Fonts it would fetch: the wheel's own Latin faces remain), answering only
# requests addressed to the loopback host (a web page that rebinds its own name to 127.0.0.1 is refused: the server
# reads any file it is asked for), and gone when the process that started it is.
_LAUNCHER = r"""
import os, re, sys, threading, time
import flask
from model_explorer import server
host, port, parent = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
class LoopbackOnly(flask.Flask):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        hosts = {f"{host}:{port}", f"localhost:{port}"}
        self.before_request(lambda: None if flask.request.host in hosts else flask.abort(403))
flask.Flask = LoopbackOnly
server._check_new_version = lambda print_msg=True: {"version": "", "runningVersion": "", "releaseUrl": "",
                                                    "desktopAppUrl": ""}
with open(os.path.join(server.OSS_WEB_APP_DIR, "index.html"), encoding="utf-8") as f:
    index = f.read()
index = re.sub(r"<link[^>]*rel=\"preconnect\"[^>]*>", "", index)
index = re.sub(r"@font-face\s*\{[^}]*url\(\s*['\"]?https?://[^}]*\}", "", index)
static = server._serve_static_asset
server._serve_static_asset = lambda rel: (flask.Response(index, mimetype="text/html") if rel == "index.html"
                                          else static(rel))
def orphaned():
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)
threading.Thread(target=orphaned, daemon=True).start()
server.start(host=host, port=port, no_open_in_browser=True, extensions=["model_explorer_onnx"])
"""

_LIVE: set[ExplorerServer] = set()


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ExplorerServer:
    """Model Explorer's server in a process of its environment, on a loopback port. :meth:`start` returns at once;
    :meth:`wait_ready` (the command line) or :meth:`ready` polled (the studio) says when it answers. Stopped by
    :meth:`stop`, at exit, or when the process that started it ends."""

    def __init__(self, python: str | None = None, port: int = 0, host: str = HOST) -> None:
        self.python = python or explorer_python()
        self.host = host
        self.requested_port = port
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self.started_at = 0.0
        self.ready_after: float | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ExplorerServer:
        if self.proc is not None:
            return self
        self.port = self.requested_port or _free_port(self.host)
        fd, log = tempfile.mkstemp(prefix="edgestudio-model-explorer-", suffix=".log")
        self.log_path = Path(log)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env.update(PYTHONNOUSERSITE="1", PYTHONUNBUFFERED="1", NO_PROXY="127.0.0.1,localhost",
                   no_proxy="127.0.0.1,localhost")
        # a session of its own: the terminal's Ctrl-C reaches the command, which stops the server itself
        self.proc = subprocess.Popen([self.python, "-c", _LAUNCHER, self.host, str(self.port), str(os.getpid())],
                                     stdin=subprocess.DEVNULL, stdout=fd, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        os.close(fd)
        self.started_at = time.monotonic()
        _LIVE.add(self)
        return self

    def ready(self) -> bool:
        """The server answers (a quick, non-blocking look). Raises :class:`EdgeStudioError` when it ended."""
        if self.proc is None:
            return False
        if self.proc.poll() is not None:
            raise EdgeStudioError(None, f"Model Explorer's server ended at start (exit code {self.proc.returncode})"
                                        f": {self.log_tail()}")
        try:
            with urllib.request.urlopen(f"{self.base_url}/check_health", timeout=0.5) as r:  # noqa: S310 - loopback
                ok = r.read() == b"model_explorer_ok"
        except (OSError, urllib.error.URLError):
            return False
        if ok and self.ready_after is None:
            self.ready_after = time.monotonic() - self.started_at
        return ok

    def wait_ready(self, timeout: float = 120.0) -> str:
        """Start it if needed and wait until it answers; its base URL."""
        self.start()
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                self.stop()
                raise EdgeStudioError(None, f"Model Explorer's server did not answer within {timeout:.0f} s: "
                                            f"{self.log_tail()}")
            time.sleep(0.2)
        return self.base_url

    def log_tail(self, lines: int = 3) -> str:
        try:
            text = (self.log_path.read_text(errors="replace") if self.log_path else "").strip().splitlines()
        except OSError:
            text = []
        return " | ".join(text[-lines:]) or "no output"

    def get(self, path: str, timeout: float = 60.0) -> bytes:
        with urllib.request.urlopen(f"{self.base_url}{path}", timeout=timeout) as r:  # noqa: S310 - loopback
            return bytes(r.read())

    def convert(self, model: str | Path) -> dict[str, Any]:
        """The graphs Model Explorer makes of ``model`` (its adapter, run by the server: what the page shows)."""
        fmt = check_explorable(model)
        cmd = {"extensionId": ADAPTERS[fmt], "cmdId": "convert", "modelPath": str(Path(model).resolve()),
               "settings": {}, "deleteAfterConversion": False}
        reply = json.loads(self.get(f"/api/v1/send_command?json={urllib.parse.quote(json.dumps(cmd))}"))
        if reply.get("error"):
            raise EdgeStudioError(model, f"Model Explorer cannot read it: {reply['error']}")
        return dict(reply)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        _LIVE.discard(self)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)
            self.log_path = None

    def __enter__(self) -> ExplorerServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop()


def graph_node_ids(graphs: dict[str, Any]) -> dict[str, set[str]]:
    """{graph id: node ids} of an adapter's answer (:meth:`ExplorerServer.convert`)."""
    collections = graphs.get("graphCollections") or [{"graphs": graphs.get("graphs", [])}]
    return {g["id"]: {n["id"] for n in g.get("nodes", [])} for c in collections for g in c.get("graphs", [])}
