"""``edgestudio agent serve``: the agent's server.

Transport: WebSocket (the ``websockets`` package, sync API: pure Python with an optional C speed-up, no other
dependency, wheels for every platform a Pi or a Jetson runs; a WebSocket carries the job's event stream and the
model upload on one connection, through proxies and SSH tunnels alike). One connection per request; the
messages are JSON text frames, an upload's bytes one binary frame:

- ``{"type": "facts"}`` -> ``{"type": "facts", "facts": {...}}`` (CPU, cores, ISA, memory, OS, runtimes, devices,
  temperature);
- ``{"type": "has", "sha256": H}`` -> ``{"type": "has", "sha256": H, "present": bool}``;
- ``{"type": "upload", "sha256": H, "size": N}`` -> ``{"type": "send"}`` (or an error: too large), then one binary
  frame (a zip of the model's files) -> ``{"type": "stored", "sha256": H}``; content-addressed: the bytes must
  hash to H;
- a :class:`~edgestudio.jobs.messages.RunRequest` -> the job's
  :class:`~edgestudio.jobs.messages.JobMessage` stream, ending with done/failed/cancelled; a
  :class:`~edgestudio.jobs.messages.CancelRequest` on the same connection stops it. The model and every data
  file of a job are ``cas:SHA256/NAME`` references to uploads (:mod:`edgestudio.agent.checks`).
- anything refused: ``{"type": "error", "error": "..."}`` (a run request: a ``failed`` message), one line naming
  the cause, never an exception's text.

Security: loopback unless ``--host`` says otherwise; every connection must carry exactly one
``Authorization: Bearer TOKEN`` header (the token is generated at first start, shown once, and only its SHA-256 is
stored); every field of a request is checked (types, ranges, finite numbers, bounds); a job reads nothing but
uploads, whatever paths it names, and never targets an agent (itself included); uploads are content-addressed,
bounded packed and unpacked, kept in the agent's own folder (``models/SHA256/``, under a quota), never outside it
(:mod:`edgestudio.agent.store`); refused requests are logged, one line each whatever they carry
(:mod:`edgestudio.agent.logsafe`). Only bench, eval, inspect and the parity call run here; each job runs in a
worker process of its own (``edgestudio.execution.env_worker``), so a runtime that crashes fails its job, never
the agent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import sys
import threading
import time
from pathlib import Path
from typing import Any

from edgestudio.agent.checks import (
    JOB_ID_RE,
    MAX_FEEDS_CHARS,
    RequestError,
    check_keys,
    check_run,
    check_sha,
    check_size,
    show,
)
from edgestudio.agent.logsafe import EscapingFormatter, escape
from edgestudio.agent.store import UploadRefused, UploadStore

log = logging.getLogger("edgestudio.agent")

DEFAULT_PORT = 8765
DEFAULT_MAX_UPLOAD_MB = 1024
DEFAULT_MODELS_QUOTA_MB = 4096
MAX_REQUEST_CHARS = MAX_FEEDS_CHARS + (1 << 20)  # a JSON request: a parity call's feeds and a little more
UPLOAD_TIMEOUT_S = 300.0  # an announced upload's bytes must come within this
INTERNAL_ERROR = "the agent could not handle this request (an internal error, logged on the device)"


def default_dir() -> Path:
    return Path(os.environ.get("EDGESTUDIO_AGENT_DIR") or Path.home() / ".edgestudio-agent")


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def ensure_token(folder: Path, *, new: bool = False) -> str | None:
    """The token's hash is kept in ``agent.json``; a new token is made at first start (or with ``new``) and
    returned so it can be shown once. ``EDGESTUDIO_AGENT_TOKEN`` provisions a known token instead."""
    folder.mkdir(parents=True, exist_ok=True)
    meta_path = folder / "agent.json"
    meta: dict[str, Any] = {}
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
    given = os.environ.get("EDGESTUDIO_AGENT_TOKEN")
    if given:
        token: str | None = given
    elif new or not meta.get("token_sha256"):
        token = secrets.token_urlsafe(32)
        while not token[0].isalnum():  # a leading "-" reads as an option on a command line (--token -abc)
            token = secrets.token_urlsafe(32)
    else:
        return None
    meta.update(token_sha256=_hash_token(token), token_created=time.time())
    tmp = meta_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta, indent=2))
    os.chmod(tmp, 0o600)
    os.replace(tmp, meta_path)
    return token if not given else None


def _peer(connection: Any) -> str:
    """The client's address (``?`` once its socket is gone: a client that connects and drops at once)."""
    try:
        address = connection.remote_address
    except OSError:
        return "?"
    return str(address[0]) if address else "?"


def _runtime_names() -> list[str]:
    from edgestudio.core.catalog import runtime_names

    return runtime_names()


