"""Remote edge devices: the device agent, run the way a Raspberry Pi would run it: in a virtualenv of its own
holding only numpy, onnxruntime, ai-edge-litert and websockets (no TensorFlow, no onnx, no Qt; created once in
``.cache/envs/device``), on loopback, with a token. The studio's side talks to it over real sockets."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, SAMPLES, compare_in_studio, ensure_env, run_cli

DEVICE_REQS = ["onnxruntime", "ai-edge-litert", "websockets>=13,<16"]


@pytest.fixture(scope="session")
def device_python() -> str:
    return str(ensure_env("device", *DEVICE_REQS, timeout=1200))


class Agent:
    """``python -m edgestudio.agent`` in the device's virtualenv (EdgeStudio's package on PYTHONPATH only)."""

    def __init__(self, python: str, folder: Path, *args: str, port: int = 0) -> None:
        from edgestudio.execution.envs import _package_path

        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env.update(PYTHONPATH=str(_package_path()), PYTHONNOUSERSITE="1")
        self.folder = folder
        self.proc = subprocess.Popen([python, "-m", "edgestudio.agent", "--port", str(port), "--dir", str(folder),
                                      *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.token: str | None = None
        deadline = time.monotonic() + 60
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"the agent did not start: {self.proc.stderr.read() if self.proc.stderr else ''}")
            if "listening on" in line:
                self.port = int(line.split("127.0.0.1:")[1].split()[0])
            if line.startswith("token"):
                self.token = line.rsplit(" ", 1)[1].strip()
                break
            if "listening on" in line and (folder / "agent.json").is_file() and port:
                break  # a restart: the token was shown at the first start only
        threading.Thread(target=lambda: [None for _ in self.proc.stdout or []], daemon=True).start()
        threading.Thread(target=lambda: [None for _ in self.proc.stderr or []], daemon=True).start()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def log(self) -> str:
        return (self.folder / "agent.log").read_text()


@pytest.fixture
def devices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "devices.json"
    monkeypatch.setenv("EDGESTUDIO_DEVICES", str(path))
    return path


@pytest.fixture
def agent(device_python: str, tmp_path: Path, devices: Path):  # type: ignore[no-untyped-def]
    a = Agent(device_python, tmp_path / "agent")
    r = run_cli("devices", "add", "pi", "--host", "127.0.0.1", "--port", str(a.port), "--token", a.token or "",
                "--json")
    assert r.returncode == 0, r.stderr
    a.facts = json.loads(r.stdout)["facts"]  # type: ignore[attr-defined]
    yield a
    a.kill()


def test_a_pi_like_device_benchmarks_and_compares_next_to_local(agent: Agent, device_python: str) -> None:
    """The agent's virtualenv has no TensorFlow, onnx or Qt; the device's runtimes are listed with its facts; a
    comparison runs the samples locally and on the device side by side with the same accuracy."""
    for mod in ("tensorflow", "onnx", "PySide6", "openvino"):
        assert subprocess.run([device_python, "-c", f"import {mod}"], capture_output=True).returncode != 0, mod
    facts = agent.facts  # type: ignore[attr-defined]
    assert {"onnxruntime", "ai-edge-litert"} <= set(facts["runtimes"]) and "tensorflow" not in facts["runtimes"]
    assert facts["cores"] >= 1 and facts["cpu"] and facts["memory_bytes"] > 0 and "isa" in facts
    assert {(d["runtime"], d["device"]) for d in facts["devices"]} >= {("onnxruntime", "CPU"), ("litert", "CPU")}
    listed = json.loads(run_cli("devices", "--json").stdout)
    assert {"onnxruntime", "litert"} <= {d["runtime"] for d in listed if d["device"] == "CPU@agent:pi"}
    r = run_cli("compare", str(SAMPLES / "digits_cnn.onnx"), str(SAMPLES / "digits_cnn.tflite"), "--device", "CPU",
                "--device", "CPU@agent:pi", "--dataset", str(SAMPLES / "digits_test.npz"), "--iterations", "50",
                "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert len(rows) == 4 and not [x["error"] for x in rows if x["error"]]
    by = {(Path(x["model"]).suffix, x["device"]): x for x in rows}
    for suffix in (".onnx", ".tflite"):
        local, remote = by[(suffix, "CPU")], by[(suffix, "CPU@agent:pi")]
        assert remote["p50_ms"] > 0 and remote["accuracy"] == local["accuracy"] > 0.9
    # bench on the device: the result names it, the latencies were measured there, the model's file is ours
    r = run_cli("bench", str(SAMPLES / "digits_cnn.tflite"), "--target", "agent:pi", "--iterations", "40", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["device"] == "CPU@agent:pi" and d["model"] == str(SAMPLES / "digits_cnn.tflite") and d["iterations"] == 40
    assert d["agent"]["device"] == "pi" and d["agent"]["executed_on"]["cores"] == facts["cores"]
    info = json.loads(run_cli("inspect", str(SAMPLES / "digits_cnn.onnx"), "--target", "pi", "--json").stdout)
    assert info["inputs"][0]["name"] == "image" and "onnx package is not installed" in info["macs_note"]
    # uploads are content-addressed and cached: one folder per distinct model, inside the agent's folder
    stored = sorted(p.name for p in (agent.folder / "models").iterdir())
    assert len(stored) == 3 and all(len(s) == 64 for s in stored)  # onnx, tflite, the dataset
    # auto-optimize for the device: variants made and checked here, measured there; runtimes it lacks are skipped
    r = run_cli("optimize", str(SAMPLES / "digits_cnn.onnx"), "--auto", "--target", "agent:pi", "--dataset",
                str(SAMPLES / "digits_test.npz"), "--calibration", str(SAMPLES / "digits_calib.npz"), "--iterations",
                "50", "-o", str(agent.folder.parent / "auto"), "--json", timeout=600)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["bench_device"] == "CPU@agent:pi" and d["best"]["runtime"] == "onnxruntime"
    rows = {c["label"]: c for c in d["candidates"]}
    assert rows["ORT INT8 static U8S8"]["device"] == "CPU@agent:pi" and rows["ORT INT8 static U8S8"]["p50_ms"] > 0
    assert "not on the device" in rows["OpenVINO INT8 NNCF"]["error"] and rows["OpenVINO INT8 NNCF"]["path"] is None


def test_live_samples_stream_from_the_device_and_a_cancel_stops_the_job(agent: Agent) -> None:
    from edgestudio.core.jobs import JobKind, JobSpec, JobStatus
    from edgestudio.execution.targets import executor_for

    ex = executor_for("agent:pi")
    seen: list[Any] = []
    ex.subscribe(lambda e: e.type == "samples" and seen.extend(e.data["samples"]))
    try:
        job = ex.submit(JobSpec(JobKind.BENCH, model=str(SAMPLES / "digits_cnn.onnx"), runtime="onnxruntime",
                                device="CPU", options={"iterations": 300, "warmup": 5}))
        rec = ex.wait(job, 120)
        assert rec.status is JobStatus.SUCCEEDED, rec.error
        assert [i for i, _ in seen] == list(range(300))  # every latency, in order, as measured on the device
        long = ex.submit(JobSpec(JobKind.BENCH, model=str(SAMPLES / "digits_cnn.onnx"), runtime="onnxruntime",
                                 device="CPU", options={"iterations": 10_000_000, "duration_s": 120}))
        deadline = time.monotonic() + 60
        while len(seen) < 400 and time.monotonic() < deadline:
            time.sleep(0.05)
        t0 = time.monotonic()
        ex.cancel(long)
        rec = ex.wait(long, 30)
        assert rec.status is JobStatus.CANCELLED and time.monotonic() - t0 < 15
    finally:
        ex.shutdown()


def test_nothing_is_reachable_without_the_token(agent: Agent, devices: Path) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    r = run_cli("devices", "add", "evil", "--host", "127.0.0.1", "--port", str(agent.port), "--token", "guess")
    assert r.returncode != 0 and "refused the token (401)" in r.stderr and "Traceback" not in r.stderr
    assert "evil" not in json.loads(devices.read_text())
    for headers in ({}, {"Authorization": "Bearer guess"}, {"Authorization": f"Basic {agent.token}"}):
        with pytest.raises(InvalidStatus) as err:
            connect(f"ws://127.0.0.1:{agent.port}/v1", additional_headers=headers, proxy=None, open_timeout=5)
        assert err.value.response.status_code == 401
    with socket.create_connection(("127.0.0.1", agent.port), timeout=5) as s:  # plain HTTP: refused too
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b" 40" in s.recv(200)
    assert agent.log().count("refused 127.0.0.1") >= 4
    stored = json.loads((agent.folder / "agent.json").read_text())
    assert agent.token not in json.dumps(stored) and len(stored["token_sha256"]) == 64  # only its hash is kept


def test_uploads_are_bounded_checked_and_kept_inside(device_python: str, tmp_path: Path, devices: Path) -> None:
    """Oversized uploads are refused before and while they travel; content must match its hash; a zip naming
    paths outside its folder is refused; the agent goes on serving."""
    import hashlib

    from websockets.sync.client import connect

    a = Agent(device_python, tmp_path / "agent", "--max-upload-mb", "0")  # nothing fits
    try:
        assert run_cli("devices", "add", "tiny", "--host", "127.0.0.1", "--port", str(a.port), "--token",
                       a.token or "").returncode == 0
        r = run_cli("bench", str(SAMPLES / "digits_cnn.onnx"), "--target", "tiny", "--iterations", "5")
        assert r.returncode != 0 and "over this agent's limit" in r.stderr and "digits_cnn.onnx" in r.stderr
        assert "refused upload" in a.log()
        hdr = {"Authorization": f"Bearer {a.token}"}
        with connect(f"ws://127.0.0.1:{a.port}/v1", additional_headers=hdr, proxy=None) as ws:
            ws.send(json.dumps({"type": "upload", "sha256": "0" * 64, "size": 10}))  # lies about its size
            assert json.loads(ws.recv(5))["type"] == "error"  # the limit is 0 bytes: refused before the bytes
        with connect(f"ws://127.0.0.1:{a.port}/v1", additional_headers=hdr, proxy=None) as ws:
            ws.send(b"\0" * (1 << 20))  # a frame over the transport's limit: the agent closes the connection
            with pytest.raises(Exception):
                ws.recv(5)
    finally:
        a.kill()
    b = Agent(device_python, tmp_path / "agent2")
    try:
        hdr = {"Authorization": f"Bearer {b.token}"}
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("../../escaped.txt", "x")
        data = buf.getvalue()
        with connect(f"ws://127.0.0.1:{b.port}/v1", additional_headers=hdr, proxy=None) as ws:
            ws.send(json.dumps({"type": "upload", "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}))
            assert json.loads(ws.recv(5))["type"] == "send"
            ws.send(data)
            reply = json.loads(ws.recv(5))
            assert reply["type"] == "error" and "outside its folder" in reply["error"]
            ws.send(json.dumps({"type": "upload", "sha256": "1" * 64, "size": len(data)}))
            assert json.loads(ws.recv(5))["type"] == "send"
            ws.send(data)  # does not hash to what it claims
            assert "does not match its sha256" in json.loads(ws.recv(5))["error"]
            ws.send(json.dumps({"type": "run", "v": 1, "job_id": "x", "spec": {"kind": "convert", "model": None}}))
            refused = json.loads(ws.recv(5))
            assert refused["type"] == "failed" and "not convert" in refused["data"]["error"]
        assert not list(tmp_path.glob("escaped.txt")) and not list((tmp_path / "agent2").glob("../escaped.txt"))
        assert not any(p.name == "escaped.txt" for p in tmp_path.rglob("*"))
        with connect(f"ws://127.0.0.1:{b.port}/v1", additional_headers=hdr, proxy=None) as ws:
            ws.send(json.dumps({"type": "facts"}))
            assert json.loads(ws.recv(30))["type"] == "facts"  # still serving
    finally:
        b.kill()


class CuttableProxy:
    """A loopback TCP proxy whose connections can be cut (a Wi-Fi drop between the studio and the device)."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass

    def cut(self) -> None:
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass
        self.conns.clear()


