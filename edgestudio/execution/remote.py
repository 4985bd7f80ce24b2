"""Remote edge devices as execution targets: the studio's side of the device agent (:mod:`edgestudio.agent`).

A device is registered once (``edgestudio devices add NAME --host H --port P --token T``; kept in
``devices.json`` in the user's config folder, readable by the user only). Its target name is ``agent:NAME``.
A job for it uploads what it reads (the model, a dataset: zipped, content-addressed by SHA-256, sent only when
the agent lacks it), sends the :class:`~edgestudio.jobs.messages.RunRequest` with ``cas:`` references, and
relays the :class:`~edgestudio.jobs.messages.JobMessage` stream (progress, log, latency samples measured on
the device) until the job ends. A connection that drops mid-job fails the job with that reason; the next job
connects again.

Devices in the lists: each (runtime, device) the agent reports appears as ``DEVICE@agent:NAME`` (``CPU@agent:pi``),
so every place that picks a runtime x device (bench, compare, the studio's comparison) can pick a remote one; a
job on such a device is forwarded to the agent by the worker that runs it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgestudio.core.errors import Cancelled, EdgeStudioError, UsageError
from edgestudio.core.jobs import REMOTE_DEVICE, JobKind, JobRecord, JobSpec, JobStatus, new_job_id
from edgestudio.core.progress import CancelToken
from edgestudio.execution.base import TargetInfo, ThreadedExecutor
from edgestudio.jobs.messages import CancelRequest, JobMessage, RunRequest, decode, encode

AGENT_PREFIX = "agent:"
DEVICE_MARK = REMOTE_DEVICE  # CPU@agent:pi: how users name a device agent's devices


class RemoteError(EdgeStudioError):
    """A device that cannot be reached, refuses, or drops."""


@dataclass
class DeviceEntry:
    name: str
    host: str
    port: int
    token: str
    tls: bool = False
    added_at: float = 0.0

    @property
    def url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://{self.host}:{self.port}/v1"

    def public(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("token")
        d["target"] = AGENT_PREFIX + self.name
        return d


# ------------------------------------------------------------------------------------------------- registry
def devices_file() -> Path:
    override = os.environ.get("EDGESTUDIO_DEVICES")
    if override:
        return Path(override)
    from platformdirs import user_config_path

    return user_config_path("edgestudio", appauthor=False) / "devices.json"


def _load() -> dict[str, dict[str, Any]]:
    try:
        return dict(json.loads(devices_file().read_text()))
    except (OSError, ValueError):
        return {}


def _save(data: dict[str, dict[str, Any]]) -> None:
    path = devices_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.chmod(tmp, 0o600)  # it holds the tokens
    os.replace(tmp, path)


def registered_devices() -> list[DeviceEntry]:
    return [DeviceEntry(**v) for _, v in sorted(_load().items())]


def get_device(name: str) -> DeviceEntry:
    name = name.removeprefix(AGENT_PREFIX)
    data = _load()
    if name not in data:
        known = ", ".join(sorted(data)) or "none yet"
        raise UsageError(None, f"no device named {name!r} (known: {known}); add it with "
                               f"`edgestudio devices add {name} --host HOST --port PORT --token TOKEN`")
    return DeviceEntry(**data[name])


def add_device(name: str, host: str, port: int, token: str, *, tls: bool = False, check: bool = True) -> dict[str, Any]:
    """Register a device (after checking that it answers and accepts the token, unless ``check`` is off)."""
    from edgestudio.execution.envs import NAME_OK

    if not name or not set(name.lower()) <= NAME_OK:
        raise UsageError(None, f"bad device name {name!r}: use letters, digits, - _ .")
    entry = DeviceEntry(name, host, int(port), token, tls, time.time())
    facts = AgentClient(entry).facts() if check else {}
    data = _load()
    data[name] = asdict(entry)
    _save(data)
    return {**entry.public(), "facts": facts}


def remove_device(name: str) -> None:
    data = _load()
    name = name.removeprefix(AGENT_PREFIX)
    if name not in data:
        raise UsageError(None, f"no device named {name!r}")
    del data[name]
    _save(data)


def device_health(entry: DeviceEntry, timeout: float = 5.0) -> dict[str, Any]:
    """The device's facts and round-trip time, or why it cannot be reached (never raises)."""
    t0 = time.perf_counter()
    try:
        facts = AgentClient(entry, timeout=timeout).facts()
        return {**entry.public(), "online": True, "rtt_ms": round((time.perf_counter() - t0) * 1e3, 1),
                "facts": facts, "error": None}
    except EdgeStudioError as exc:
        return {**entry.public(), "online": False, "facts": {}, "error": exc.cause}


def health_dicts() -> list[dict[str, Any]]:
    """Every registered device's health (for the studio's Devices panel)."""
    return [device_health(e) for e in registered_devices()]


