"""JobManager: submits jobs to the pool and records them, their artifacts (with lineage) and results in a
workspace. The GUI and the CLI both go through it; without a workspace it is a thin layer over the pool."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from edgestudio.core.errors import EdgeStudioError
from edgestudio.core.jobs import JobEvent, JobRecord, JobSpec, JobStatus, new_job_id
from edgestudio.core.workspace import Workspace
from edgestudio.execution.base import Executor, artifacts_of

PROGRESS_PERSIST_S = 1.0


class JobManager:
    """Jobs on one execution target (``executor``; the local worker pool by default), recorded in a workspace."""

    def __init__(self, workspace: Workspace | None = None, executor: Executor | None = None,
                 max_workers: int | None = None, *, target: str | None = None) -> None:
        from edgestudio.execution.targets import executor_for

        self.workspace = workspace
        self.pool: Executor = executor or executor_for(target, max_workers=max_workers)
        self._parent: dict[str, int | None] = {}
        self._pending: dict[str, threading.Event] = {}
        self._pending_lock = threading.Lock()
        self._submitter: ThreadPoolExecutor | None = None
        self._last_persist: dict[str, float] = {}
        self.pool.add_finish_hook(self._on_finish)
        if workspace is not None:
            self.pool.subscribe(self._persist_progress)

    def subscribe(self, callback: Callable[[JobEvent], None]) -> Callable[[], None]:
        return self.pool.subscribe(callback)

    def submit(self, spec: JobSpec, *, output_name: str | None = None, background: bool = False) -> str:
        """Queue ``spec``. With a workspace, the model is imported (once) and ``output_name`` lands in
        ``artifacts/<job id>/``; the artifact is recorded as a child of the model.

        ``background``: return the job id at once and do the workspace work (hashing the model, the database's
        fsync) on a submitter thread, in submission order: the studio's GUI thread never waits on the disk.
        A job that cannot be recorded then ends as failed, saying why, like any other."""
        spec.validate()  # a misspelt option fails here, in the caller, not silently in a worker
        job_id = new_job_id()
        if not background:
            self._submit_now(spec, output_name, job_id)
            return job_id
        done = threading.Event()
        with self._pending_lock:
            self._pending[job_id] = done
            if self._submitter is None:
                self._submitter = ThreadPoolExecutor(1, thread_name_prefix="edgestudio-submit")
            self._submitter.submit(self._submit_in_background, spec, output_name, job_id, done)
        return job_id

    def _submit_now(self, spec: JobSpec, output_name: str | None, job_id: str) -> None:
        parent_id = None
        if self.workspace is not None:
            if spec.model:
                parent_id = self.workspace.import_model(spec.model, copy=False).id
            if output_name and not spec.output:
                spec.output = str(self.workspace.artifact_path(job_id, output_name))
            self.workspace.record_job(JobRecord(id=job_id, spec=spec))
        self._parent[job_id] = parent_id
        self.pool.submit(spec, job_id)

    def _submit_in_background(self, spec: JobSpec, output_name: str | None, job_id: str, done: threading.Event) -> None:
        try:
            self._submit_now(spec, output_name, job_id)
        except Exception as exc:  # noqa: BLE001 - e.g. the model vanished, or the disk is full
            from edgestudio.core.errors import describe_exception

            error = exc.one_line() if isinstance(exc, EdgeStudioError) else describe_exception(exc, spec.model)
            self._parent.pop(job_id, None)
            try:
                self.pool.reject(spec, job_id, error)
            except Exception:  # the pool is shut down: nobody listens any more
                pass
        finally:
            done.set()
            with self._pending_lock:
                self._pending.pop(job_id, None)

    def _submitted(self, job_id: str) -> None:
        """Wait until a background submission of ``job_id`` reached the executor."""
        with self._pending_lock:
            done = self._pending.get(job_id)
        if done is not None:
            done.wait()

    def cancel(self, job_id: str) -> None:
        self._submitted(job_id)
        self.pool.cancel(job_id)

    def wait(self, job_id: str, timeout: float | None = None) -> JobRecord:
        self._submitted(job_id)
        return self.pool.wait(job_id, timeout)

    def get(self, job_id: str) -> JobRecord:
        self._submitted(job_id)
        return self.pool.get(job_id)

    def history(self, limit: int | None = None) -> list[JobRecord]:
        """Jobs of this session and, with a workspace, every earlier one."""
        current = {r.id: r for r in self.pool.jobs()}
        if self.workspace is None:
            return sorted(current.values(), key=lambda r: -r.created_at)
        stored = self.workspace.jobs(limit)
        return [current.get(r.id, r) for r in stored]

    def shutdown(self) -> None:
        if self._submitter is not None:
            self._submitter.shutdown(wait=True)  # every accepted job reaches the executor (and is cancelled there)
        self.pool.shutdown()

    # ------------------------------------------------------------------------------------- persisting
    def _persist_progress(self, event: JobEvent) -> None:
        if self.workspace is None or event.type not in ("started", "progress"):
            return
        now = time.monotonic()
        if event.type == "progress" and now - self._last_persist.get(event.job_id, 0.0) < PROGRESS_PERSIST_S:
            return
        self._last_persist[event.job_id] = now
        rec = self.pool.get(event.job_id)
        self.workspace.update_job_progress(rec.id, rec.status, rec.progress, rec.message, rec.started_at)

    def _on_finish(self, rec: JobRecord) -> None:
        self._last_persist.pop(rec.id, None)
        ws = self.workspace
        if ws is None:
            return
        parent_id = self._parent.pop(rec.id, None)
        try:
            with ws.transaction():  # the artifacts, the result and the job's status: all recorded, or none
                if rec.status is JobStatus.SUCCEEDED and rec.result is not None:
                    try:
                        self._register(ws, rec, parent_id)
                    except EdgeStudioError as exc:
                        if "no space left" in exc.cause:
                            raise
                        # "successful" but the artifact is unreadable: a failure
                        rec.status, rec.error = (JobStatus.FAILED,
                                                 f"the job's output is not a usable model: {exc.one_line()}")
                ws.record_job(rec)
        except EdgeStudioError as exc:  # the workspace could not record it (a full disk): the job failed
            rec.status, rec.error, rec.result = JobStatus.FAILED, exc.one_line(), None
            try:
                ws.record_job(rec)
            except EdgeStudioError:
                pass

    def _register(self, ws: Workspace, rec: JobRecord, parent_id: int | None) -> None:
        assert rec.result is not None
        model_id = parent_id
        ids: list[int] = []
        base = {"kind": rec.spec.kind.value, **({"runtime": rec.spec.runtime} if rec.spec.runtime else {})}
        for art in artifacts_of(rec.result):
            parent = ids[art["parent"]] if art.get("parent") is not None else parent_id
            options = {**base, **(art.get("options") or {k: v for k, v in rec.spec.options.items()})}
            entry = ws.add_artifact(art["path"], parent_id=parent, job_id=rec.id, options=options,
                                    made_by=rec.spec.kind.value)
            ids.append(entry.id)
            model_id = entry.id
        if ids:
            rec.result["model_ids"] = ids
        ws.add_result(rec.id, model_id, rec.spec.kind.value, rec.result)
