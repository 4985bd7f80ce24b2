"""Python environments as execution targets: a venv per backend need, created on demand from pinned requirements
(pip, from the package registry), health-checked, reused, listed and removable.

An environment lives in ``<user data dir>/envs/<name>/`` with ``env.json`` (requirements, python, created, last
health check). A job runs there in a process of its own (``edgestudio.execution.env_worker``), whose
``PYTHONPATH`` holds only EdgeStudio's package (through a link), so every other import comes from the
environment: it can pin other versions than the app's (onnx2tf's, TF.js tooling's, PyTorch's).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgestudio.core.catalog import envs_root
from edgestudio.core.errors import Cancelled, EdgeStudioError, UsageError, clean_message
from edgestudio.core.jobs import JobRecord, JobSpec, JobStatus, new_job_id
from edgestudio.core.process import base_python, frozen, helper_command
from edgestudio.core.progress import CancelToken, ProgressCallback, noop_progress
from edgestudio.execution.base import TargetInfo, ThreadedExecutor
from edgestudio.jobs.messages import CancelRequest, JobMessage, ProtocolError, RunRequest, decode, encode
from edgestudio.execution.pool import publish_staging, staging_folder

NAME_OK = set("abcdefghijklmnopqrstuvwxyz0123456789-_.")


class EnvError(EdgeStudioError):
    """An environment that cannot be created, found or used."""


@dataclass
class EnvInfo:
    name: str
    path: str
    python: str
    requirements: list[str] = field(default_factory=list)
    created_at: float = 0.0
    healthy: bool | None = None
    health: str = ""
    python_version: str = ""
    size_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)




def _check_name(name: str) -> str:
    if not name or not set(name.lower()) <= NAME_OK or name.startswith("."):
        raise UsageError(None, f"bad environment name {name!r}: use letters, digits, - _ .")
    return name


def _python(folder: Path) -> Path:
    return folder / "bin" / "python"


def _info(folder: Path) -> EnvInfo:
    meta = {}
    try:
        meta = json.loads((folder / "env.json").read_text())
    except (OSError, ValueError):
        pass
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())
    return EnvInfo(folder.name, str(folder), str(_python(folder)), list(meta.get("requirements", [])),
                   float(meta.get("created_at", 0.0)), meta.get("healthy"), str(meta.get("health", "")),
                   str(meta.get("python_version", "")), size)


def list_envs() -> list[EnvInfo]:
    root = envs_root()
    if not root.is_dir():
        return []
    return [_info(d) for d in sorted(root.iterdir()) if d.is_dir() and (d / "env.json").is_file()]


def get_env(name: str) -> EnvInfo:
    folder = envs_root() / _check_name(name)
    if not (folder / "env.json").is_file() or not _python(folder).exists():
        known = ", ".join(e.name for e in list_envs()) or "none yet"
        raise EnvError(None, f"no environment named {name!r} (known: {known}); create it with "
                             f"`edgestudio envs create {name} REQUIREMENT...`")
    return _info(folder)


def remove_env(name: str) -> None:
    info = get_env(name)
    shutil.rmtree(info.path)


def _package_path() -> Path:
    """A folder holding only a link to EdgeStudio's package: what an environment worker gets on PYTHONPATH."""
    import edgestudio

    src = Path(edgestudio.__file__).resolve().parent
    # a stable name per package location (str hashes change from process to process)
    digest = hashlib.sha256(str(src).encode()).hexdigest()[:12]
    folder = Path(tempfile.gettempdir()) / f"edgestudio-pkg-{os.getuid()}-{digest}"
    link = folder / "edgestudio"
    if not (link.is_symlink() and link.resolve() == src):
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".edgestudio-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(src, target_is_directory=True)
        os.replace(tmp, link)
    return folder


def _env_vars(name: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PYTHONPATH"] = str(_package_path())
    env["PYTHONNOUSERSITE"] = "1"
    if frozen():  # the bundle's sources belong to the installation (root's, removed by the package manager): their
        # bytecode goes to a folder of this user's, never beside them
        env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / f"edgestudio-pycache-{os.getuid()}")
    if name:
        env["EDGESTUDIO_ENV"] = name  # the process knows where it runs: backends of this environment are local
    return env


def health_check(name: str) -> EnvInfo:
    """Import EdgeStudio's job runner in the environment; records the answer in env.json."""
    info = get_env(name)
    code = "import sys, numpy, edgestudio.jobs.tasks; print(sys.version.split()[0])"
    r = subprocess.run([info.python, "-c", code], capture_output=True, text=True, env=_env_vars(), timeout=120)
    folder = Path(info.path)
    meta = json.loads((folder / "env.json").read_text())
    meta.update(healthy=r.returncode == 0, health="ok" if r.returncode == 0 else clean_message(
        (r.stderr.strip().splitlines() or ["failed"])[-1], 200), python_version=r.stdout.strip(),
        checked_at=time.time())
    (folder / "env.json").write_text(json.dumps(meta, indent=2))
    return _info(folder)


