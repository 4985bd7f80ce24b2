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
- a :class:`~edgestudio.execution.messages.RunRequest` -> the job's
  :class:`~edgestudio.execution.messages.JobMessage` stream, ending with done/failed/cancelled; a
  :class:`~edgestudio.execution.messages.CancelRequest` on the same connection stops it. Paths in the request are
  ``cas:SHA256/NAME`` references to uploads.
- anything refused: ``{"type": "error", "error": "..."}``.

Security: loopback unless ``--host`` says otherwise; every connection must carry ``Authorization: Bearer TOKEN``
(the token is generated at first start, shown once, and only its SHA-256 is stored); uploads are size-limited,
content-addressed and kept in the agent's own folder (``models/SHA256/``), never outside it; refused requests
are logged. Only bench, eval, inspect and the parity call run here; each job runs in a worker process of its own
(``edgestudio.execution.env_worker``), so a runtime that crashes fails its job, never the agent.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import os
import re
import secrets
import shutil
import sys
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

log = logging.getLogger("edgestudio.agent")

DEFAULT_PORT = 8765
DEFAULT_MAX_UPLOAD_MB = 1024
# what a token holder may run: measuring and checking jobs, never a converter or an arbitrary function
ALLOWED_KINDS = ("bench", "eval", "inspect")
ALLOWED_CALLS = ("edgestudio.agent.jobs:parity_outputs", "edgestudio.agent.jobs:device_list")
SHA_RE = re.compile(r"^[0-9a-f]{64}$")


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