# --------------------------------------------------------------------------------------------- packing
def pack_model(path: Path) -> tuple[bytes, str, str]:
    """A model's files as a deterministic zip (sorted, fixed timestamps): (bytes, sha256, name). An OpenVINO
    ``.xml`` takes its ``.bin``; a folder (SavedModel, TF.js) goes whole under its name."""
    path = path.resolve()
    members: list[tuple[str, Path]] = []
    if path.is_dir():
        for f in sorted(path.rglob("*")):
            if f.is_file() and not f.is_symlink():
                members.append((f"{path.name}/{f.relative_to(path).as_posix()}", f))
    else:
        members.append((path.name, path))
        if path.suffix.lower() == ".xml" and path.with_suffix(".bin").is_file():
            members.append((path.with_suffix(".bin").name, path.with_suffix(".bin")))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for arcname, f in members:
            info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            with open(f, "rb") as src:
                zf.writestr(info, src.read())
    data = buf.getvalue()
    return data, hashlib.sha256(data).hexdigest(), path.name


class AgentClient:
    """One device: its facts, uploads, and jobs (a WebSocket connection per request)."""

    def __init__(self, entry: DeviceEntry, *, timeout: float = 10.0) -> None:
        self.entry = entry
        self.timeout = timeout

    def connect(self) -> Any:
        from websockets.exceptions import InvalidStatus, WebSocketException
        from websockets.sync.client import connect

        where = f"device {self.entry.name} ({self.entry.host}:{self.entry.port})"
        try:
            return connect(self.entry.url, additional_headers={"Authorization": f"Bearer {self.entry.token}"},
                           open_timeout=self.timeout, proxy=None, compression=None, max_size=None,
                           ping_interval=10, ping_timeout=30, close_timeout=5)
        except InvalidStatus as exc:
            code = exc.response.status_code
            if code == 401:
                raise RemoteError(None, f"{where} refused the token (401)",
                                  hint="the token is printed once when the agent first starts; "
                                       "`edgestudio agent serve --new-token` makes a new one") from None
            raise RemoteError(None, f"{where} answered HTTP {code}: is it an EdgeStudio agent?") from None
        except (OSError, TimeoutError, WebSocketException) as exc:
            import ssl

            if isinstance(exc, ssl.SSLCertVerificationError):
                raise RemoteError(None, f"{where}: its TLS certificate is not trusted ({exc.verify_message})",
                                  hint="point SSL_CERT_FILE at the agent's certificate (or its CA)") from None
            why = "nothing listens there" if isinstance(exc, ConnectionRefusedError) else str(exc) or type(exc).__name__
            raise RemoteError(None, f"cannot reach {where}: {why}",
                              hint="start it there with `edgestudio agent serve`") from None

    def _request(self, ws: Any, msg: dict[str, Any], expect: str) -> dict[str, Any]:
        ws.send(json.dumps(msg))
        reply = json.loads(ws.recv(timeout=max(self.timeout, 60.0)))
        if reply.get("type") == "error":
            raise RemoteError(None, f"device {self.entry.name}: {reply.get('error')}")
        if reply.get("type") != expect:
            raise RemoteError(None, f"device {self.entry.name} answered {reply.get('type')!r} to {msg['type']!r}")
        return reply  # type: ignore[no-any-return]

    def facts(self) -> dict[str, Any]:
        from websockets.exceptions import ConnectionClosed

        ws = self.connect()
        try:
            return dict(self._request(ws, {"type": "facts"}, "facts")["facts"])
        except (ConnectionClosed, TimeoutError) as exc:
            raise RemoteError(None, f"device {self.entry.name} closed the connection: {exc}") from None
        finally:
            ws.close()

    def upload(self, ws: Any, path: Path, log: Callable[[str], None] = lambda s: None) -> str:
        """Make ``path`` present on the device; its ``cas:SHA/NAME`` reference."""
        data, sha, name = pack_model(path)
        if not self._request(ws, {"type": "has", "sha256": sha}, "has")["present"]:
            t0 = time.perf_counter()
            # the agent refuses an oversized upload before its bytes travel; else it asks for them
            try:
                self._request(ws, {"type": "upload", "sha256": sha, "size": len(data)}, "send")
            except RemoteError as exc:
                raise RemoteError(path, exc.cause) from None
            ws.send(data)
            reply = json.loads(ws.recv(timeout=max(self.timeout, 120.0)))
            if reply.get("type") != "stored":
                raise RemoteError(path, f"device {self.entry.name}: {reply.get('error', reply)}")
            log(f"uploaded {name} ({len(data) / 1e6:.1f} MB) in {time.perf_counter() - t0:.2f} s")
        else:
            log(f"{name} is on the device already ({sha[:12]})")
        return f"cas:{sha}/{name}"

    def run(self, spec: JobSpec, *, on_message: Callable[[JobMessage], None] | None = None,
            cancel: CancelToken | None = None, job_id: str | None = None) -> JobRecord:
        """Run ``spec`` on the device; messages stream to ``on_message``. Never raises for the job's own failure:
        the record says it (a dropped connection included)."""
        from websockets.exceptions import ConnectionClosed

        rec = JobRecord(id=job_id or new_job_id(), spec=spec, status=JobStatus.RUNNING, started_at=time.time())
        say = on_message or (lambda m: None)
        where = f"device {self.entry.name} ({self.entry.host}:{self.entry.port})"
        ws = None
        t_up = 0.0
        try:
            ws = self.connect()
            t0 = time.perf_counter()
            raw = spec.to_dict()
            raw.pop("target", None)  # the agent runs it itself (and an older agent does not know the key)
            cache: dict[str, str] = {}

            def ref(value: Any) -> Any:
                if is_local_path(value):
                    if value not in cache:
                        say(JobMessage("progress", rec.id, {"fraction": 0.02, "message": f"uploading "
                                                            f"{Path(value).name} to {self.entry.name}"}))
                        cache[value] = self.upload(ws, Path(value), lambda s: say(JobMessage("log", rec.id,
                                                                                            {"line": s})))
                    return cache[value]
                if isinstance(value, dict):
                    return {k: ref(v) for k, v in value.items()}
                if isinstance(value, list):
                    return [ref(v) for v in value]
                return value

            if raw.get("model"):
                raw["model"] = ref(str(Path(raw["model"]).resolve()))
            raw["options"] = ref(raw.get("options") or {})
            raw["output"] = None
            t_up = time.perf_counter() - t0
            ws.send(encode(RunRequest(rec.id, raw)).strip())
            stop = threading.Event()

            def watch_cancel() -> None:
                while not stop.wait(0.1):
                    if cancel is not None and cancel.cancelled:
                        try:
                            ws.send(encode(CancelRequest(rec.id)).strip())
                        except Exception:  # noqa: BLE001 - the connection may be gone already
                            pass
                        return

            threading.Thread(target=watch_cancel, daemon=True).start()
            final = None
            try:
                for frame in ws:
                    msg = decode(frame)
                    if not isinstance(msg, JobMessage):
                        continue
                    if msg.type in ("done", "failed", "cancelled"):
                        final = msg
                        break
                    if msg.type == "log":
                        rec.log.append(str(msg.data.get("line", "")))
                    say(msg)
            finally:
                stop.set()
            if final is None:
                raise ConnectionClosed(None, None)
            if final.type == "done":
                result = dict(final.data.get("result") or {})
                remote_path = result.get("model") or result.get("path")
                result["agent"] = {"device": self.entry.name, "host": self.entry.host, "port": self.entry.port,
                                   "transfer_s": round(t_up, 3), "path": remote_path,
                                   "executed_on": result.pop("executed_on", None)}
                for key in ("model", "path"):  # the studio's file, not the agent's copy
                    if remote_path and result.get(key) == remote_path:
                        result[key] = spec.model
                if "device" in result:  # results name the remote device
                    result["device"] = on_agent(spec.device or "CPU", self.entry.name)
                rec.status, rec.result = JobStatus.SUCCEEDED, result
            elif final.type == "cancelled":
                rec.status = JobStatus.CANCELLED
            else:
                rec.status, rec.error = JobStatus.FAILED, f"on {self.entry.name}: {final.data.get('error', 'failed')}"
        except ConnectionClosed as exc:
            if cancel is not None and cancel.cancelled:
                rec.status = JobStatus.CANCELLED
            else:
                why = f" ({exc.rcvd.reason or exc.rcvd.code})" if getattr(exc, "rcvd", None) else ""
                rec.status, rec.error = JobStatus.FAILED, f"lost the connection to {where} mid-job{why}"
        except RemoteError as exc:
            rec.status, rec.error = JobStatus.FAILED, exc.one_line()
        except (OSError, TimeoutError) as exc:
            rec.status, rec.error = JobStatus.FAILED, f"{where}: {exc or type(exc).__name__}"
        finally:
            if ws is not None:
                ws.close()
        rec.finished_at = time.time()
        return rec


