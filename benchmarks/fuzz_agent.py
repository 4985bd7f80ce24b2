"""Hostile requests to a device agent, seeded: what an authenticated (or not) client tried against ``edgestudio
agent``, as classes of cases generated from one seed:

- path: a job's model, dataset, input data or parity model named by a path on the device (existing and not),
  a ``cas:`` reference that climbs out of its upload, URLs, ``/proc``;
- bomb: uploads that inflate far beyond their size (within the limits, or far over them), declare huge sizes,
  lie in their headers, hold thousands of members, go over the unpacked limit or the models folder's quota;
  traversal, links, a lying hash;
- log: control characters (newline, carriage return, ESC, Unicode line separators) in every field the agent
  could log, carrying a forged "refused 10.6.6.6" line;
- recursion: a job whose device names an agent (``CPU@agent:self``: the agent itself, registered in the
  devices file it can read);
- auth: no, wrong, or several ``Authorization`` headers;
- malformed: every field of every request given the wrong type, a non-finite number, an out-of-range or absurd
  value, unknown keys, frames that are not requests.

Each case is judged: refused at once (a run request's first answer is ``failed``, within seconds), in one line,
never an exception's text; a path's refusal says the same whether or not the path exists; an HTTP refusal is 400
or 401. After all cases: the agent still answers, every line of its log is a record of its own (a timestamp, or
an indented traceback line), its models folder is within its quota, nothing was written outside its folder.

    .venv/bin/python benchmarks/fuzz_agent.py                 # 300 cases, seed 0
    .venv/bin/python benchmarks/fuzz_agent.py --cases 1000 --seed 7
The test suite runs 30 of them (tests/test_agent_hostile.py). The agent runs in the ``device`` environment when
it exists (as the agent tests make it), else in this Python; everything stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
SAMPLES = ROOT / "resources" / "samples"
DEVICE_PYTHON = ROOT / ".cache" / "envs" / "device" / "bin" / "python"

CLASSES = ("path", "bomb", "log", "recursion", "auth", "malformed")
MAX_UPLOAD_MB = 2  # the fuzzed agent's limits: small, so bombs and the quota are quick to reach
QUOTA_MB = 4
REPLY_S = 8.0  # a refusal comes at once; this is only how long a broken agent is waited for
FORGED = "2026-01-01 00:00:00,000 WARNING refused 10.6.6.6: wrong token"
CONTROLS = ["\n", "\r", "\r\n", "\x1b[2J", "\x1b]0;owned\x07", "\u2028", "\u2029", "\x85", "\x00", "\x0b", "\x0c",
            "\u202e", "\t"]
RAW_EXCEPTION = re.compile(r"Traceback|\b[A-Z][A-Za-z]*(Error|Exception)\b|could not handle this request")
LOG_LINE = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) |    \| )")


@dataclass
class Case:
    cls: str
    name: str
    run: Callable[[Ctx], list[str]]  # the problems found (none: the agent held)


@dataclass
class Ctx:
    port: int
    token: str
    ref: str  # a real upload: cas:SHA/digits_cnn.tflite
    sha: str
    outside: Path  # a model file outside the agent's folder
    agent_dir: Path
    cache: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ plumbing
def _connect(ctx: Ctx, headers: dict[str, str] | None = None) -> Any:
    from websockets.sync.client import connect

    hdr = {"Authorization": f"Bearer {ctx.token}"} if headers is None else headers
    return connect(f"ws://127.0.0.1:{ctx.port}/v1", additional_headers=hdr, proxy=None, open_timeout=10,
                   max_size=None, compression=None, close_timeout=2)


def _judge_error(text: Any) -> list[str]:
    if not isinstance(text, str) or not text:
        return [f"no error text: {text!r:.80}"]
    problems = []
    if "\n" in text or "\r" in text:
        problems.append(f"error spans lines: {text!r:.120}")
    if RAW_EXCEPTION.search(text):
        problems.append(f"raw exception text: {text!r:.160}")
    return problems


def _exchange(ctx: Ctx, frames: list[str | bytes], *, expect: tuple[str, ...] = ("error", "failed")) -> tuple[
        dict[str, Any] | None, list[str]]:
    """Send ``frames`` on one connection; the first answer and the problems with it (not refused at once, not one
    line, an exception's text). A transport that closes on a frame it cannot take counts as refused."""
    from websockets.exceptions import ConnectionClosed

    try:
        ws = _connect(ctx)
    except Exception as exc:  # noqa: BLE001 - the agent must accept an authenticated client
        return None, [f"cannot connect: {type(exc).__name__}: {exc}"]
    try:
        for f in frames:
            ws.send(f)
        raw = ws.recv(timeout=REPLY_S)
    except TimeoutError:
        return None, [f"no answer within {REPLY_S:.0f} s"]
    except ConnectionClosed:
        return None, []
    finally:
        ws.close()
    reply = json.loads(raw)
    if reply.get("type") not in expect:
        what = json.dumps(reply.get("data") or reply)[:120]
        return reply, [f"not refused at once: answered {reply.get('type')!r} ({what})"]
    error = reply.get("error") if reply.get("type") == "error" else (reply.get("data") or {}).get("error")
    return reply, _judge_error(error)


def _error_of(reply: dict[str, Any] | None) -> str | None:
    if reply is None:
        return None
    return reply.get("error") if reply.get("type") == "error" else (reply.get("data") or {}).get("error")


def _run_msg(spec: dict[str, Any], job_id: Any = "fuzz-1", **extra: Any) -> dict[str, Any]:
    return {"type": "run", "v": 1, "job_id": job_id, "spec": spec, "staging": None, **extra}


def _bench(ctx: Ctx, **over: Any) -> dict[str, Any]:
    spec = {"kind": "bench", "model": ctx.ref, "runtime": "litert", "device": "CPU", "output": None,
            "options": {"iterations": 5, "warmup": 1, "keep_samples": False}}
    spec.update(over)
    return spec


def _eval(ctx: Ctx, **over: Any) -> dict[str, Any]:
    spec = {"kind": "eval", "model": ctx.ref, "runtime": "litert", "device": "CPU",
            "options": {"dataset": ctx.ref, "limit": 5}}
    spec.update(over)
    return spec


def _inspect(ctx: Ctx, **over: Any) -> dict[str, Any]:
    spec = {"kind": "inspect", "model": ctx.ref, "options": {}}
    spec.update(over)
    return spec


def _parity(ctx: Ctx, **kwargs: Any) -> dict[str, Any]:
    kw = {"model": ctx.ref, "runtime": "litert", "feeds": base64.b64encode(b"PK\x05\x06" + bytes(18)).decode(),
          "device": "CPU", **kwargs}
    return {"kind": "call", "options": {"function": "edgestudio.agent.jobs:parity_outputs", "kwargs": kw}}


def _spec_with(ctx: Ctx, where: str, value: Any, maker: str = "bench") -> dict[str, Any]:
    """A job whose field ``where`` (model of a ``maker`` job, dataset, data, parity) is ``value``."""
    if where == "model":
        return {"bench": _bench, "eval": _eval, "inspect": _inspect}[maker](ctx, model=value)
    if where == "dataset":
        return _eval(ctx, options={"dataset": value})
    if where == "data":
        return _bench(ctx, options={"iterations": 5, "inputs": {"data": value}})
    return _parity(ctx, model=value)


# ------------------------------------------------------------------------------------------------ classes
def gen_path(rng: random.Random, ctx: Ctx) -> Case:
    where = rng.choice(["model", "dataset", "data", "parity"])
    maker = rng.choice(["bench", "eval", "inspect"])
    kind = rng.choice(["pair", "ref", "other"])
    if kind == "pair":  # an existing path and its missing twin: refused alike, in the same words
        real = rng.choice([str(ctx.outside), str(SAMPLES / "digits_cnn.tflite"), str(ctx.agent_dir / "agent.json"),
                           str(ctx.agent_dir / "models" / ctx.sha / "digits_cnn.tflite"), "/etc/hostname"])
        twin = f"/nonexistent-{rng.randrange(10**9)}/{Path(real).name}"

        def run(c: Ctx) -> list[str]:
            a, pa = _exchange(c, [json.dumps(_run_msg(_spec_with(c, where, real, maker)))])
            b, pb = _exchange(c, [json.dumps(_run_msg(_spec_with(c, where, twin, maker)))])
            problems = pa + pb
            if _error_of(a) != _error_of(b):
                problems.append(f"an existing path is refused differently from a missing one: {_error_of(a)!r:.100}"
                                f" vs {_error_of(b)!r:.100}")
            return problems

        return Case("path", f"{maker} {where}: {real} vs its missing twin", run)
    sha = ctx.sha
    refs: list[Any] = [f"cas:{sha}/../../agent.json", f"cas:{sha}/../{sha}/digits_cnn.tflite/../../..",
                       f"cas:{sha}//etc/passwd", f"cas:{'0' * 64}/x.onnx", f"cas:{sha.upper()}/digits_cnn.tflite",
                       f"cas:{sha}/.complete", f"cas:../{sha}", "cas:", f"cas:{sha}/nothing-here.onnx",
                       f"cas:{sha}/digits_cnn.tflite\x00.onnx", f"cas:{sha}\\..\\..\\agent.json"]
    others: list[Any] = ["resources/samples/digits_cnn.tflite", "~/.ssh/id_rsa", "file:///etc/passwd",
                         "/proc/self/environ", "../../../../etc/shadow", "\\\\?\\C:\\Windows\\win.ini", "", ".", "/",
                         5, ["x"], {"path": "/etc/passwd"}, "x" * 5000]
    values = refs if kind == "ref" else others
    value = rng.choice(values)

    def run_one(c: Ctx) -> list[str]:
        return _exchange(c, [json.dumps(_run_msg(_spec_with(c, where, value, maker)))])[1]

    return Case("path", f"{maker} {where}: {value!r:.60}", run_one)


def _bomb_bytes(ctx: Ctx, kind: str) -> bytes:
    if kind in ctx.cache:
        return ctx.cache[kind]  # type: ignore[no-any-return]
    buf = io.BytesIO()
    if kind in ("ratio", "big"):  # zeros, ~1000x: under the unpacked limit (1.5 MiB), or far over it (64 MiB)
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("weights.bin", "w", force_zip64=True) as f:
            chunk = bytes(1 << 19)
            for _ in range(3 if kind == "ratio" else 128):
                f.write(chunk)
    elif kind == "declared":  # a stored member whose headers claim 3 GiB
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("model.onnx", b"x" * 100)
        data = bytearray(buf.getvalue())
        _patch_sizes(data, file_size=3 << 30)
        ctx.cache[kind] = bytes(data)
        return ctx.cache[kind]  # type: ignore[no-any-return]
    elif kind == "lying":  # headers declare 1000 bytes; the stream inflates to 8 MiB
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("model.onnx", bytes(8 << 20))
        data = bytearray(buf.getvalue())
        _patch_sizes(data, file_size=1000)
        ctx.cache[kind] = bytes(data)
        return ctx.cache[kind]  # type: ignore[no-any-return]
    elif kind == "members":
        with zipfile.ZipFile(buf, "w") as zf:
            for i in range(12_000):
                zf.writestr(f"m/{i}", b"")
    elif kind == "unpacked":  # compresses only ~4x (within the ratio) but unpacks over the 2 MB limit
        table = bytes(b"ACGT"[i & 3] for i in range(256))
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("weights.bin", random.Random(1).randbytes(5 << 20).translate(table))
    elif kind == "traversal":
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("../../escaped.txt", "x")
    elif kind == "absolute":
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("/tmp/escaped-abs.txt", "x")
    elif kind == "symlink":
        with zipfile.ZipFile(buf, "w") as zf:
            info = zipfile.ZipInfo("link")
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, "/etc/passwd")
    elif kind == "notzip":
        buf.write(os.urandom(4096))
    ctx.cache[kind] = buf.getvalue()
    return ctx.cache[kind]  # type: ignore[no-any-return]