def create_env(name: str, requirements: list[str], *, progress: ProgressCallback = noop_progress,
               cancel: CancelToken | None = None, log: Callable[[str], None] = lambda line: None) -> EnvInfo:
    """Create (or re-create) the environment ``name`` with pinned ``requirements`` from the package registry.
    numpy is always added (EdgeStudio's job runner needs it). Nothing is left behind when it fails."""
    folder = envs_root() / _check_name(name)
    with _creating(folder):
        return _create_env(folder, name, requirements, progress, cancel, log)


@contextlib.contextmanager
def _creating(folder: Path) -> Iterator[None]:
    """One creation of an environment at a time (two studio windows, two jobs): the second waits for the first, then
    finds it made. A lock file beside the folder, released when the process ends however it ends."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        try:
            import fcntl
        except ImportError:  # not a POSIX system: no lock
            yield
            return
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _create_env(folder: Path, name: str, requirements: list[str], progress: ProgressCallback,
                cancel: CancelToken | None, log: Callable[[str], None]) -> EnvInfo:
    if (folder / "env.json").is_file():
        raise EnvError(folder, f"environment {name!r} exists; remove it first (`edgestudio envs remove {name}`)")
    if not requirements:
        from edgestudio.core.catalog import environment_requirements

        requirements = environment_requirements(name) or []
        if not requirements:
            raise UsageError(None, f"give the requirements of environment {name!r} (the catalog declares none for it)")
    reqs = list(dict.fromkeys([*requirements, *([] if any(r.split("=")[0].strip() == "numpy" for r in requirements)
                                                 else ["numpy"])]))
    # built in place (a venv holds absolute paths): env.json, written last, marks it complete
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        progress(0.05, f"creating a virtual environment for {name}")
        python = base_python()
        if python is None:
            raise EnvError(folder, "creating an environment needs a system Python 3 with venv, and none was found",
                           hint="apt-get install python3 python3-venv")
        r = subprocess.run([python, "-m", "venv", str(folder)], capture_output=True, text=True)
        if r.returncode != 0:
            raise EnvError(folder, f"python -m venv failed: {clean_message(r.stderr or r.stdout, 200)}")
        progress(0.15, f"installing {', '.join(reqs)}")
        _pip(folder, reqs, progress, cancel, log)
        (folder / "env.json").write_text(json.dumps({"name": name, "requirements": reqs, "created_at": time.time(),
                                                     "python": str(_python(folder))}, indent=2))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    progress(0.95, "checking the environment")
    info = health_check(name)
    if not info.healthy:
        raise EnvError(folder, f"the environment was created but EdgeStudio's job runner does not import there: "
                               f"{info.health}")
    progress(1.0, "ready")
    return info


def _pip(folder: Path, reqs: list[str], progress: ProgressCallback, cancel: CancelToken | None,
         log: Callable[[str], None]) -> None:
    cmd = [str(_python(folder)), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off",
           *reqs]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env_vars())
    assert proc.stdout is not None
    tail: list[str] = []
    n = 0
    for line in proc.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-20:]
        log(line)
        if line.startswith(("Collecting", "Downloading", "Installing", "Successfully")):
            n += 1
            progress(min(0.9, 0.15 + 0.03 * n), line[:80])
        if cancel is not None and cancel.cancelled:
            proc.kill()
            proc.wait()
            raise Cancelled()
    if proc.wait() != 0:
        why = next((t for t in reversed(tail) if "ERROR" in t), tail[-1] if tail else "pip failed")
        raise EnvError(folder, f"pip could not install {' '.join(reqs)}: {clean_message(why, 240)}")


def run_in_env(name: str | None, spec: JobSpec, *, on_message: Callable[[JobMessage], None] | None = None,
               cancel: CancelToken | None = None, timeout_s: float | None = None,
               job_id: str | None = None, python: str | None = None,
               env_vars: dict[str, str] | None = None) -> JobRecord:
    """Run ``spec`` in environment ``name`` (a process of its own); messages stream to ``on_message``.
    Artifacts are written to a staging folder beside ``spec.output`` and moved there on success. With ``python``
    (and ``env_vars``) instead of a name, that interpreter runs it (a device agent runs jobs in its own)."""
    interpreter = python or get_env(name or "").python
    rec = JobRecord(id=job_id or new_job_id(), spec=spec, status=JobStatus.RUNNING, started_at=time.time())
    staging = staging_folder(Path(spec.output), rec.id) if spec.output else None
    proc = subprocess.Popen(helper_command("edgestudio.execution.env_worker", interpreter), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env_vars if env_vars is not None else _env_vars(name))
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(encode(RunRequest(rec.id, spec.to_dict(), str(staging) if staging else None)))
    proc.stdin.flush()
    stderr_tail: list[str] = []

    def drain_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            stderr_tail.append(line.rstrip())
            del stderr_tail[:-40]

    threading.Thread(target=drain_stderr, daemon=True).start()

    def watch_cancel() -> None:
        deadline = time.monotonic() + timeout_s if timeout_s else None
        while proc.poll() is None:
            if (cancel is not None and cancel.cancelled) or (deadline is not None and time.monotonic() > deadline):
                try:
                    proc.stdin.write(encode(CancelRequest(rec.id)))  # type: ignore[union-attr]
                    proc.stdin.flush()  # type: ignore[union-attr]
                except (OSError, ValueError):
                    pass
                t0 = time.monotonic()
                while proc.poll() is None and time.monotonic() - t0 < 5:
                    time.sleep(0.05)
                if proc.poll() is None:
                    proc.kill()
                return
            time.sleep(0.05)

    threading.Thread(target=watch_cancel, daemon=True).start()
    final: JobMessage | None = None
    for line in proc.stdout:
        try:
            msg = decode(line)
        except ProtocolError as exc:
            rec.log.append(f"protocol: {exc}")
            continue
        if not isinstance(msg, JobMessage):
            continue
        if msg.type == "log":
            rec.log.append(str(msg.data.get("line", "")))
        elif msg.type == "progress":
            rec.progress, rec.message = float(msg.data.get("fraction", 0.0)), str(msg.data.get("message", ""))
        if on_message is not None:
            on_message(msg)
        if msg.type in ("done", "failed", "cancelled"):
            final = msg
    rc = proc.wait()
    rec.finished_at = time.time()
    try:
        if final is None:
            if cancel is not None and cancel.cancelled:
                rec.status = JobStatus.CANCELLED
            elif timeout_s and time.time() - (rec.started_at or 0) >= timeout_s:
                rec.status, rec.error = JobStatus.FAILED, f"timed out after {timeout_s:g} s"
            else:
                rec.status = JobStatus.FAILED
                rec.error = (f"the environment's worker ended without an answer (exit code {rc})"
                             + (f": {stderr_tail[-1]}" if stderr_tail else ""))
        elif final.type == "done":
            rec.status, rec.result = JobStatus.SUCCEEDED, final.data.get("result") or {}
            if staging is not None:
                rec.result = publish_staging(staging, Path(spec.output or "").parent, rec.result)
        elif final.type == "cancelled":
            rec.status = JobStatus.CANCELLED
        else:
            rec.status, rec.error = JobStatus.FAILED, str(final.data.get("error", "failed"))
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return rec


# --------------------------------------------------------------------------------- as an execution target
class EnvExecutor(ThreadedExecutor):
    """The ``env:NAME`` execution target: each job runs in a process of the environment's own interpreter,
    speaking the versioned JSON-lines protocol; ``max_workers`` jobs at a time."""

    def __init__(self, env: str, max_workers: int = 1) -> None:
        self.info = get_env(env)
        self.env = env
        super().__init__(f"env:{env}", max_workers)

    def _execute(self, rec: JobRecord, on_message: Callable[[JobMessage], None], token: CancelToken) -> JobRecord:
        """Run one job in the environment's interpreter."""
        return run_in_env(self.env, rec.spec, on_message=on_message, cancel=token, timeout_s=rec.spec.timeout_s,
                          job_id=rec.id)

    def _tag(self, result: dict[str, Any]) -> dict[str, Any]:
        return {**result, "env": self.env}

    def describe(self) -> TargetInfo:
        return target_info(self.info)