def is_local_path(value: Any) -> bool:
    """A request value that names a file or folder here (uploaded, and replaced by its ``cas:`` reference): an
    absolute path, or a relative one that looks like a path (``data/x.npz``), that exists."""
    if not isinstance(value, str) or not value or value.startswith("cas:") or len(value) > 4096:
        return False
    looks = os.path.isabs(value) or "/" in value or os.sep in value or value.endswith((".npz", ".npy"))
    return looks and Path(value).exists()


def run_on_agent(device: str, spec: JobSpec, **kwargs: Any) -> JobRecord:
    return AgentClient(get_device(device)).run(spec, **kwargs)


def remote_bench(device: str, log: Callable[[str], None] = lambda s: None
                 ) -> tuple[Callable[..., dict[str, Any]], list[str]]:
    """A ``bench(path, config, cancel)`` for auto-optimize that measures each candidate on ``device``
    (``CPU@agent:pi`` or ``agent:pi``), and the runtimes the device has there (asked once, before anything is
    built: candidates for the others are not made)."""
    local, name = split_remote(device if DEVICE_MARK in device else f"CPU{DEVICE_MARK}{device.removeprefix(AGENT_PREFIX)}")
    assert name is not None
    client = AgentClient(get_device(name))

    def bench(path: Path, config: Any, cancel: CancelToken | None = None) -> dict[str, Any]:
        spec = JobSpec(JobKind.BENCH, model=str(path), runtime=config.runtime, device=local, options={
            "iterations": config.iterations, "warmup": config.warmup, "precision": config.precision,
            "keep_samples": False, "inputs": config.inputs.to_dict()})
        rec = client.run(spec, cancel=cancel)
        if rec.status is JobStatus.CANCELLED:
            raise Cancelled()
        if rec.status is not JobStatus.SUCCEEDED:
            raise RemoteError(path, rec.error or "failed")
        log(f"{Path(path).name} on {config.runtime}/{local} at {name}: p50 "
            f"{rec.result['latency_ms']['p50']:.3f} ms" if rec.result else "")
        return dict(rec.result or {})

    facts = client.facts()
    return bench, sorted({d["runtime"] for d in facts.get("devices", []) if d.get("device") == local})