def _patch_sizes(data: bytearray, *, file_size: int) -> None:
    """Make the central directory (and local header) of every member declare ``file_size`` uncompressed bytes."""
    for sig, at in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):  # central directory, local header
        i = 0
        while (i := data.find(sig, i)) >= 0:
            struct.pack_into("<I", data, i + at, file_size)
            i += 4


def _upload(ctx: Ctx, data: bytes, *, sha: str | None = None, size: int | None = None) -> tuple[
        dict[str, Any] | None, list[str]]:
    from websockets.exceptions import ConnectionClosed

    sha = sha or hashlib.sha256(data).hexdigest()
    try:
        ws = _connect(ctx)
    except Exception as exc:  # noqa: BLE001
        return None, [f"cannot connect: {type(exc).__name__}: {exc}"]
    try:
        ws.send(json.dumps({"type": "upload", "sha256": sha, "size": len(data) if size is None else size}))
        first = json.loads(ws.recv(timeout=REPLY_S))
        if first.get("type") != "send":
            return first, []  # refused before the bytes travel
        ws.send(data)
        return json.loads(ws.recv(timeout=60)), []
    except TimeoutError:
        return None, ["no answer to an upload"]
    except ConnectionClosed:
        return None, []
    finally:
        ws.close()


def gen_bomb(rng: random.Random, ctx: Ctx) -> Case:
    kind = rng.choice(["ratio", "big", "declared", "lying", "members", "unpacked", "quota", "traversal", "absolute",
                       "symlink", "notzip", "hash", "size-lie"])

    def run(c: Ctx) -> list[str]:
        if kind == "quota":  # distinct incompressible uploads, 1.5 MB each, until the 4 MB quota refuses one
            for _ in range(4):
                buf = io.BytesIO()
                with zipfile.ZipFile(buf, "w") as zf:
                    zf.writestr("w.bin", os.urandom(3 << 19))
                reply, problems = _upload(c, buf.getvalue())
                if problems or reply is None:
                    return problems or ["an upload got no answer"]
                if reply.get("type") == "error":
                    err = reply.get("error", "")
                    return _judge_error(err) + ([] if "quota" in err else [f"refused, but not for the quota: {err}"])
            return ["the models folder took more than its quota"]
        data = _bomb_bytes(c, kind if kind not in ("hash", "size-lie") else "traversal")
        sha = "1" * 64 if kind == "hash" else None
        size = len(data) - 1 if kind == "size-lie" else None
        reply, problems = _upload(c, data, sha=sha, size=size)
        if reply is not None and reply.get("type") != "error":
            problems.append(f"a {kind} upload was not refused: {reply}")
        elif reply is not None:
            problems += _judge_error(reply.get("error"))
        return problems

    return Case("bomb", kind, run)