def target_info(info: EnvInfo) -> TargetInfo:
    state = {True: "healthy", False: f"unhealthy: {info.health}", None: "not checked"}[info.healthy]
    return TargetInfo(f"env:{info.name}", "env", info.python, f"Python environment {info.name} "
                      f"({', '.join(info.requirements) or 'no requirements'})", info.healthy is not False, state,
                      {"requirements": info.requirements, "python_version": info.python_version})


# ----------------------------------------------------------------------------------- as pool jobs (studio)
def create_env_job(ctx: Any, name: str, requirements: list[str]) -> dict[str, Any]:
    """A worker-pool job that creates an environment, with pip's progress."""
    return create_env(name, list(requirements), progress=ctx.progress, cancel=ctx.cancel, log=ctx.log).to_dict()


def list_env_dicts() -> list[dict[str, Any]]:
    return [e.to_dict() for e in list_envs()]


def runtimes_to_enable() -> list[dict[str, Any]]:
    """The catalog's runtimes (and TensorFlow Lite Micro) this installation cannot use yet: what each needs and the
    command that adds it (an environment of its own, packages, a browser). ``devices`` and the studio show them."""
    from edgestudio.backends.runtimes.base import RUNTIMES
    from edgestudio.core.catalog import runtime as decl

    out = []
    for name, cls in sorted(RUNTIMES.all().items()):
        needs = cls.missing_packages()
        if not needs:
            continue
        env, d = cls.env(), decl(name)
        if env != "default":
            from edgestudio.core.catalog import environment_requirements

            needs = [f"the '{env}' Python environment: " + ", ".join(environment_requirements(env) or [])]
        enable = (f"edgestudio envs create {env}" if env != "default" else
                  f"pip install {' '.join(d.pip)}" if d is not None and d.pip else "; ".join(needs))
        out.append({"runtime": name, "label": cls.label, "needs": needs, "enable": enable})
    import importlib.util

    if importlib.util.find_spec("tflite_micro") is None:
        out.append({"runtime": "tflm", "label": "TensorFlow Lite Micro (package --tflm: arena and parity checked)",
                    "needs": ["tflite-micro"], "enable": "pip install tflite-micro"})
    return out