def on_agent(device: str, agent: str) -> str:
    """The name of ``device`` on agent ``agent``: ``CPU`` on ``pi`` -> ``CPU@agent:pi``."""
    return f"{device}{DEVICE_MARK}{agent}"


def split_remote(device: str | None) -> tuple[str | None, str | None]:
    """``CPU@agent:pi`` -> (``CPU``, ``pi``); a local device -> (device, None)."""
    if device and DEVICE_MARK in device:
        local, _, name = device.partition(DEVICE_MARK)
        return local or "CPU", name
    return device, None


# ------------------------------------------------------------------------------------- as an execution target
class RemoteExecutor(ThreadedExecutor):
    """The ``agent:NAME`` execution target: each job runs on the device, one connection per job."""

    def __init__(self, device: str, max_workers: int = 1) -> None:
        self.entry = get_device(device)
        super().__init__(AGENT_PREFIX + self.entry.name, max_workers)

    def describe(self) -> TargetInfo:
        health = device_health(self.entry)
        return target_info(health)

    def _execute(self, rec: JobRecord, on_message: Callable[[JobMessage], None], token: CancelToken) -> JobRecord:
        spec = JobSpec.from_dict({**rec.spec.to_dict(), "target": None})  # on the device, it runs where it is
        return AgentClient(self.entry).run(spec, on_message=on_message, cancel=token, job_id=rec.id)


def target_info(health: dict[str, Any]) -> TargetInfo:
    facts = health.get("facts") or {}
    what = (f"{facts.get('cpu', '?')}, {facts.get('cores', '?')} cores, {facts.get('machine', '')}"
            if health.get("online") else health.get("error") or "offline")
    return TargetInfo(health["target"], "agent", "", f"remote device {health['name']} ({health['host']}:"
                      f"{health['port']})", bool(health.get("online")), what, facts)


def remote_device_dicts(timeout: float = 3.0) -> list[dict[str, Any]]:
    """Every (runtime, device) each reachable registered agent reports, as ``DEVICE@agent:NAME``."""
    out: list[dict[str, Any]] = []
    for entry in registered_devices():
        health = device_health(entry, timeout=timeout)
        for d in (health.get("facts") or {}).get("devices", []):
            out.append({"runtime": d["runtime"], "device": f"{d['device']}{DEVICE_MARK}{entry.name}",
                        "description": f"{d.get('description', '')} on {entry.name} ({entry.host})",
                        "target": AGENT_PREFIX + entry.name})
    return out


def all_device_dicts() -> list[dict[str, Any]]:
    """Local devices, then the registered remote devices' (those that answer)."""
    from edgestudio.backends.runtimes.base import device_dicts

    return [*device_dicts(), *remote_device_dicts()]


def forward_to_agent(spec: JobSpec, ctx: Any) -> dict[str, Any]:
    """Run a job whose target is a device agent (``agent:NAME``) on that agent from a local worker (the studio's
    pool): progress, log and the device's latency samples are relayed like a local job's."""
    name = spec.agent
    assert name is not None
    sub = JobSpec.from_dict({**spec.to_dict(), "target": None})

    rec = run_on_agent(name, sub, on_message=ctx.relay(name), cancel=ctx.cancel)
    return ctx.finish_forwarded(rec, RemoteError)