def gen_log(rng: random.Random, ctx: Ctx) -> Case:
    ctl = rng.choice(CONTROLS)
    payload = f"x{ctl}{FORGED}{rng.choice(CONTROLS)}"
    where = rng.choice(["job_id", "model", "runtime", "device", "type", "kind", "option", "sha", "precision"])
    if where == "job_id":
        msg: dict[str, Any] = _run_msg(_inspect(ctx), job_id=payload)
    elif where == "model":
        msg = _run_msg(_inspect(ctx, model=f"{ctx.ref}{payload}"))
    elif where in ("runtime", "device"):
        msg = _run_msg(_bench(ctx, **{where: payload}))
    elif where == "type":
        msg = {"type": payload}
    elif where == "kind":
        msg = _run_msg(_inspect(ctx, kind=payload))
    elif where == "option":
        msg = _run_msg(_inspect(ctx, options={payload: 1}))
    elif where == "precision":
        msg = _run_msg(_bench(ctx, options={"iterations": 5, "precision": payload}))
    else:
        msg = {"type": "has", "sha256": payload}

    def run(c: Ctx) -> list[str]:
        return _exchange(c, [json.dumps(msg)])[1]

    return Case("log", f"{where} carrying {ctl!r}", run)


def gen_recursion(rng: random.Random, ctx: Ctx) -> Case:
    device = rng.choice(["CPU@agent:self", "agent:self", "CPU@agent:other", "GPU@AGENT:self", "@agent:self",
                         "CPU@agent:", "CPU@Agent:self", "litert@agent:self"])
    make = rng.choice(["bench", "eval", "inspect", "parity"])

    def run(c: Ctx) -> list[str]:
        spec = {"bench": _bench, "eval": _eval, "inspect": _inspect}[make](c, device=device) if make != "parity" \
            else _parity(c, device=device)
        t0 = time.monotonic()
        _, problems = _exchange(c, [json.dumps(_run_msg(spec))])
        if time.monotonic() - t0 > 3:
            problems.append(f"refused only after {time.monotonic() - t0:.1f} s")
        return problems

    return Case("recursion", f"{make} on {device}", run)


