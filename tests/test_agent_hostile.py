"""The device agent against an authenticated attacker: what a token holder tried (paths outside the uploads,
decompression bombs, forged log lines, a job that targets the agent itself, two Authorization headers, fields that
are not what they should be) each answered at once, in one line, with nothing read, written or run that should
not be; and a seeded fuzz run of the same classes (benchmarks/fuzz_agent.py). A real agent process in the
``device`` environment (as in tests/test_agent.py), real sockets, loopback only."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib.util
import io
import json
import os
import random
import re
import shutil
import socket
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, SAMPLES
from tests.test_agent import Agent, device_python  # noqa: F401 - the fixture that makes the device's environment

FORGED = "2026-01-01 00:00:00,000 WARNING refused 10.6.6.6: wrong token"
RAW_EXCEPTION = re.compile(r"Traceback|\b[A-Z][A-Za-z]*(Error|Exception)\b|could not handle this request")
LOG_LINE = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) |    \| )")


# ------------------------------------------------------------------------------------------------ helpers
def _ws(agent: Agent) -> Any:
    from websockets.sync.client import connect

    return connect(f"ws://127.0.0.1:{agent.port}/v1", additional_headers={"Authorization": f"Bearer {agent.token}"},
                   proxy=None, open_timeout=10, max_size=None, compression=None, close_timeout=2)


def _ask(agent: Agent, frame: str | bytes | dict[str, Any], timeout: float = 10) -> dict[str, Any] | None:
    """One frame on a connection of its own; the first answer (None: the agent closed the connection)."""
    from websockets.exceptions import ConnectionClosed

    with _ws(agent) as ws:
        ws.send(json.dumps(frame) if isinstance(frame, dict) else frame)
        try:
            return json.loads(ws.recv(timeout))  # type: ignore[no-any-return]
        except ConnectionClosed:
            return None


def _refusal(reply: dict[str, Any] | None) -> str:
    """A refusal's text, checked: an error (a run request: ``failed`` as its first answer), one line, no
    exception's text."""
    assert reply is not None, "the agent closed the connection instead of answering"
    assert reply["type"] in ("error", "failed"), f"not refused at once: {json.dumps(reply)[:300]}"
    text = reply["error"] if reply["type"] == "error" else reply["data"]["error"]
    assert text and "\n" not in text and "\r" not in text, text
    assert not RAW_EXCEPTION.search(text), text
    return str(text)


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _upload(agent: Agent, data: bytes) -> dict[str, Any]:
    with _ws(agent) as ws:
        ws.send(json.dumps({"type": "upload", "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}))
        first = json.loads(ws.recv(10))
        if first["type"] != "send":
            return first  # type: ignore[no-any-return]
        ws.send(data)
        return json.loads(ws.recv(120))  # type: ignore[no-any-return]


def _run(spec: dict[str, Any], job_id: str = "hostile-1") -> dict[str, Any]:
    return {"type": "run", "v": 1, "job_id": job_id, "spec": spec, "staging": None}


def _models_bytes(agent: Agent) -> int:
    return sum(p.stat().st_size for p in (agent.folder / "models").rglob("*") if p.is_file())


# ----------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def hostile(device_python: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:  # noqa: F811
    """An agent with its default limits, whose devices file (what its workers could read) registers the agent
    itself as ``self``: what a job that targets it would be forwarded to."""
    work = tmp_path_factory.mktemp("hostile")
    devices = work / "devices.json"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGESTUDIO_DEVICES", str(devices))
        agent = Agent(device_python, work / "agent")
    devices.write_text(json.dumps({"self": {"name": "self", "host": "127.0.0.1", "port": agent.port,
                                            "token": agent.token, "tls": False, "added_at": 0.0}}))
    yield agent
    agent.kill()


@pytest.fixture(scope="module")
def ref(hostile: Agent) -> str:
    """The digits CNN (TFLite) uploaded to the agent: its ``cas:`` reference."""
    data = _zip({"digits_cnn.tflite": (SAMPLES / "digits_cnn.tflite").read_bytes()})
    assert _upload(hostile, data)["type"] == "stored"
    return f"cas:{hashlib.sha256(data).hexdigest()}/digits_cnn.tflite"


# ---------------------------------------------------------------------------------------------------- tests
def test_jobs_read_only_uploads_and_never_say_which_paths_exist(hostile: Agent, ref: str, tmp_path: Path) -> None:
    """inspect, bench, eval and the parity call on a model or data file outside the uploads (or a reference
    that climbs out of one) are refused at once, in the same words whether the path exists or not."""
    outside = tmp_path / "outside" / "secret.tflite"
    outside.parent.mkdir()
    shutil.copy(SAMPLES / "digits_cnn.tflite", outside)
    missing = tmp_path / "nowhere" / "secret.tflite"
    feeds = base64.b64encode(_zip({"image.npy": b""})).decode()

    def jobs(path: str) -> list[dict[str, Any]]:
        return [{"kind": "inspect", "model": path, "options": {}},
                {"kind": "bench", "model": path, "runtime": "litert", "options": {"iterations": 5}},
                {"kind": "eval", "model": path, "options": {"dataset": str(SAMPLES / "digits_test.npz")}},
                {"kind": "eval", "model": ref, "options": {"dataset": path}},
                {"kind": "bench", "model": ref, "options": {"iterations": 5, "inputs": {"data": path}}},
                {"kind": "call", "options": {"function": "edgestudio.agent.jobs:parity_outputs", "kwargs": {
                    "model": path, "runtime": "litert", "feeds": feeds}}}]

    for there, gone in zip(jobs(str(outside)), jobs(str(missing))):
        t0 = time.monotonic()
        a, b = _refusal(_ask(hostile, _run(there))), _refusal(_ask(hostile, _run(gone)))
        assert a == b and "upload reference" in a and "secret" not in a, (a, b)
        assert time.monotonic() - t0 < 5
    sha = ref[4:].split("/")[0]
    for escape in (f"cas:{sha}/../../agent.json", f"cas:{sha}/../{sha}/.complete", f"cas:{sha}//etc/hostname",
                   f"cas:{'0' * 64}/digits_cnn.tflite"):
        assert "names no upload" in _refusal(_ask(hostile, _run({"kind": "inspect", "model": escape})))
    with _ws(hostile) as ws:  # the reference itself still works: the upload is read
        ws.send(json.dumps(_run({"kind": "inspect", "model": ref, "options": {}})))
        while (msg := json.loads(ws.recv(60)))["type"] not in ("done", "failed", "cancelled"):
            pass
    assert msg["type"] == "done", msg
    assert msg["data"]["result"]["inputs"][0]["shape"][1:] == [8, 8, 1]  # the digits CNN: 8x8 images


def test_uploads_are_bounded_unpacked_and_by_the_models_quota(hostile: Agent, device_python: str,  # noqa: F811
                                                              tmp_path: Path) -> None:
    """A 254 KB upload that inflates to 262 MB is refused before anything is written (default limits); with
    small limits, an upload over the unpacked limit, one over the folder's quota and one whose headers lie are
    refused too, and nothing of theirs stays on the disk."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("weights.bin", "w", force_zip64=True) as f:
        chunk = bytes(1 << 20)
        for _ in range(250):
            f.write(chunk)
    bomb = buf.getvalue()
    assert len(bomb) < 300_000
    before = _models_bytes(hostile)
    assert "decompression bomb" in _refusal(_upload(hostile, bomb))
    assert _models_bytes(hostile) == before
    present = _ask(hostile, {"type": "has", "sha256": hashlib.sha256(bomb).hexdigest()})
    assert present is not None and present["present"] is False

    small = Agent(device_python, tmp_path / "small", "--max-upload-mb", "1", "--models-quota-mb", "1")
    try:
        table = bytes(b"ACGT"[i & 3] for i in range(256))  # 3 MiB that compress ~4x: within the ratio
        over = _zip({"w.bin": random.Random(1).randbytes(3 << 20).translate(table)}, zipfile.ZIP_DEFLATED)
        assert len(over) < 1 << 20
        assert "unpacks to more than the limit of 1,048,576 bytes" in _refusal(_upload(small, over))
        first = _zip({"a.bin": os.urandom(600_000)})
        assert _upload(small, first)["type"] == "stored"
        refused = _refusal(_upload(small, _zip({"b.bin": os.urandom(600_000)})))
        assert "quota" in refused and "full" in refused, refused
        lying = bytearray(_zip({"c.onnx": bytes(4 << 20)}, zipfile.ZIP_DEFLATED))
        for sig, at in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):  # headers declare 1,000 bytes
            i = lying.find(sig)
            lying[i + at:i + at + 4] = (1000).to_bytes(4, "little")
        _refusal(_upload(small, bytes(lying)))
        stored = sorted(p.name for p in (small.folder / "models").iterdir())
        assert stored == [hashlib.sha256(first).hexdigest()], stored
        assert 600_000 <= _models_bytes(small) < 700_000
    finally:
        small.kill()


def test_log_lines_cannot_be_forged(hostile: Agent, ref: str) -> None:
    """Newlines, carriage returns, ESC and Unicode line separators in a job id, a file name, a request type
    or a hash are escaped in the agent's log: every line of it is a record of its own."""
    from websockets.exceptions import ConnectionClosed

    frames: list[dict[str, Any]] = [
        _run({"kind": "inspect", "model": ref, "options": {}}, job_id=f"j1\n{FORGED}"),
        _run({"kind": "inspect", "model": f"{ref}\r{FORGED}", "options": {}}),
        _run({"kind": "inspect", "model": ref, "runtime": f"litert\n{FORGED}"}),
        {"type": f"facts\u2028{FORGED}\x1b[2J"},
        {"type": "has", "sha256": f"\x85{FORGED}"},
        _run({"kind": "inspect", "model": ref, "options": {f"shapes\n{FORGED}": {}}}, job_id="j\x1b]0;t\x07"),
    ]
    for frame in frames:
        with _ws(hostile) as ws, contextlib.suppress(ConnectionClosed):  # a job that started: read to its end
            ws.send(json.dumps(frame))
            while json.loads(ws.recv(60))["type"] not in ("error", "failed", "done", "cancelled"):
                pass
    time.sleep(0.3)
    text = hostile.log()
    lines = text.split("\n")
    assert not [line for line in lines if line.startswith(FORGED[:23])]  # no record the agent did not write
    bad = [line for line in lines if line and not LOG_LINE.match(line)]
    assert not bad, bad[:5]
    assert not [c for c in ("\r", "\x1b", "\u2028", "\x85", "\x07") if c in text]
    assert "\\n" + FORGED in text  # the forged line is there, escaped, inside a record of the agent's


def test_a_job_never_targets_the_agent_that_runs_it(hostile: Agent, ref: str) -> None:
    """A device naming an agent (the one running the job, registered in the devices file it can read, or any
    other) is refused at once: no job is queued, forwarded or left waiting on itself."""
    feeds = base64.b64encode(_zip({"image.npy": b""})).decode()
    for device in ("CPU@agent:self", "agent:self", "CPU@AGENT:self", "CPU@agent:elsewhere"):
        for spec in ({"kind": "bench", "model": ref, "device": device, "options": {"iterations": 5}},
                     {"kind": "inspect", "model": ref, "device": device},
                     {"kind": "call", "options": {"function": "edgestudio.agent.jobs:parity_outputs", "kwargs": {
                         "model": ref, "runtime": "litert", "feeds": feeds, "device": device}}}):
            t0 = time.monotonic()
            assert "names an agent" in _refusal(_ask(hostile, _run(spec))), device
            assert time.monotonic() - t0 < 5


def _handshake(port: int, headers: list[tuple[str, str]]) -> int:
    """A WebSocket handshake on a raw socket (so a header can be repeated); the HTTP status."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET /v1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{lines}\r\n".encode())
        return int(s.recv(200).split(b"\r\n", 1)[0].split()[1])


def test_exactly_one_authorization_header(hostile: Agent) -> None:
    right, wrong = ("Authorization", f"Bearer {hostile.token}"), ("Authorization", "Bearer guess")
    assert _handshake(hostile.port, [right]) == 101
    for headers in ([wrong, right], [right, wrong], [right, right], [wrong, right, wrong]):
        assert _handshake(hostile.port, headers) == 400, headers
    time.sleep(0.2)
    log = hostile.log()
    assert "refused 127.0.0.1: 2 Authorization headers" in log and "Traceback" not in log


def test_malformed_fields_are_answered_with_one_line_protocol_errors(hostile: Agent, ref: str) -> None:
    """Every field checked: wrong types, non-finite numbers, absurd values, frames that are not requests, each
    answered with one line naming the field (never an exception's text), and the agent goes on serving."""
    sha = "0" * 64

    def bench(**options: Any) -> str:
        return json.dumps(_run({"kind": "bench", "model": ref, "runtime": "litert", "options": options}))

    def spec(**fields: Any) -> str:
        return json.dumps(_run({"kind": "bench", "model": ref, "options": {"iterations": 5}, **fields}))

    cases: list[tuple[str | bytes, str]] = [
        (f'{{"type": "upload", "sha256": "{sha}", "size": 1e309}}', "'size'"),
        (f'{{"type": "upload", "sha256": "{sha}", "size": NaN}}', "'size'"),
        (f'{{"type": "upload", "sha256": "{sha}", "size": "10"}}', "'size'"),
        (f'{{"type": "upload", "sha256": "{sha}", "size": -1}}', "'size'"),
        ('{"type": "has", "sha256": 5}', "'sha256'"),
        (bench(iterations="NaN").replace('"NaN"', "NaN"), "'options.iterations'"),
        (bench(iterations=10**30), "'options.iterations'"),
        (bench(iterations=True), "'options.iterations'"),
        (bench(iterations=0), "'options.iterations'"),
        (bench(warmup=-1), "'options.warmup'"),
        (bench(threads=0), "'options.threads'"),
        (bench(threads=2.5), "'options.threads'"),
        (bench(duration_s="Inf").replace('"Inf"', "Infinity"), "'options.duration_s'"),
        (bench(shapes={"image": [1, 0, 28]}), "'options.shapes"),
        (bench(shapes={"image": [1 << 20, 1 << 20]}), "'options.shapes'"),
        (bench(inputs={"values": {"x": "Inf"}}).replace('"Inf"', "Infinity"), "'options.inputs.values'"),
        (bench(keep_samples="yes"), "'options.keep_samples'"),
        (bench(precision="f32; rm -rf"), "'options.precision'"),
        (bench(bogus=1), "'bogus'"),
        (spec(timeout_s="NaN").replace('"NaN"', "NaN"), "'timeout_s'"),
        (spec(memory_limit_mb=-1), "'memory_limit_mb'"),
        (spec(runtime="tfjs"), "'runtime'"),
        (spec(output="/tmp/x"), "'output'"),
        (json.dumps(_run({"kind": "eval", "model": ref, "options": {"dataset": ref, "limit": -1}})), "'options.limit'"),
        (json.dumps({**_run({"kind": "inspect", "model": ref}), "job_id": 5}), "'job_id'"),
        (json.dumps({**_run({"kind": "inspect", "model": ref}), "v": True}), "protocol version"),
        (json.dumps({**_run({"kind": "inspect", "model": ref}), "spec": []}), "'spec'"),
        ("[1, 2]", "JSON object"), ("null", "JSON object"), ('"run"', "JSON object"),
        ("[" * 100_000, "not JSON"), ("1" * 5000, "not JSON"), (b"\x00" * 10, "binary frame"),
        ('{"type": "facts", "extra": 1}', "'extra'"), ('{"type": ["run"]}', "unknown request"),
    ]
    for frame, expected in cases:
        text = _refusal(_ask(hostile, frame))
        assert expected in text, (frame[:80], text)
    assert _ask(hostile, {"type": "has", "sha256": ref[4:].split("/")[0]})["present"]  # type: ignore[index]
    assert "Traceback" not in hostile.log()


def test_held_connections_do_not_stop_the_agent(hostile: Agent, ref: str) -> None:
    """200 connections held open mid-handshake: the agent still answers an authenticated request."""
    held = []
    try:
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", hostile.port), timeout=10)
            s.sendall(b"GET /v1 HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the rest
            held.append(s)
        t0 = time.monotonic()
        assert _ask(hostile, {"type": "has", "sha256": ref[4:].split("/")[0]})["present"]  # type: ignore[index]
        assert time.monotonic() - t0 < 10
    finally:
        for s in held:
            s.close()


def test_a_seeded_fuzz_run_of_hostile_requests_holds(device_python: str) -> None:  # noqa: F811
    """30 cases of benchmarks/fuzz_agent.py (its six classes, five each) against an agent of their own."""
    spec = importlib.util.spec_from_file_location("fuzz_agent", ROOT / "benchmarks" / "fuzz_agent.py")
    assert spec is not None and spec.loader is not None
    fuzz = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = fuzz  # its dataclasses look their module up
    spec.loader.exec_module(fuzz)
    t0 = time.monotonic()
    summary = fuzz.run(seed=11, n=30, python=device_python)
    assert summary["cases"] == 30 and all(c["cases"] == 5 for c in summary["by_class"].values())
    assert summary["ok"], json.dumps({k: summary[k] for k in ("failures", "log_bad_lines", "agent_alive",
                                                              "within_quota", "written_outside")}, indent=1)[:3000]
    assert time.monotonic() - t0 < 60