class Agent:
    """The agent's state: its folder, the token's hash, the upload limit; ``serve`` runs the server."""

    def __init__(self, folder: Path, *, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB << 20,
                 concurrent_jobs: int = 1) -> None:
        self.folder = folder.resolve()
        self.models = self.folder / "models"
        self.models.mkdir(parents=True, exist_ok=True)
        self.token_sha256 = json.loads((self.folder / "agent.json").read_text())["token_sha256"]
        self.max_upload_bytes = max_upload_bytes
        self._jobs = threading.Semaphore(concurrent_jobs)  # benchmarks run alone unless told otherwise
        self._facts: dict[str, Any] | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------------ http level
    def check_request(self, connection: Any, request: Any) -> Any:
        """Before the WebSocket handshake: refuse (401) without the right bearer token; log it."""
        from http import HTTPStatus

        auth = request.headers.get("Authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not token or not hmac.compare_digest(_hash_token(token), self.token_sha256):
            peer = connection.remote_address[0] if connection.remote_address else "?"
            log.warning("refused %s: %s", peer, "no token" if not token else "wrong token")
            return connection.respond(HTTPStatus.UNAUTHORIZED, "a valid agent token is required\n")
        return None

    # ---------------------------------------------------------------------------------------- connection
    def handle(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        peer = ws.remote_address[0] if ws.remote_address else "?"
        try:
            for raw in ws:
                if isinstance(raw, bytes):
                    self._send(ws, {"type": "error", "error": "unexpected binary frame (announce uploads first)"})
                    continue
                try:
                    msg = json.loads(raw)
                except ValueError:
                    self._send(ws, {"type": "error", "error": "not JSON"})
                    continue
                try:
                    if self._dispatch(ws, msg, peer):
                        return  # a job ran: one job per connection
                except ConnectionClosed:
                    raise
                except Exception as exc:  # noqa: BLE001 - one bad request must not end the agent's service
                    log.exception("request %r from %s failed", msg.get("type"), peer)
                    self._send(ws, {"type": "error", "error": f"the agent failed: {type(exc).__name__}: {exc}"})
        except ConnectionClosed:
            pass

    def _dispatch(self, ws: Any, msg: dict[str, Any], peer: str) -> bool:
        kind = msg.get("type")
        if kind == "facts":
            self._send(ws, {"type": "facts", "facts": self.facts()})
        elif kind == "has":
            sha = str(msg.get("sha256", ""))
            self._send(ws, {"type": "has", "sha256": sha, "present": bool(SHA_RE.match(sha)) and
                            (self.models / sha / ".complete").is_file()})
        elif kind == "upload":
            self._upload(ws, msg, peer)
        elif kind == "run":
            self._run(ws, msg, peer)
            return True
        else:
            self._send(ws, {"type": "error", "error": f"unknown request {kind!r}"})
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
        return facts

    # -------------------------------------------------------------------------------------------- upload
    def _upload(self, ws: Any, msg: dict[str, Any], peer: str) -> None:
        sha, size = str(msg.get("sha256", "")), int(msg.get("size") or 0)
        if not SHA_RE.match(sha):
            self._send(ws, {"type": "error", "error": "an upload needs its sha256 (64 hex digits)"})
            return
        if size > self.max_upload_bytes:
            log.warning("refused upload from %s: %d bytes over the limit of %d", peer, size, self.max_upload_bytes)
            self._send(ws, {"type": "error", "error": f"the upload ({size:,} bytes) is over this agent's limit "
                                                      f"of {self.max_upload_bytes:,} bytes"})
            return
        self._send(ws, {"type": "send"})
        data = ws.recv()
        if not isinstance(data, bytes):
            self._send(ws, {"type": "error", "error": "expected the upload's bytes"})
            return
        if len(data) > self.max_upload_bytes:
            log.warning("refused upload from %s: %d bytes over the limit", peer, len(data))
            self._send(ws, {"type": "error", "error": "the upload is over this agent's limit"})
            return
        if hashlib.sha256(data).hexdigest() != sha:
            log.warning("refused upload from %s: content does not hash to %s", peer, sha)
            self._send(ws, {"type": "error", "error": "the upload's content does not match its sha256"})
            return
        try:
            self._store(sha, data)
        except ValueError as exc:
            log.warning("refused upload from %s: %s", peer, exc)
            self._send(ws, {"type": "error", "error": str(exc)})
            return
        log.info("stored %s (%d bytes) from %s", sha[:12], len(data), peer)
        self._send(ws, {"type": "stored", "sha256": sha})

    def _store(self, sha: str, data: bytes) -> None:
        """Unpack a model's zip into ``models/SHA/``: every member must stay inside, no links, a bounded size."""
        final = self.models / sha
        if (final / ".complete").is_file():
            return
        tmp = self.models / f".{sha}.{os.getpid()}.{threading.get_ident()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                total = sum(i.file_size for i in zf.infolist())
                if total > 4 * self.max_upload_bytes:
                    raise ValueError("the upload unpacks to more than four times the upload limit")
                for info in zf.infolist():
                    name = info.filename
                    target = (tmp / name).resolve()
                    if name.startswith("/") or ".." in Path(name).parts or tmp.resolve() not in target.parents:
                        raise ValueError(f"the upload names a path outside its folder: {name!r}")
                    if (info.external_attr >> 16) & 0o170000 == 0o120000:
                        raise ValueError(f"the upload holds a symbolic link: {name!r}")
                    if info.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
            (tmp / ".complete").write_text(str(time.time()))
            if final.exists():  # an earlier, incomplete attempt
                shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
        except zipfile.BadZipFile:
            raise ValueError("the upload is not a zip of model files") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def resolve(self, value: Any) -> Any:
        """``cas:SHA/NAME`` references -> paths in this agent's models folder (anything else unchanged)."""
        if isinstance(value, str) and value.startswith("cas:"):
            sha, _, name = value[4:].partition("/")
            base = (self.models / sha).resolve()
            path = (base / name).resolve() if name else base
            if not SHA_RE.match(sha) or not (base / ".complete").is_file() or (path != base and base not in
                                                                                 path.parents):
                raise ValueError(f"unknown upload {value!r}")
            return str(path)
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    # ----------------------------------------------------------------------------------------------- run
    def _run(self, ws: Any, msg: dict[str, Any], peer: str) -> None:
        from edgestudio.core.jobs import JobKind, JobSpec
        from edgestudio.core.progress import CancelToken
        from edgestudio.execution.envs import run_in_env
        from edgestudio.execution.messages import CancelRequest, JobMessage, ProtocolError, RunRequest, decode

        try:
            req = decode(json.dumps(msg))
            if not isinstance(req, RunRequest):
                raise ProtocolError("expected a run request")
            raw = dict(req.spec)
            kind = JobKind(raw.get("kind"))
            if kind.value not in ALLOWED_KINDS and not (
                    kind is JobKind.CALL and (raw.get("options") or {}).get("function") in ALLOWED_CALLS):
                raise ProtocolError(f"this agent runs bench, eval, inspect and parity jobs, not {kind.value}")
            raw["model"] = self.resolve(raw.get("model"))
            raw["options"] = self.resolve(raw.get("options") or {})
            raw["output"] = None  # nothing is written for the studio: results come back as messages
            spec = JobSpec.from_dict(raw)
        except (ProtocolError, ValueError, KeyError, TypeError) as exc:
            log.warning("refused a job from %s: %s", peer, exc)
            self._send(ws, JobMessage("failed", msg.get("job_id"), {"error": str(exc)}).__dict__)
            return
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
        forward(JobMessage("progress", req.job_id, {"fraction": 0.0, "message": "queued on the device"}))
        with self._jobs:
            if cancel.cancelled:
                return
            log.info("job %s from %s: %s %s on %s", req.job_id, peer, kind.value, Path(spec.model or "").name,
                     spec.runtime)
            env = {k: v for k, v in os.environ.items() if k != "EDGESTUDIO_AGENT_TOKEN"}
            rec = run_in_env(None, spec, on_message=lambda m: forward(m) if m.type not in (
                "done", "failed", "cancelled") else None, cancel=cancel, timeout_s=spec.timeout_s, job_id=req.job_id,
                python=sys.executable, env_vars=env)
        result = dict(rec.result or {})
        if rec.status.value == "succeeded":
            result["executed_on"] = {k: self.facts().get(k) for k in ("hostname", "cpu", "cores", "machine", "os")}
            forward(JobMessage("done", req.job_id, {"result": result}))
        elif rec.status.value == "cancelled":
            forward(JobMessage("cancelled", req.job_id, {}))
        else:
            forward(JobMessage("failed", req.job_id, {"error": rec.error or "failed"}))
        log.info("job %s: %s%s", req.job_id, rec.status.value,
                 " (the studio went away)" if rec.status.value == "cancelled" and ws.close_code is not None else "")


def serve(folder: Path | None = None, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
          max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB, new_token: bool = False, certfile: str | None = None,
          keyfile: str | None = None, ready: Any = None) -> None:
    """Run the agent until interrupted. Prints the URL (and a new token, once)."""
    from websockets.sync.server import serve as ws_serve

    folder = (folder or default_dir()).resolve()
    token = ensure_token(folder, new=new_token)
    handler = logging.FileHandler(folder / "agent.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.addHandler(logging.StreamHandler(sys.stderr))
    log.setLevel(logging.INFO)
    agent = Agent(folder, max_upload_bytes=max_upload_mb << 20)
    ssl_ctx = None
    if certfile:
        import ssl

        ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_ctx.load_cert_chain(certfile, keyfile)
    with ws_serve(agent.handle, host, port, process_request=agent.check_request, max_size=agent.max_upload_bytes + 65536,
                  compression=None, ssl=ssl_ctx, ping_interval=20, ping_timeout=60,
                  logger=logging.getLogger("edgestudio.agent.websockets")) as server:
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


def add_serve_args(p: Any) -> None:
    """The options of ``edgestudio agent serve`` (and of ``python -m edgestudio.agent``)."""
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback; 0.0.0.0: the LAN, "
                                                       "with TLS or an SSH tunnel)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--dir", help="the agent's folder: uploads, token hash, log (default ~/.edgestudio-agent)")
    p.add_argument("--max-upload-mb", type=int, default=DEFAULT_MAX_UPLOAD_MB, help="largest model upload accepted")
    p.add_argument("--new-token", action="store_true", help="make a new token (the old one stops working)")
    p.add_argument("--certfile", help="serve TLS (wss://) with this certificate (PEM)")
    p.add_argument("--keyfile", help="the certificate's private key (PEM)")


def run_from_args(args: Any) -> int:
    """Serve until interrupted; a port in use (or any other listening failure) is one line, exit code 1."""
    try:
        serve(Path(args.dir) if args.dir else default_dir(), host=args.host, port=args.port,
              max_upload_mb=args.max_upload_mb, new_token=args.new_token, certfile=args.certfile,
              keyfile=args.keyfile)
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"error: the agent cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