def gen_auth(rng: random.Random, ctx: Ctx) -> Case:
    kind = rng.choice(["none", "wrong", "basic", "two-right-second", "two-right-first", "two-right", "three",
                       "empty", "spaces", "extra"])

    def run(c: Ctx) -> list[str]:
        right = f"Bearer {c.token}"
        headers = {"none": [], "wrong": [("Authorization", "Bearer guess")],
                   "basic": [("Authorization", f"Basic {c.token}")],
                   "two-right-second": [("Authorization", "Bearer guess"), ("Authorization", right)],
                   "two-right-first": [("Authorization", right), ("Authorization", "Bearer guess")],
                   "two-right": [("Authorization", right), ("Authorization", right)],
                   "three": [("Authorization", "Bearer a"), ("Authorization", right), ("Authorization", "Bearer b")],
                   "empty": [("Authorization", "")], "spaces": [("Authorization", "Bearer    ")],
                   "extra": [("Authorization", f"{right} {c.token}")]}[kind]
        status = _handshake(c.port, headers)
        return [] if status in (400, 401) else [f"handshake answered {status} (not 400/401)"]

    return Case("auth", kind, run)


def _handshake(port: int, headers: list[tuple[str, str]]) -> int:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers)
    with socket.create_connection(("127.0.0.1", port), timeout=REPLY_S) as s:
        s.sendall(f"GET /v1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{lines}\r\n".encode())
        head = s.recv(200).split(b"\r\n", 1)[0]
    try:
        return int(head.split()[1])
    except (IndexError, ValueError):
        return -1


