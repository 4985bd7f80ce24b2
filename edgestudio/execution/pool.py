"""A pool of spawned worker processes with progress events, cancellation and crash handling.

One supervisor thread owns the workers: it reads their pipes, starts queued jobs, and watches for a worker
that died (segfault, SIGKILL, out of memory), ran past its time limit, grew past its memory limit, or
ignored a cancel request for longer than the grace period. Such a worker is killed and replaced; its job
ends with the cause, and the queue keeps going. Jobs write artifacts into a staging folder that is moved
into place only when the job succeeds, so a cancelled or crashed job leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import shutil
import signal
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from edgestudio.core.jobs import JobEvent, JobRecord, JobSpec, JobStatus
from edgestudio.core.owners import (
    OWNER_FILE,
    clean_stale_partials,
    make_marked_folder,
    marked_owner,
    owner_alive,
    write_owner,
)
from edgestudio.execution.base import ExecutorBase, TargetInfo
from edgestudio.jobs.messages import PROTOCOL_VERSION, JobMessage, RunRequest

log = logging.getLogger(__name__)



def default_max_workers() -> int:
    return max(1, (os.cpu_count() or 2) // 2)


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "worker stopped"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"worker process crashed with {name} (exit code {exitcode})"
    return f"worker process exited unexpectedly with code {exitcode}"


WORKER_TMP_PREFIX = "edgestudio-worker-"


def clean_dead_worker_folders() -> list[Path]:
    """Remove worker temporary folders whose app is gone (killed before it could): only those whose mark proves
    they are EdgeStudio's."""
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(WORKER_TMP_PREFIX + "*"):
        owner = marked_owner(folder)
        if owner is not None and not owner_alive(owner) and folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


class _Worker:
    def __init__(self, ctx: Any, warm_imports: tuple[str, ...], nice: int = 0) -> None:
        from edgestudio.execution.pool_worker import worker_main

        self.conn, child = ctx.Pipe(duplex=True)
        self.cancel_event = ctx.Event()
        # the worker's temporary files (its jobs' scratch folders, TensorFlow's autograph modules, a browser's
        # profile) live in a folder the pool removes when the worker ends, however it ends (a job killed for its
        # timeout or memory cannot clean up after itself)
        self.tmp = tempfile.mkdtemp(prefix=WORKER_TMP_PREFIX)
        write_owner(Path(self.tmp))  # the app's mark: a later app removes it if this one dies (SIGKILL)
        self.proc = ctx.Process(target=worker_main, args=(child, self.cancel_event, warm_imports, nice, self.tmp),
                                name="edgestudio-worker", daemon=False)
        self.proc.start()
        child.close()
        self.job_id: str | None = None
        self.cancel_requested_at: float | None = None
        self.kill_reason: tuple[JobStatus, str] | None = None
        self.quick_lane = False  # running a quick job beside long ones (the worker beyond max_workers)
        self.retiring = False  # asked to exit (an extra worker left idle)
        self._started: list[Any] = []  # what the worker started, noted while it lived (psutil processes)

    def note_started(self) -> None:
        """Note what the live worker has started (a browser, a converter's process), so that :meth:`kill` stops it
        even once the worker has gone and it was orphaned."""
        if self.proc.is_alive():
            self._started += _descendants(self.proc.pid)

    def kill_now(self) -> None:
        """Kill the worker at once (a timeout, a cancel past its grace, its memory), and then what it started."""
        self.note_started()
        self.proc.kill()

    def kill(self) -> None:
        # what the worker started (a browser, a converter's process) goes with it: orphaned, a browser went on writing
        # its profile into the worker's folder after the folder was removed
        self.note_started()
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        _kill_all(self._started)
        self.conn.close()
        if not self.proc.is_alive():
            remove_worker_folder(Path(self.tmp))


def _descendants(pid: int | None) -> list[Any]:
    try:
        import psutil

        return list(psutil.Process(pid).children(recursive=True)) if pid else []
    except Exception:  # noqa: BLE001 - gone already, or psutil missing: nothing to stop
        return []


def _kill_all(procs: list[Any]) -> None:
    if not procs:
        return
    import psutil

    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()
    with contextlib.suppress(psutil.Error):
        psutil.wait_procs(procs, timeout=5)