def test_a_device_that_drops_fails_the_job_clearly_and_reconnecting_works(agent: Agent, device_python: str) -> None:
    """Two faults: the connection cut mid-stream (the agent stops the orphaned job), and the agent killed
    mid-job; each fails its job with the reason, the studio's executor keeps working, and once the agent is back
    on its port the next job succeeds."""
    from edgestudio.core.jobs import JobKind, JobSpec, JobStatus
    from edgestudio.execution import remote
    from edgestudio.execution.targets import executor_for

    proxy = CuttableProxy(agent.port)
    remote.add_device("viaproxy", "127.0.0.1", proxy.port, agent.token or "")
    long = JobSpec(JobKind.BENCH, model=str(SAMPLES / "digits_cnn.onnx"), runtime="onnxruntime", device="CPU",
                   options={"iterations": 10_000_000, "duration_s": 120})
    for name, fault in (("viaproxy", proxy.cut), ("pi", agent.kill)):
        ex = executor_for(f"agent:{name}")
        seen: list[Any] = []
        ex.subscribe(lambda e, seen=seen: e.type == "samples" and seen.extend(e.data["samples"]))
        try:
            job = ex.submit(long)
            deadline = time.monotonic() + 60
            while len(seen) < 50 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert seen, "no samples arrived"
            fault()
            rec = ex.wait(job, 90)
            assert rec.status is JobStatus.FAILED and "lost the connection to device" in (rec.error or ""), rec.error
            assert "\n" not in (rec.error or "")
        finally:
            ex.shutdown()
        if name == "viaproxy":  # the agent noticed the studio had gone and stopped the job
            deadline = time.monotonic() + 30
            while "succeeded" not in agent.log().splitlines()[-1] and "cancelled" not in agent.log() and \
                    time.monotonic() < deadline:
                time.sleep(0.2)
            assert "cancelled" in agent.log()
    back = Agent(device_python, agent.folder, port=agent.port)  # same folder: the same token is valid
    try:
        r = run_cli("bench", str(SAMPLES / "digits_cnn.onnx"), "--target", "pi", "--iterations", "20", "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["agent"]["device"] == "pi"
    finally:
        back.kill()


def test_the_studio_adds_a_device_and_compares_on_it(qtbot, devices: Path, agent: Agent, window) -> None:  # type: ignore[no-untyped-def]
    """Devices panel: Add device (host, port, token) checks it and shows its facts; its runtimes appear in the
    comparison dialog next to the local ones, and the comparison's rows name the device."""
    from edgestudio.execution import remote

    remote.remove_device("pi")  # added by the fixture through the CLI: the studio adds it itself here
    panel = window.devices_panel
    window.docks["devices"].show()
    panel.name.setText("pi2")
    panel.host.setText("127.0.0.1")
    panel.port.setValue(agent.port)
    panel.token.setText("wrong")
    panel.add_button.click()
    qtbot.waitUntil(lambda: "refused the token" in panel.status.text(), timeout=30_000)
    panel.token.setText(agent.token or "")
    panel.add_button.click()
    qtbot.waitUntil(lambda: panel.table.rowCount() == 1 and "online" in panel.table.item(0, 2).text(), timeout=30_000)
    assert "cores" in panel.table.item(0, 3).text()
    if os.environ.get("EDGESTUDIO_SHOTS"):
        panel.resize(760, 420)
        panel.grab().save(str(ROOT / "docs" / "screenshots" / "devices-panel.png"))
    (model_id,) = window.import_paths([SAMPLES / "digits_cnn.tflite"])
    qtbot.waitUntil(lambda: any(d["device"] == "CPU@agent:pi2" for d in getattr(window, "devices", [])),
                    timeout=60_000)
    found = compare_in_studio(qtbot, window, [model_id], [("litert", "CPU"), ("litert", "CPU@agent:pi2")],
                              runs=2, timeout=180_000)
    rows = {r["device"]: r for r in found}
    assert set(rows) == {"CPU", "CPU@agent:pi2"}, [r.get("error") for r in found]
    assert rows["CPU@agent:pi2"]["p50_ms"] > 0 and rows["CPU@agent:pi2"]["accuracy"] == rows["CPU"]["accuracy"]
    if os.environ.get("EDGESTUDIO_SHOTS"):
        window.comparison.resize(900, 560)
        window.comparison.export_figure(ROOT / "docs" / "screenshots" / "comparison-remote.png")


def test_tls_agent_with_a_certificate_the_studio_trusts(device_python: str, tmp_path: Path, devices: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """--certfile/--keyfile: the agent serves wss://; the studio connects with --tls when it trusts the certificate
    (SSL_CERT_FILE here) and refuses one it does not."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                        "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                        str(cert)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    a = Agent(device_python, tmp_path / "agent", "--certfile", str(cert), "--keyfile", str(key))
    try:
        untrusted = run_cli("devices", "add", "tls", "--host", "127.0.0.1", "--port", str(a.port), "--token",
                            a.token or "", "--tls")
        assert untrusted.returncode != 0 and "certificate is not trusted" in untrusted.stderr
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        ok = run_cli("devices", "add", "tls", "--host", "127.0.0.1", "--port", str(a.port), "--token",
                     a.token or "", "--tls", "--json")
        assert ok.returncode == 0, ok.stderr
        r = run_cli("bench", str(SAMPLES / "digits_cnn.tflite"), "--target", "agent:tls", "--iterations", "20",
                    "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["device"] == "CPU@agent:tls"
    finally:
        a.kill()