INF, NAN = "__INF__", "__NAN__"  # written into the JSON as Infinity / NaN (what Python's json reads)
BAD_NUMBERS = [INF, NAN, f"-{INF}", -1, 0, 10**30, 1.5, "100", True, None, [], {}, "x" * 300, -0.0, 1e308]


def _bad_for(field_name: str) -> list[Any]:
    specific: dict[str, list[Any]] = {
        "iterations": [0, -1, 10**8, 1.5, "100", True, INF, NAN, None, [5]],
        "warmup": [-1, 10**6, NAN, "1", 2.5, False],
        "threads": [0, -2, 10**5, 2.5, "2", True, INF],
        "duration_s": [0, -1, INF, NAN, "1", 10**9, True],
        "timeout_s": [0, -5, NAN, INF, "1", True, 10**12],
        "memory_limit_mb": [-1, NAN, INF, "big", 0],
        "limit": [0, -1, 1.5, INF, "5", True],
        "keep_samples": ["yes", 1, None, 0],
        "exclusive": ["yes", 1, 0.0],
        "shapes": [[], "1x3", {"x": []}, {"x": [0]}, {"x": [-1]}, {"x": [2**40]}, {"x": [1] * 17},
                   {"x": [1 << 20, 1 << 20]}, {"x": "1,2"}, {"x": [1.5]}, {"x": [True]}, {"x": [NAN]}],
        "inputs": [[], {"data": 5}, {"values": {"x": INF}}, {"values": {"x": NAN}}, {"bogus": 1},
                   {"shapes": {"x": [0]}}, {"values": {"x": "1"}}, {"values": {"x": 1e300 * 10}}],
        "precision": [5, "F32!", "x" * 40, "", ["f32"]],
        "runtime": [5, "tfjs", "ort-web", "nonexistent", "../x", "", "ONNXRUNTIME"],
        "device": [5, "", "CPU;rm -rf", "x" * 100, ["CPU"], "CPU GPU"],
        "size": [INF, NAN, -1, "10", True, 1.5, None, [], 10**30, f"-{INF}"],
        "sha256": [5, "", "g" * 64, "A" * 64, None, "0" * 63, ["0" * 64]],
        "v": [2, "1", None, 1.0000001, 0],
        "job_id": [5, "", "a" * 200, None, "../x", "id with space", ["x"]],
        "kind": ["convert", "optimize", "package", 5, None, "CALL", "bench "],
        "function": ["os:system", "builtins:eval", "edgestudio.agent.jobs:encode_arrays", 5, None,
                     "edgestudio.agent.jobs:parity_outputs.__globals__"],
        "feeds": ["not base64!", 5, "", None, "A" * 10, base64.b64encode(os.urandom(64)).decode()],
        "staging": ["/tmp/x", 5],
        "output": ["/tmp/x", 5],
        "dataset": [None, 5, "", "relative.npz"],
    }
    return specific.get(field_name, BAD_NUMBERS)