def remove_worker_folder(folder: Path, tries: int = 10) -> bool:
    """Remove a dead worker's temporary folder. A browser the worker started may still be writing its profile for a
    moment after the worker died: what it holds goes first and the app's mark last, so a folder that cannot be
    emptied now keeps its mark and a later app removes it (:func:`clean_dead_worker_folders`). True: removed."""
    for attempt in range(tries):
        try:
            entries = [e for e in folder.iterdir() if e.name != OWNER_FILE]
        except FileNotFoundError:
            return True
        except OSError:
            return False
        for entry in entries:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()
        try:
            emptied = not any(e.name != OWNER_FILE for e in folder.iterdir())
        except OSError:
            return not folder.exists()
        if emptied:
            shutil.rmtree(folder, ignore_errors=True)
            return not folder.exists()
        if attempt < tries - 1:
            time.sleep(0.2)
    return False


class WorkerPool(ExecutorBase):
    """The ``local`` execution target: run :class:`JobSpec` jobs in spawned worker processes of this Python.
    Thread-safe; events go to subscribers."""

    def __init__(self, max_workers: int | None = None, *, grace_s: float = 2.0,
                 warm_imports: tuple[str, ...] = (), nice: int = 0, quick_slots: int = 1) -> None:
        """``nice``: workers run at this much lower CPU priority (the studio uses it so that a busy worker
        never starves the GUI thread; an idle GUI takes nothing from a benchmark). ``quick_slots``: workers
        beyond ``max_workers`` that only take quick jobs (:attr:`JobSpec.is_quick`) while long ones run."""
        self.max_workers = max_workers or default_max_workers()
        self.quick_slots = quick_slots
        self.grace_s = grace_s
        self._warm_imports = warm_imports
        self._nice = nice
        super().__init__()
        clean_dead_worker_folders()
        self._ctx = mp.get_context("spawn")
        self._workers: list[_Worker] = []
        self._staging: dict[str, Path] = {}
        self._wake_r, self._wake_w = self._ctx.Pipe(duplex=False)
        self._thread = threading.Thread(target=self._supervise, name="edgestudio-pool", daemon=True)
        self._thread.start()
        _POOLS.add(self)

    # ------------------------------------------------------------------------------------- public API
    def submit(self, spec: JobSpec, job_id: str | None = None) -> str:
        rec = self._enqueue(spec, job_id, "worker pool")
        self._wake()
        return rec.id

    def cancel(self, job_id: str) -> None:
        """Cooperative cancel; the worker is killed if the job has not stopped after ``grace_s``."""
        with self._lock:
            rec = self._running_record(job_id)
            if rec is None:
                return
            for w in self._workers:
                if w.job_id == job_id and w.cancel_requested_at is None:
                    w.cancel_requested_at = time.monotonic()
                    w.cancel_event.set()
        self._wake()

    def worker_pids(self) -> list[int]:
        with self._lock:
            return [w.proc.pid for w in self._workers if w.proc.pid]

    def shutdown(self, wait: bool = True) -> None:
        """Stop the pool: queued and running jobs end as cancelled ("app closed"), workers exit, and what they started
        goes with them."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            for job_id in list(self._queue):
                self._finish(self._records[job_id], JobStatus.CANCELLED, error="cancelled: app closed")
            self._queue.clear()
            for w in self._workers:
                if w.job_id:
                    self._finish(self._records[w.job_id], JobStatus.CANCELLED, error="cancelled: app closed")
                    w.job_id = None
                # what it started goes with it, taken now: a browser session a job left open outlives the worker (its
                # pipe closed, it went on writing its profile into the removed worker folder). Now, before the
                # supervisor thread ends: the workers were started from it, and their parent-death signal
                # (PR_SET_PDEATHSIG follows the creating *thread*) kills them as it ends, orphaning what they started
                w.note_started()
                try:
                    w.conn.send(None)
                except (OSError, ValueError):
                    pass
        self._wake()
        if wait:
            self._thread.join(10)
        with self._lock:
            for w in self._workers:
                w.proc.join(1)
                w.kill()
            self._workers.clear()
        _POOLS.discard(self)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # ------------------------------------------------------------------------------------ supervision
    def _wake(self) -> None:
        try:
            self._wake_w.send_bytes(b"!")
        except (OSError, ValueError):
            pass

    def _supervise(self) -> None:
        while not self._stopping:
            try:
                self._supervise_once()
            except Exception:  # the supervisor must outlive any surprise, or every job would hang
                log.exception("worker pool supervisor error")
                time.sleep(0.1)

    def _supervise_once(self) -> None:
        with self._lock:
            waitables: list[Any] = [self._wake_r]
            for w in self._workers:
                waitables += [w.conn, w.proc.sentinel]
        try:
            ready = mpc.wait(waitables, timeout=0.1)
        except OSError:
            ready = []
        with self._lock:
            if self._wake_r in ready:
                while self._wake_r.poll():
                    self._wake_r.recv_bytes()
            for w in list(self._workers):
                if w.conn in ready or w.proc.sentinel in ready:
                    self._drain(w)
            self._check_workers()
            if not self._stopping:
                self._schedule()
                if not self._queue:
                    self._retire_extra()

    def _drain(self, w: _Worker) -> None:
        try:
            while not w.conn.closed and w.conn.poll():
                msg = w.conn.recv()
                if not isinstance(msg, JobMessage) or msg.v != PROTOCOL_VERSION:
                    log.warning("ignored a message of another protocol from worker %s: %r", w.proc.pid, msg)
                    continue
                self._handle(w, msg.type, msg.job_id, msg.data)
        except (EOFError, OSError, ValueError):
            pass  # the worker is gone; _check_workers reports why

    def _handle(self, w: _Worker, kind: str, job_id: str | None, data: dict[str, Any]) -> None:
        rec = self._records.get(job_id or "")
        if rec is None or rec.status.finished:
            return
        if kind in ("progress", "log", "samples"):
            self._apply(rec, kind, data)
        elif kind == "done":
            w.job_id, w.cancel_requested_at = None, None
            try:
                result = self._publish_artifacts(rec, data["result"])
            except OSError as exc:
                self._finish(rec, JobStatus.FAILED, error=f"{rec.spec.output}: cannot move the result into place ({exc})")
                return
            rec.result = result
            self._finish(rec, JobStatus.SUCCEEDED)
        elif kind == "failed":
            w.job_id, w.cancel_requested_at = None, None
            rec.log.extend(data.get("log") or [])
            error = data["error"]
            staging = self._staging.get(rec.id)
            if staging is not None and rec.spec.output:  # speak of the user's path, not the staging folder
                error = error.replace(str(staging), str(Path(rec.spec.output).parent))
            self._finish(rec, JobStatus.FAILED, error=error)
        elif kind == "cancelled":
            w.job_id, w.cancel_requested_at = None, None
            self._finish(rec, JobStatus.CANCELLED)

    def _check_workers(self) -> None:
        now = time.monotonic()
        for w in list(self._workers):
            rec = self._records.get(w.job_id) if w.job_id else None
            if rec is not None and w.kill_reason is None:
                spec = rec.spec
                elapsed = time.time() - (rec.started_at or time.time())
                if w.cancel_requested_at is not None and now - w.cancel_requested_at > self.grace_s:
                    w.kill_reason = (JobStatus.CANCELLED, "cancelled (worker stopped after the grace period)")
                elif spec.timeout_s and elapsed > spec.timeout_s:
                    w.kill_reason = (JobStatus.FAILED, f"timed out after {spec.timeout_s:g} s")
                else:
                    limit = spec.memory_limit_mb or _default_limit_mb()
                    rss = _rss_mb(w.proc.pid)
                    if rss is not None and rss > limit:
                        w.kill_reason = (JobStatus.FAILED, f"out of memory: the job used {rss:.0f} MB, over its "
                                                           f"limit of {limit:g} MB" + ("" if spec.memory_limit_mb else
                                                           " (the memory budget: EDGESTUDIO_MEMORY_BUDGET raises it)"))
                if w.kill_reason is not None:
                    w.kill_now()
            if w.proc.is_alive():
                continue
            self._drain(w)  # a final message may have been sent just before it died
            w.kill()
            self._workers.remove(w)
            rec = self._records.get(w.job_id) if w.job_id else None
            if rec is not None and not rec.status.finished:
                status, cause = w.kill_reason or (JobStatus.FAILED, describe_exit(w.proc.exitcode))
                tail = f"; last log: {rec.log[-1]}" if rec.log and status is JobStatus.FAILED else ""
                prefix = f"{rec.spec.model}: " if rec.spec.model and status is JobStatus.FAILED else ""
                self._finish(rec, status, error=prefix + cause + tail)

    def _schedule(self) -> None:
        """Start queued jobs in order. When every worker is taken by long jobs, a quick job further back (an
        inspection, a device listing, a small conversion) runs beside them in one extra worker, instead of
        waiting minutes behind a converter; never beside a benchmark (it would disturb the timings), and only
        while the machine has memory to spare."""
        while self._queue:
            busy = [w for w in self._workers if w.job_id]
            if any(self._records[w.job_id].spec.runs_alone for w in busy if w.job_id):
                return
            rec = self._records[self._queue[0]]
            regular = [w for w in busy if w.job_id and not w.quick_lane]
            if len(regular) < self.max_workers:
                if rec.spec.runs_alone and busy:
                    return  # a benchmark waits for the workers to be idle (quick jobs finish within seconds)
                if not self._start(rec, quick_lane=False):
                    return
                continue
            # every worker is taken by long jobs: a quick job may pass the queue (a waiting benchmark included)
            quick = next((self._records[j] for j in self._queue
                          if self._records[j].spec.is_quick and not self._records[j].spec.runs_alone), None)
            if quick is None or len(busy) - len(regular) >= self.quick_slots or not _memory_to_spare():
                return
            if not self._start(quick, quick_lane=True):
                return

    def _start(self, rec: JobRecord, *, quick_lane: bool) -> bool:
        """Send ``rec`` to an idle worker (started if needed); False when none can take it now."""
        idle = [w for w in self._workers if not w.job_id and not w.retiring and w.proc.is_alive()]
        if not idle:
            cap = self.max_workers + (self.quick_slots if quick_lane else 0)
            if len([w for w in self._workers if not w.retiring]) >= cap:
                return False
            try:
                idle = [_Worker(self._ctx, self._warm_imports, self._nice)]
            except Exception as exc:  # e.g. no processes left, or spawn refused
                self._queue.remove(rec.id)
                self._finish(rec, JobStatus.FAILED, error=f"could not start a worker process: {exc}")
                return True
            self._workers.append(idle[0])
        w = idle[0]
        self._queue.remove(rec.id)
        try:
            staging = self._make_staging(rec)
        except OSError as exc:  # e.g. no space left for the staging folder: the job fails, saying so
            from edgestudio.core.errors import describe_exception

            self._finish(rec, JobStatus.FAILED, error=describe_exception(exc, rec.spec.output))
            return True
        try:
            w.conn.send(RunRequest(rec.id, rec.spec.to_dict(), str(staging) if staging else None))
        except (OSError, ValueError):
            self._queue.appendleft(rec.id)  # that worker is dead: _check_workers replaces it
            return False
        w.job_id, w.cancel_requested_at, w.kill_reason, w.quick_lane = rec.id, None, None, quick_lane
        rec.status, rec.started_at = JobStatus.RUNNING, time.time()
        self._emit(JobEvent(rec.id, "started", {"pid": w.proc.pid}))
        if quick_lane:  # its log says what it did not wait behind
            beside = next((self._records[o.job_id].spec for o in self._workers if o.job_id and o is not w), None)
            if beside is not None:
                other = beside.kind.value + (f" {Path(beside.model).name}" if beside.model else "")
                self._apply(rec, "log", {"line": f"a quick job: runs beside {other} instead of waiting behind it"})
        return True

    def _retire_extra(self) -> None:
        """Idle workers beyond ``max_workers`` (the quick lane's) exit: a warm worker holds hundreds of MB."""
        idle = [w for w in self._workers if not w.job_id and not w.retiring and w.proc.is_alive()]
        live = [w for w in self._workers if not w.retiring]
        for w in idle[:max(0, len(live) - self.max_workers)]:
            w.retiring = True
            try:
                w.conn.send(None)
            except (OSError, ValueError):
                w.proc.kill()

    # -------------------------------------------------------------------------------------- artifacts
    def _make_staging(self, rec: JobRecord) -> Path | None:
        if not rec.spec.output:
            return None
        staging = staging_folder(Path(rec.spec.output), rec.id)
        self._staging[rec.id] = staging
        return staging

    def _publish_artifacts(self, rec: JobRecord, result: dict[str, Any]) -> dict[str, Any]:
        staging = self._staging.pop(rec.id, None)
        if staging is None:
            return result
        return publish_staging(staging, Path(rec.spec.output or "").parent, result)

    def _finish(self, rec: JobRecord, status: JobStatus, error: str | None = None) -> None:
        staging = self._staging.pop(rec.id, None)
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        super()._finish(rec, status, error)

    def describe(self) -> TargetInfo:
        import sys

        return TargetInfo("local", "local", sys.executable, f"worker processes of this Python "
                          f"({self.max_workers} at most)")


def staging_folder(output: Path, job_id: str) -> Path:
    """Where a job writes its artifacts before they are published beside ``output``: a hidden folder marked
    with this process (stale ones of dead processes are removed first; nothing is left if marking fails)."""
    clean_stale_partials(output.parent)
    return make_marked_folder(output.parent / f".{output.name}.partial-{job_id}")


def publish_staging(staging: Path, dest: Path, result: dict[str, Any]) -> dict[str, Any]:
    """Move a finished job's artifacts from ``staging`` into ``dest`` and point its result at them."""
    moved: list[tuple[str, str]] = []
    for entry in sorted(staging.iterdir()):
        if entry.name == OWNER_FILE:
            continue
        target = free_name(dest / entry.name) if entry.is_dir() else dest / entry.name
        if target.is_dir() and not target.is_symlink():
            target = free_name(target)  # a file never replaces a folder: the folder and what it holds stay
        os.replace(entry, target)  # atomic on one filesystem; a link at target is replaced, never followed
        moved.append((str(entry), str(target)))
    shutil.rmtree(staging, ignore_errors=True)
    for old, new in moved:
        if old.rsplit("/", 1)[-1] != new.rsplit("/", 1)[-1]:  # renamed: point the result at the new name
            result = _replace_prefix(result, old + "/", new + "/")
            result = _replace_prefix(result, old, new, exact=True)
    return _replace_prefix(result, str(staging), str(dest))


def free_name(path: Path) -> Path:
    """``path`` when nothing is there, else ``name-2``, ``name-3``... (before the suffix): an existing folder is
    never replaced by a job's output."""
    if not path.exists() and not path.is_symlink():
        return path
    stem, suffix = (path.stem, path.suffix) if path.suffix and not path.is_dir() else (path.name, "")
    for i in range(2, 10_000):
        candidate = path.with_name(f"{stem}-{i}{suffix}")
        if not candidate.exists() and not candidate.is_symlink():
            return candidate
    raise FileExistsError(f"{path}: no free name beside it")


def _replace_prefix(obj: Any, old: str, new: str, exact: bool = False) -> Any:
    if isinstance(obj, str):
        if exact:
            return new if obj == old else obj
        return new + obj[len(old):] if obj.startswith(old) else obj
    if isinstance(obj, dict):
        return {k: _replace_prefix(v, old, new, exact) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_replace_prefix(v, old, new, exact) for v in obj]
    return obj


def _default_limit_mb() -> float:
    """Every job is held to the memory budget (half this machine's memory unless EDGESTUDIO_MEMORY_BUDGET says)."""
    from edgestudio.core.safety import memory_budget

    return round(memory_budget() / 2**20)


def _memory_to_spare(min_mb: float = 1024) -> bool:
    """Room for one more worker beside the running ones (a quick job's worker takes a few hundred MB)."""
    try:
        import psutil

        return bool(psutil.virtual_memory().available / 2**20 >= min_mb)
    except Exception:  # psutil missing or the figure unreadable: do not add a worker
        return False


def _rss_mb(pid: int | None) -> float | None:
    if not pid:
        return None
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss / 2**20  # type: ignore[no-any-return]
    except Exception:
        return None


_POOLS: weakref.WeakSet[WorkerPool] = weakref.WeakSet()


def _shutdown_all() -> None:
    for pool in list(_POOLS):
        pool.shutdown(wait=False)


import atexit  # noqa: E402

atexit.register(_shutdown_all)