class Agent:
    """The agent's state: its folder, the token's hash, the upload limits and quota; ``serve`` runs the server."""

    def __init__(self, folder: Path, *, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB << 20,
                 max_unpacked_bytes: int | None = None, quota_bytes: int = DEFAULT_MODELS_QUOTA_MB << 20,
                 concurrent_jobs: int = 1) -> None:
        self.folder = folder.resolve()
        self.models = self.folder / "models"
        self.token_sha256 = json.loads((self.folder / "agent.json").read_text())["token_sha256"]
        self.max_upload_bytes = max_upload_bytes
        self.store = UploadStore(self.models, max_upload_bytes=max_upload_bytes, quota_bytes=quota_bytes,
                                 max_unpacked_bytes=max_upload_bytes if max_unpacked_bytes is None
                                 else max_unpacked_bytes)
        self._jobs = threading.Semaphore(concurrent_jobs)  # benchmarks run alone unless told otherwise
        self._facts: dict[str, Any] | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------------ http level
    def check_request(self, connection: Any, request: Any) -> Any:
        """Before the WebSocket handshake: refuse (401) without the right bearer token, (400) with more than one
        ``Authorization`` header; log it."""
        from http import HTTPStatus

        peer = _peer(connection)
        values = request.headers.get_all("Authorization")
        if len(values) > 1:
            log.warning("refused %s: %d Authorization headers (exactly one is taken)", peer, len(values))
            return connection.respond(HTTPStatus.BAD_REQUEST, "exactly one Authorization header is taken\n")
        auth = values[0] if values else ""
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not token or not hmac.compare_digest(_hash_token(token), self.token_sha256):
            log.warning("refused %s: %s", peer, "no token" if not token else "wrong token")
            return connection.respond(HTTPStatus.UNAUTHORIZED, "a valid agent token is required\n")
        return None

    # ---------------------------------------------------------------------------------------- connection
    def handle(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        peer = _peer(ws)
        try:
            for raw in ws:
                if self._request(ws, raw, peer):
                    return  # a job ran: one job per connection
        except ConnectionClosed:
            pass

    def _request(self, ws: Any, raw: str | bytes, peer: str) -> bool:
        """Answer one frame; whether a job ran. A request refused is one line back, never an exception's text."""
        from websockets.exceptions import ConnectionClosed

        msg = self._parse(ws, raw)
        if msg is None:
            return False
        try:
            return self._dispatch(ws, msg, peer)
        except (RequestError, UploadRefused) as exc:
            kind = msg.get("type")
            what = kind if kind in ("facts", "has", "upload") else f"a request of type {show(kind)}"
            log.warning("refused %s from %s: %s", what, peer, exc)
            self._send(ws, {"type": "error", "error": escape(str(exc))})
        except ConnectionClosed:
            raise
        except Exception:  # noqa: BLE001 - one bad request must not end the agent's service
            log.exception("request %s from %s failed", show(msg.get("type")), peer)
            self._send(ws, {"type": "error", "error": INTERNAL_ERROR})
        return False

    def _parse(self, ws: Any, raw: str | bytes) -> dict[str, Any] | None:
        why = None
        msg: Any = None
        if isinstance(raw, bytes):
            why = "unexpected binary frame (announce uploads first)"
        elif len(raw) > MAX_REQUEST_CHARS:
            why = f"a request is at most {MAX_REQUEST_CHARS:,} characters"
        else:
            try:
                msg = json.loads(raw)
            except (ValueError, RecursionError):
                why = "not JSON"
            if why is None and not isinstance(msg, dict):
                why = "a request is a JSON object"
        if why is not None:
            self._send(ws, {"type": "error", "error": why})
            return None
        return msg  # type: ignore[no-any-return]

    def _dispatch(self, ws: Any, msg: dict[str, Any], peer: str) -> bool:
        kind = msg.get("type")
        if kind == "facts":
            check_keys(msg, ("type",), "a facts request")
            self._send(ws, {"type": "facts", "facts": self.facts()})
        elif kind == "has":
            check_keys(msg, ("type", "sha256"), "a has request")
            sha = check_sha(msg.get("sha256"))
            self._send(ws, {"type": "has", "sha256": sha, "present": self.store.has(sha)})
        elif kind == "upload":
            self._upload(ws, msg, peer)
        elif kind == "run":
            self._run(ws, msg, peer)
            return True
        else:
            raise RequestError(f"unknown request {show(kind)}")
        return False

    @staticmethod
    def _send(ws: Any, obj: dict[str, Any]) -> None:
        ws.send(json.dumps(obj, default=str))

    def facts(self) -> dict[str, Any]:
        from edgestudio.agent.facts import device_facts, temperatures_c

        with self._lock:
            if self._facts is None:
                self._facts = device_facts()
            facts = dict(self._facts)
        facts["temperature_c"] = temperatures_c()  # this one changes
        facts["max_upload_bytes"] = self.max_upload_bytes
        facts["max_unpacked_bytes"] = self.store.max_unpacked_bytes
        facts["models_quota_bytes"] = self.store.quota_bytes
        return facts

    # -------------------------------------------------------------------------------------------- upload
    def _upload(self, ws: Any, msg: dict[str, Any], peer: str) -> None:
        check_keys(msg, ("type", "sha256", "size"), "an upload")
        sha = check_sha(msg.get("sha256"))
        size = check_size(msg.get("size"))
        self.store.check_announced(size)  # before the bytes travel
        self._send(ws, {"type": "send"})
        try:
            data = ws.recv(timeout=UPLOAD_TIMEOUT_S)
        except TimeoutError:
            raise UploadRefused(f"the upload's bytes did not come within {UPLOAD_TIMEOUT_S:.0f} s") from None
        if not isinstance(data, bytes):
            raise UploadRefused("expected the upload's bytes")
        if len(data) != size:
            raise UploadRefused(f"the upload is {len(data):,} bytes, not the {size:,} announced")
        if hashlib.sha256(data).hexdigest() != sha:
            raise UploadRefused("the upload's content does not match its sha256")
        unpacked = self.store.store(sha, data)
        log.info("stored %s (%d bytes, %d unpacked) from %s", sha[:12], len(data), unpacked, peer)
        self._send(ws, {"type": "stored", "sha256": sha})

    def _public(self, text: str) -> str:
        """A job's error for the studio: one line, the agent's own folder shown as the references it took."""
        return escape(text.replace(f"{self.models}{os.sep}", "cas:"))

    # ----------------------------------------------------------------------------------------------- run
    def _run(self, ws: Any, msg: dict[str, Any], peer: str) -> None:
        from edgestudio.core.jobs import JobSpec
        from edgestudio.core.progress import CancelToken
        from edgestudio.execution.envs import run_in_env
        from edgestudio.jobs.messages import CancelRequest, JobMessage, ProtocolError, decode

        try:
            job = check_run(msg, self.store.resolve, _runtime_names, self.store.max_unpacked_bytes)
        except RequestError as exc:
            given = msg.get("job_id")
            log.warning("refused a job (id %s) from %s: %s", str(given)[:80], peer, exc)
            valid = given if isinstance(given, str) and JOB_ID_RE.fullmatch(given) else None
            self._send(ws, JobMessage("failed", valid, {"error": escape(str(exc))}).__dict__)
            return
        spec = JobSpec.from_dict(job.spec)
        cancel = CancelToken()
        send_lock = threading.Lock()

        def forward(m: JobMessage) -> None:
            try:
                with send_lock:
                    self._send(ws, m.__dict__)
            except Exception:  # noqa: BLE001 - the studio is gone (connection cut): nobody waits for this job
                cancel.cancel()

        def watch() -> None:  # a cancel, or the studio gone: stop the job
            from websockets.exceptions import ConnectionClosed

            try:
                for raw_msg in ws:
                    try:
                        if isinstance(decode(raw_msg), CancelRequest):
                            cancel.cancel()
                    except ProtocolError:
                        pass
            except ConnectionClosed:
                pass
            cancel.cancel()

        threading.Thread(target=watch, daemon=True, name="edgestudio-agent-watch").start()
        forward(JobMessage("progress", job.job_id, {"fraction": 0.0, "message": "queued on the device"}))
        with self._jobs:
            if cancel.cancelled:
                return
            log.info("job %s from %s: %s %s on %s", job.job_id, peer, spec.kind.value, Path(spec.model or "").name,
                     spec.runtime)
            rec = run_in_env(None, spec, on_message=lambda m: forward(m) if m.type not in (
                "done", "failed", "cancelled") else None, cancel=cancel, timeout_s=spec.timeout_s,
                job_id=job.job_id, python=sys.executable, env_vars=self._worker_env())
        result = dict(rec.result or {})
        if rec.status.value == "succeeded":
            result["executed_on"] = {k: self.facts().get(k) for k in ("hostname", "cpu", "cores", "machine", "os")}
            forward(JobMessage("done", job.job_id, {"result": result}))
        elif rec.status.value == "cancelled":
            forward(JobMessage("cancelled", job.job_id, {}))
        else:
            forward(JobMessage("failed", job.job_id, {"error": self._public(rec.error or "failed")}))
        log.info("job %s: %s%s", job.job_id, rec.status.value,
                 " (the studio went away)" if rec.status.value == "cancelled" and ws.close_code is not None else "")

    def _worker_env(self) -> dict[str, str]:
        """The job worker's environment: no token, no registered devices (a worker on an agent never forwards a
        job to an agent, itself included), the unpacked-size limit for the feeds it decodes."""
        env = {k: v for k, v in os.environ.items() if k not in ("EDGESTUDIO_AGENT_TOKEN", "EDGESTUDIO_DEVICES")}
        env["EDGESTUDIO_DEVICES"] = str(self.folder / "no-devices.json")
        env["EDGESTUDIO_AGENT_MAX_UNPACKED"] = str(self.store.max_unpacked_bytes)
        return env


def serve(folder: Path | None = None, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
          max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB, max_unpacked_mb: int | None = None,
          models_quota_mb: int = DEFAULT_MODELS_QUOTA_MB, new_token: bool = False, certfile: str | None = None,
          keyfile: str | None = None, ready: Any = None) -> None:
    """Run the agent until interrupted. Prints the URL (and a new token, once)."""
    from websockets.sync.server import serve as ws_serve

    folder = (folder or default_dir()).resolve()
    token = ensure_token(folder, new=new_token)
    handler = logging.FileHandler(folder / "agent.log")
    handler.setFormatter(EscapingFormatter("%(asctime)s %(levelname)s %(message)s"))
    echo = logging.StreamHandler(sys.stderr)
    echo.setFormatter(EscapingFormatter("%(message)s"))
    log.addHandler(handler)
    log.addHandler(echo)
    log.setLevel(logging.INFO)
    agent = Agent(folder, max_upload_bytes=max_upload_mb << 20, quota_bytes=models_quota_mb << 20,
                  max_unpacked_bytes=None if max_unpacked_mb is None else max_unpacked_mb << 20)
    ssl_ctx = None
    if certfile:
        import ssl

        ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_ctx.load_cert_chain(certfile, keyfile)
    with ws_serve(agent.handle, host, port, process_request=agent.check_request,
                  max_size=agent.max_upload_bytes + 65536, compression=None, ssl=ssl_ctx, ping_interval=20,
                  ping_timeout=60, logger=logging.getLogger("edgestudio.agent.websockets")) as server:
        bound = server.socket.getsockname()
        scheme = "wss" if ssl_ctx else "ws"
        print(f"edgestudio agent listening on {scheme}://{bound[0]}:{bound[1]} (folder {folder})", flush=True)
        if token:
            print(f"token (shown once; add the device with it): {token}", flush=True)
        if host not in ("127.0.0.1", "localhost", "::1") and not ssl_ctx:
            print("warning: listening beyond loopback without TLS: use --certfile/--keyfile or an SSH tunnel",
                  flush=True)
        if ready is not None:
            ready(bound)
        server.serve_forever()


def _megabytes(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of MB") from None
    if not 0 <= value <= 1 << 30:
        raise argparse.ArgumentTypeError(f"{value} MB is out of range (0 to {1 << 30})")
    return value


def add_serve_args(p: Any) -> None:
    """The options of ``edgestudio agent serve`` (and of ``python -m edgestudio.agent``)."""
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback; 0.0.0.0: the LAN, "
                                                       "with TLS or an SSH tunnel)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--dir", help="the agent's folder: uploads, token hash, log (default ~/.edgestudio-agent)")
    p.add_argument("--max-upload-mb", type=_megabytes, default=DEFAULT_MAX_UPLOAD_MB,
                   help="largest model upload accepted (its zip, as sent)")
    p.add_argument("--max-unpacked-mb", type=_megabytes, default=None,
                   help="largest an upload may unpack to (default: --max-upload-mb)")
    p.add_argument("--models-quota-mb", type=_megabytes, default=DEFAULT_MODELS_QUOTA_MB,
                   help=f"all uploads together (default {DEFAULT_MODELS_QUOTA_MB}); one that would exceed it is "
                        "refused")
    p.add_argument("--new-token", action="store_true", help="make a new token (the old one stops working)")
    p.add_argument("--certfile", help="serve TLS (wss://) with this certificate (PEM)")
    p.add_argument("--keyfile", help="the certificate's private key (PEM)")


def run_from_args(args: Any) -> int:
    """Serve until interrupted; a port in use (or any other listening failure) is one line, exit code 1."""
    try:
        serve(Path(args.dir) if args.dir else default_dir(), host=args.host, port=args.port,
              max_upload_mb=args.max_upload_mb, max_unpacked_mb=getattr(args, "max_unpacked_mb", None),
              models_quota_mb=getattr(args, "models_quota_mb", DEFAULT_MODELS_QUOTA_MB), new_token=args.new_token,
              certfile=args.certfile, keyfile=args.keyfile)
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"error: the agent cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