def gen_malformed(rng: random.Random, ctx: Ctx) -> Case:
    target = rng.choice(["bench", "eval", "spec", "run", "upload", "has", "call", "frame", "unknown"])
    if target == "frame":
        frames: list[str | bytes] = ["[]", "1", "null", '"x"', "{", "[" * 100_000, '{"type": 5}', "{}",
                                          '{"type": "facts", "extra": 1}', b"\x00" * 100, "\ufffd" * 100,
                                          '{"type": "cancel", "v": 1, "job_id": "x"}', '{"a": ' * 50 + "1" + "}" * 50,
                                          "1" * 5000, '{"type": "has", "sha256": "' + "0" * 64 + '", "type": 1}']
        frame = rng.choice(frames)
        return Case("malformed", f"frame {frame!r:.40}", lambda c: _exchange(c, [frame])[1])
    fields = {"bench": ["iterations", "warmup", "threads", "duration_s", "shapes", "inputs", "precision",
                        "keep_samples", "bogus"],
              "eval": ["dataset", "limit", "inputs", "bogus"],
              "spec": ["runtime", "device", "timeout_s", "memory_limit_mb", "exclusive", "output", "kind", "bogus"],
              "run": ["v", "job_id", "staging", "spec", "bogus"],
              "upload": ["size", "sha256", "bogus"], "has": ["sha256", "bogus"],
              "call": ["function", "feeds", "kwargs", "bogus"], "unknown": ["type"]}[target]
    name = rng.choice(fields)
    value = rng.choice(_bad_for(name))
    unknown_type = rng.choice(["hello", "RUN", "upload ", "", 5, None, ["run"]])
    bad_kwargs = rng.choice([[], "x", 5, {"evil": 1}])

    def build(c: Ctx) -> dict[str, Any]:
        if target in ("upload", "has"):
            msg: dict[str, Any] = {"type": target, "sha256": "0" * 64, **({"size": 10} if target == "upload" else {})}
            msg[name] = value
            return msg
        if target == "unknown":
            return {"type": unknown_type}
        if target == "call":
            spec = _parity(c)
            if name == "function":
                spec["options"]["function"] = value
            elif name == "kwargs":
                spec["options"]["kwargs"] = bad_kwargs
            elif name == "feeds":
                spec["options"]["kwargs"]["feeds"] = value
            else:
                spec["options"]["bogus"] = 1
            return _run_msg(spec)
        spec = _bench(c) if target in ("bench", "spec", "run") else _eval(c)
        if target in ("bench", "eval"):
            spec["options"][name] = value
        elif target == "spec":
            spec[name] = value
        msg = _run_msg(spec)
        if target == "run":
            msg[name] = value if name != "spec" else bad_kwargs
        return msg

    def run(c: Ctx) -> list[str]:
        text = json.dumps(build(c)).replace(f'"-{INF}"', "-Infinity").replace(f'"{INF}"', "Infinity").replace(
            f'"{NAN}"', "NaN")
        return _exchange(c, [text])[1]

    return Case("malformed", f"{target}.{name} = {value!r:.40}", run)


GENERATORS: dict[str, Callable[[random.Random, Ctx], Case]] = {
    "path": gen_path, "bomb": gen_bomb, "log": gen_log, "recursion": gen_recursion, "auth": gen_auth,
    "malformed": gen_malformed}


# ---------------------------------------------------------------------------------------------------- agent
class _Agent:
    """``python -m edgestudio.agent`` on loopback in a folder of its own, with small limits; its devices file
    registers the agent itself as ``self`` (what a recursion case names)."""

    def __init__(self, python: str, work: Path) -> None:
        from edgestudio.execution.envs import _package_path

        self.folder = work / "agent"
        devices = work / "devices.json"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env.update(PYTHONPATH=str(_package_path()), PYTHONNOUSERSITE="1", EDGESTUDIO_DEVICES=str(devices))
        env.pop("EDGESTUDIO_AGENT_TOKEN", None)
        self.proc = subprocess.Popen(
            [python, "-m", "edgestudio.agent", "--host", "127.0.0.1", "--port", "0", "--dir", str(self.folder),
             "--max-upload-mb", str(MAX_UPLOAD_MB), "--models-quota-mb", str(QUOTA_MB)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        second = self.proc.stdout.readline()
        if "listening on" not in first or not second.startswith("token"):
            err = self.proc.stderr.read() if self.proc.stderr and self.proc.poll() is not None else ""
            self.kill()
            raise RuntimeError(f"the agent did not start: {first.strip()} {err.strip()[-400:]}")
        self.port = int(first.split("127.0.0.1:")[1].split()[0])
        self.token = second.rsplit(" ", 1)[1].strip()
        for stream in (self.proc.stdout, self.proc.stderr):
            threading.Thread(target=lambda s=stream: [None for _ in s or []], daemon=True).start()
        devices.write_text(json.dumps({"self": {"name": "self", "host": "127.0.0.1", "port": self.port,
                                                "token": self.token, "tls": False, "added_at": 0.0}}))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _upload_seed(ctx: Ctx) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.write(SAMPLES / "digits_cnn.tflite", "digits_cnn.tflite")
    data = buf.getvalue()
    reply, problems = _upload(ctx, data)
    if problems or not reply or reply.get("type") != "stored":
        raise RuntimeError(f"the seed model could not be uploaded: {reply} {problems}")
    ctx.sha = hashlib.sha256(data).hexdigest()
    ctx.ref = f"cas:{ctx.sha}/digits_cnn.tflite"


def _listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _final_checks(ctx: Ctx, agent: _Agent, work: Path, before: set[str]) -> dict[str, Any]:
    alive_problems: list[str] = []
    try:
        ws = _connect(ctx)
        ws.send(json.dumps({"type": "has", "sha256": ctx.sha}))
        alive = json.loads(ws.recv(timeout=30)).get("present") is True and agent.proc.poll() is None
        ws.close()
    except Exception as exc:  # noqa: BLE001
        alive, alive_problems = False, [f"{type(exc).__name__}: {exc}"]
    time.sleep(0.2)  # the last records reach the file
    text = (ctx.agent_dir / "agent.log").read_text(errors="replace")
    forged = FORGED[:23]  # a record with the forged timestamp was not written by the agent
    bad = [line for line in text.split("\n") if line and (not LOG_LINE.match(line) or line.startswith(forged))]
    bad += [f"a raw control character in the log: {c!r}" for c in ("\r", "\x1b", "\x00", "\u2028", "\x85")
            if c in text]
    models = ctx.agent_dir / "models"
    used = sum(p.stat().st_size for p in models.rglob("*") if p.is_file())
    own = ("agent/agent.log", "agent/agent.json", "agent/models")  # what the agent may write
    outside = sorted(p for p in _listing(work) - before if not p.startswith(own))
    return {"agent_alive": alive, "alive_problems": alive_problems, "log_well_formed": not bad,
            "log_bad_lines": [line[:160] for line in bad[:10]], "log_lines": text.count("\n"),
            "models_bytes": used, "within_quota": used <= QUOTA_MB << 20, "written_outside": outside[:10]}


def run(seed: int, n: int, python: str | None = None) -> dict[str, Any]:
    """``n`` hostile cases from ``seed`` against a fresh agent (classes in turn, so every class runs); the
    summary (``ok``: every case held and the agent is well after them)."""
    python = python or (str(DEVICE_PYTHON) if DEVICE_PYTHON.exists() else sys.executable)
    t0 = time.perf_counter()
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="fuzz-agent-"))
    try:
        outside = work / "outside" / "secret_model.tflite"
        outside.parent.mkdir()
        shutil.copy(SAMPLES / "digits_cnn.tflite", outside)
        agent = _Agent(python, work)
        try:
            ctx = Ctx(agent.port, agent.token, "", "", outside, agent.folder)
            _upload_seed(ctx)
            before = _listing(work)
            by_class: dict[str, dict[str, int]] = {c: {"cases": 0, "failed": 0} for c in CLASSES}
            failures: list[dict[str, Any]] = []
            for i in range(n):
                cls = CLASSES[i % len(CLASSES)]
                case = GENERATORS[cls](rng, ctx)
                try:
                    problems = case.run(ctx)
                except Exception as exc:  # noqa: BLE001 - a case that breaks the harness is a finding too
                    problems = [f"harness: {type(exc).__name__}: {exc}"]
                by_class[cls]["cases"] += 1
                if problems:
                    by_class[cls]["failed"] += 1
                    failures.append({"case": i, "class": cls, "name": case.name, "problems": problems[:3]})
            final = _final_checks(ctx, agent, work, before)
        finally:
            agent.kill()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ok = (not failures and final["agent_alive"] and final["log_well_formed"] and final["within_quota"]
          and not final["written_outside"])
    return {"seed": seed, "cases": n, "python": python, "seconds": round(time.perf_counter() - t0, 2),
            "by_class": by_class, "failures": failures[:50], "failed": len(failures), **final, "ok": ok}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--python", help="the agent's interpreter (default: the device environment, else this one)")
    args = ap.parse_args()
    summary = run(args.seed, args.cases, args.python)
    print(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
