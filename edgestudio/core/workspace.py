"""The workspace: a folder of imported models, derived artifacts and a SQLite database (WAL) of models,
their lineage (which job made which artifact from which parent, with which options), jobs and results.

Crash safety: artifacts are only registered after they were moved into place whole; on open, jobs that
were queued or running when the app died are marked failed ("interrupted") and staging leftovers removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgestudio.core.errors import EdgeStudioError
from edgestudio.core.formats import ModelFormat, detect_format
from edgestudio.core.jobs import JobRecord, JobSpec, JobStatus
from edgestudio.core.modelinfo import model_size_bytes
from edgestudio.core.model_files import (  # noqa: F401 - re-exported: a model's files, copies and hash
    copy_model,
    copy_model_folder,
    hash_model,
    model_files,
    onnx_external_files,
    private_copy,
    remove_model_files,
)
from edgestudio.core.owners import current_owner, owner_alive, partial_is_dead
from edgestudio.core.workspace_schema import MIGRATIONS, SCHEMA_VERSION

INTERRUPTED = "interrupted: EdgeStudio stopped while the job was running"


def _to_db(text: str) -> str | bytes:
    """A path as SQLite stores it: text, or its raw bytes when the name is not UTF-8 (a file name may hold any
    bytes; SQLite text may not)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return os.fsencode(text)


def _from_db(value: str | bytes) -> str:
    return os.fsdecode(value) if isinstance(value, bytes) else value


def default_workspace_dir() -> Path:
    env = os.environ.get("EDGESTUDIO_WORKSPACE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return platformdirs.user_data_path("edgestudio", appauthor=False) / "workspace"




@dataclass

class ModelEntry:
    id: int
    name: str
    path: str
    format: ModelFormat
    sha256: str
    size_bytes: int
    parent_id: int | None
    job_id: str | None
    options: dict[str, Any] = field(default_factory=dict)
    stored: str = "copy"
    made_by: str = "import"
    created_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "path": self.path, "format": self.format.value,
                "sha256": self.sha256, "size_bytes": self.size_bytes, "parent_id": self.parent_id,
                "job_id": self.job_id, "options": self.options, "stored": self.stored, "made_by": self.made_by,
                "created_at": self.created_at}


class _Db:
    """The SQLite connection, with a full disk (or failing storage) said as one line naming the folder."""

    def __init__(self, conn: sqlite3.Connection, root: Path) -> None:
        self._conn, self._root = conn, root

    def execute(self, sql: str, args: Any = ()) -> sqlite3.Cursor:
        try:
            return self._conn.execute(sql, args)
        except sqlite3.OperationalError as exc:
            text = str(exc).lower()
            if "full" in text or "disk i/o" in text:
                raise EdgeStudioError(self._root, f"no space left on {self._root} (the workspace database "
                                                  f"could not be written: {exc})") from None
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


@dataclass
class WorkspaceChanges:
    """Which rows changed: model ids added or updated, model ids removed, job ids, models with new results."""

    models: set[int] = field(default_factory=set)
    removed_models: set[int] = field(default_factory=set)
    jobs: set[str] = field(default_factory=set)
    results: set[int] = field(default_factory=set)
    everything: bool = False  # the log no longer reaches back: reload it all

    def __bool__(self) -> bool:
        return bool(self.models or self.removed_models or self.jobs or self.results or self.everything)


class Workspace:
    """One workspace folder. Thread-safe (one connection behind a lock); several processes may share it."""

    def __init__(self, root: str | Path | None = None) -> None:
        # absolute: the paths it stores must work from any folder a later command runs in
        self.root = Path(root).expanduser().resolve() if root else default_workspace_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        self.models_dir = self.root / "models"
        self.artifacts_dir = self.root / "artifacts"
        self.models_dir.mkdir(exist_ok=True)
        self.artifacts_dir.mkdir(exist_ok=True)
        self._lock = threading.RLock()
        try:
            conn = sqlite3.connect(self.root / "workspace.db", check_same_thread=False, isolation_level=None, timeout=10)
            conn.row_factory = sqlite3.Row
            self._db = _Db(conn, self.root)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise EdgeStudioError(self.root / "workspace.db", f"cannot open the workspace database ({exc})") from None
        self.recover()
        self.trim_changes()

    # ----------------------------------------------------------------------------------- lifecycle
    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        with self._lock:
            version = self.schema_version
            if version > SCHEMA_VERSION:
                raise EdgeStudioError(self.root, f"workspace was written by a newer EdgeStudio (schema {version}, "
                                                 f"this version knows {SCHEMA_VERSION})")
            for target in range(version, SCHEMA_VERSION):
                self._db.execute("BEGIN IMMEDIATE")  # one process at a time from here on
                if self.schema_version > target:  # another process migrated while this one waited for the lock
                    self._db.execute("COMMIT")
                    continue
                try:
                    MIGRATIONS[target](self._db)
                    self._db.execute(f"PRAGMA user_version = {target + 1}")
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise

    def recover(self) -> None:
        """Mark jobs interrupted by a crash as failed and remove their half-written files: only those of
        processes that are gone (another live process sharing this workspace keeps its running jobs)."""
        with self._lock:
            rows = self._db.execute("SELECT id, owner FROM jobs WHERE status IN (?, ?)",
                                    (JobStatus.QUEUED.value, JobStatus.RUNNING.value)).fetchall()
            dead = [r["id"] for r in rows if not owner_alive(r["owner"])]
            for job_id in dead:
                self._db.execute("UPDATE jobs SET status = ?, error = ?, finished_at = ? WHERE id = ? AND status IN (?, ?)",
                                 (JobStatus.FAILED.value, INTERRUPTED, time.time(), job_id, JobStatus.QUEUED.value,
                                  JobStatus.RUNNING.value))
        for folder in (self.models_dir, self.artifacts_dir):
            for leftover in list(folder.rglob(".*.partial-*")):
                if not partial_is_dead(leftover):
                    continue
                shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)
        for job_dir in self.artifacts_dir.iterdir():
            try:
                if job_dir.is_dir() and not any(job_dir.iterdir()):
                    job_dir.rmdir()
            except OSError:  # another process just wrote into it
                pass

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------------------------------- models
    def _entry(self, row: sqlite3.Row) -> ModelEntry:
        return ModelEntry(row["id"], _from_db(row["name"]), _from_db(row["path"]), ModelFormat(row["format"]), row["sha256"],
                          row["size_bytes"], row["parent_id"], row["job_id"], json.loads(row["options_json"]),
                          row["stored"], row["made_by"], row["created_at"])

    def import_model(self, path: str | Path, *, copy: bool = True) -> ModelEntry:
        """Add a model (copied into the workspace, or referenced where it is). The same file twice is one model."""
        src = Path(path).expanduser().resolve()
        fmt = detect_format(src)
        existing = self.model_by_path(src)
        if existing is not None:
            return existing
        digest = hash_model(src, fmt)
        with self._lock:
            row = self._db.execute("SELECT * FROM models WHERE sha256 = ? AND parent_id IS NULL ORDER BY id LIMIT 1",
                                   (digest,)).fetchone()
            if row is not None:
                return self._entry(row)
        stored_path = src
        if copy:
            dest_dir = self.models_dir / digest[:16]
            stored_path = dest_dir / src.name
            if not stored_path.exists():
                tmp = dest_dir.parent / f".{digest[:16]}.partial-{os.getpid()}-{threading.get_ident()}"
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
                if src.is_dir():
                    copy_model_folder(src, tmp / src.name)
                else:
                    for f in model_files(src, fmt):
                        shutil.copy2(f, tmp / f.name)
                try:
                    os.replace(tmp, dest_dir)  # content-addressed: another process may have put the same there
                except OSError:
                    shutil.rmtree(tmp, ignore_errors=True)
        with self.transaction():  # check and insert as one step: concurrent imports of one file make one row
            row = self._db.execute("SELECT * FROM models WHERE (sha256 = ? AND parent_id IS NULL) OR path = ? "
                                   "ORDER BY id LIMIT 1", (digest, _to_db(str(src)))).fetchone()
            if row is not None:
                return self._entry(row)
            # where it came from: a recipe names the user's file, not the workspace's copy
            return self._insert(stored_path, fmt, digest, parent_id=None, job_id=None,
                                options={"imported_from": str(src)} if copy else {},
                                stored="copy" if copy else "reference", made_by="import")

    def add_artifact(self, path: str | Path, *, parent_id: int | None, job_id: str | None,
                     options: dict[str, Any] | None = None, made_by: str = "job") -> ModelEntry:
        p = Path(path).resolve()
        fmt = detect_format(p)
        return self._insert(p, fmt, hash_model(p, fmt), parent_id=parent_id, job_id=job_id, options=options or {},
                            stored="artifact", made_by=made_by)

    def _insert(self, path: Path, fmt: ModelFormat, digest: str, *, parent_id: int | None, job_id: str | None,
                options: dict[str, Any], stored: str, made_by: str) -> ModelEntry:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO models (name, path, format, sha256, size_bytes, parent_id, job_id, options_json, stored,"
                " made_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (_to_db(path.name), _to_db(str(path)), fmt.value, digest, model_size_bytes(path, fmt), parent_id, job_id,
                 json.dumps(options, default=str), stored, made_by, time.time()))
            return self.model(int(cur.lastrowid or 0))

    def model(self, model_id: int) -> ModelEntry:
        with self._lock:
            row = self._db.execute("SELECT * FROM models WHERE id = ?", (model_id,)).fetchone()
        if row is None:
            raise KeyError(model_id)
        return self._entry(row)

    def model_by_path(self, path: str | Path) -> ModelEntry | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM models WHERE path = ? ORDER BY id LIMIT 1",
                                   (_to_db(str(Path(path).resolve())),)).fetchone()
        return self._entry(row) if row else None

    def models(self) -> list[ModelEntry]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM models ORDER BY id").fetchall()
        return [self._entry(r) for r in rows]

    def children(self, model_id: int) -> list[ModelEntry]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM models WHERE parent_id = ? ORDER BY id", (model_id,)).fetchall()
        return [self._entry(r) for r in rows]

    def lineage(self, model_id: int) -> list[ModelEntry]:
        """The chain from the imported original down to ``model_id``."""
        chain = [self.model(model_id)]
        while chain[0].parent_id is not None:
            chain.insert(0, self.model(chain[0].parent_id))
        return chain

    def remove_model(self, model_id: int, *, delete_files: bool = True) -> None:
        """Remove a model and everything derived from it."""
        doomed = [self.model(model_id)]
        i = 0
        while i < len(doomed):
            doomed.extend(self.children(doomed[i].id))
            i += 1
        with self._lock:
            self._db.execute("DELETE FROM models WHERE id = ?", (model_id,))
        if delete_files:
            for entry in doomed:
                p = Path(entry.path)
                if entry.stored == "reference" or not p.is_relative_to(self.root):
                    continue
                for f in model_files(p, entry.format) if p.exists() else []:
                    f.unlink(missing_ok=True)
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)

    # ---------------------------------------------------------------------------------------- jobs
    def lineage_records(self, model: str) -> list[dict[str, Any]] | None:
        """How the model at ``model`` was made, oldest first, as plain records for packages (None: not here)."""
        entry = self.model_by_path(model)
        if entry is None:
            return None
        out = []
        for e in self.lineage(entry.id):
            d = e.to_dict()
            out.append({k: d[k] for k in ("name", "format", "sha256", "made_by", "job_id", "options", "created_at")})
        return out

    def last_change(self) -> int:
        """The newest entry of the change log (start :meth:`changes_since` from here)."""
        with self._lock:
            row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
            return int(row[0]) if row else 0

    def changes_since(self, seq: int) -> tuple[int, WorkspaceChanges]:
        """What changed after change ``seq``, in this process or another: ``(newest seq, changes)``. Cheap to
        poll (one indexed query). If the log was trimmed past ``seq``, ``changes.everything`` is set."""
        with self._lock:
            oldest = self._db.execute("SELECT MIN(seq) FROM changes").fetchone()[0]
            if oldest is None:  # an empty log: everything up to the high-water mark was trimmed
                row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
                oldest = int(row[0]) + 1 if row else None
            rows = self._db.execute("SELECT seq, tbl, ref, op FROM changes WHERE seq > ? ORDER BY seq",
                                    (seq,)).fetchall()
        changes = WorkspaceChanges(everything=bool(oldest is not None and oldest > seq + 1))
        for r in rows:
            if r["tbl"] == "models":
                (changes.removed_models if r["op"] == "delete" else changes.models).add(int(r["ref"]))
            elif r["tbl"] == "results" and r["ref"] is not None:
                changes.results.add(int(r["ref"]))
            elif r["tbl"] == "jobs":
                changes.jobs.add(str(r["ref"]))
        changes.models -= changes.removed_models
        return (int(rows[-1]["seq"]) if rows else seq), changes

    def trim_changes(self, keep: int = 20_000) -> None:
        with self._lock:
            self._db.execute("DELETE FROM changes WHERE seq <= (SELECT MAX(seq) FROM changes) - ?", (keep,))

    def change_token(self) -> tuple[int, int]:
        """Changes when anything commits to the workspace, in this process or another (SQLite's data_version
        moves on other connections' commits; the model/job counts on this one's): cheap to poll."""
        with self._lock:
            version = int(self._db.execute("PRAGMA data_version").fetchone()[0])
            row = self._db.execute("SELECT (SELECT COUNT(*) FROM models), (SELECT MAX(id) FROM models),"
                                   " (SELECT COUNT(*) FROM jobs)").fetchone()
        return version, hash(tuple(row))

    def set_inputs(self, model_id: int, spec: dict[str, Any]) -> None:
        """Remember what this model is fed (an InputSpec dict); its variants inherit it."""
        with self._lock:
            self._db.execute("UPDATE models SET inputs_json = ? WHERE id = ?", (json.dumps(spec or {}), model_id))

    def inputs_for(self, model_id: int) -> dict[str, Any]:
        """The input specification of a model: its own, else the nearest ancestor's ({} if none)."""
        for entry in reversed(self.lineage(model_id)):
            with self._lock:
                row = self._db.execute("SELECT inputs_json FROM models WHERE id = ?", (entry.id,)).fetchone()
            spec = json.loads(row[0]) if row and row[0] else {}
            if spec and any(spec.get(k) for k in ("data", "shapes", "values", "outputs")):
                return dict(spec)
        return {}

    DATA_KINDS = ("calibration", "evaluation")

    def set_data(self, model_id: int, data: dict[str, str | None]) -> None:
        """Remember this model's data files (``calibration``, ``evaluation``: a path, or None to forget it); its
        variants inherit them. Keys not given keep their value."""
        with self._lock:
            row = self._db.execute("SELECT data_json FROM models WHERE id = ?", (model_id,)).fetchone()
            if row is None:
                raise KeyError(model_id)
            current = json.loads(row[0] or "{}")
            for key, value in data.items():
                if key not in self.DATA_KINDS:
                    raise ValueError(f"unknown data kind {key!r} (one of {', '.join(self.DATA_KINDS)})")
                current[key] = value or None
            self._db.execute("UPDATE models SET data_json = ? WHERE id = ?", (json.dumps(current), model_id))

    def data_for(self, model_id: int) -> dict[str, str]:
        """A model's data files: per kind, its own, else the nearest ancestor's (a kind none gave is absent)."""
        out: dict[str, str] = {}
        for entry in reversed(self.lineage(model_id)):
            with self._lock:
                row = self._db.execute("SELECT data_json FROM models WHERE id = ?", (entry.id,)).fetchone()
            own = json.loads(row[0]) if row and row[0] else {}
            for key in self.DATA_KINDS:
                if key not in out and own.get(key):
                    out[key] = str(own[key])
        return out

    def artifact_path(self, job_id: str, name: str) -> Path:
        return self.artifacts_dir / job_id / name

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All the writes inside happen, or none (a full disk mid-way leaves the workspace as it was)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                try:
                    self._db.execute("ROLLBACK")
                except (sqlite3.Error, EdgeStudioError):
                    pass
                raise
            self._db.execute("COMMIT")

    def record_job(self, rec: JobRecord) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO jobs (id, kind, spec_json, status, progress, message, log_json, result_json, error,"
                " created_at, started_at, finished_at, owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET status=excluded.status, progress=excluded.progress,"
                " message=excluded.message, log_json=excluded.log_json, result_json=excluded.result_json,"
                " error=excluded.error, started_at=excluded.started_at, finished_at=excluded.finished_at",
                (rec.id, rec.spec.kind.value, rec.spec.to_json(), rec.status.value, rec.progress, rec.message,
                 json.dumps(rec.log[-200:]), json.dumps(rec.result, default=str) if rec.result is not None else None,
                 rec.error, rec.created_at, rec.started_at, rec.finished_at, current_owner()))

    def update_job_progress(self, job_id: str, status: JobStatus, progress: float, message: str,
                            started_at: float | None = None) -> None:
        with self._lock:
            self._db.execute("UPDATE jobs SET status = ?, progress = ?, message = ?,"
                             " started_at = COALESCE(?, started_at) WHERE id = ?",
                             (status.value, progress, message, started_at, job_id))

    def _job(self, row: sqlite3.Row) -> JobRecord:
        return JobRecord(id=row["id"], spec=JobSpec.from_json(row["spec_json"]), status=JobStatus(row["status"]),
                         progress=row["progress"], message=row["message"], log=json.loads(row["log_json"]),
                         result=json.loads(row["result_json"]) if row["result_json"] else None, error=row["error"],
                         created_at=row["created_at"], started_at=row["started_at"], finished_at=row["finished_at"])

    def jobs(self, limit: int | None = None) -> list[JobRecord]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY created_at DESC" + (f" LIMIT {int(limit)}" if limit else "")).fetchall()
        return [self._job(r) for r in rows]

    def job(self, job_id: str) -> JobRecord:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise KeyError(job_id)
        return self._job(row)

    # ------------------------------------------------------------------------------------- results
    def add_result(self, job_id: str | None, model_id: int | None, kind: str, data: dict[str, Any]) -> int:
        with self._lock:
            cur = self._db.execute("INSERT INTO results (job_id, model_id, kind, data_json, created_at)"
                                   " VALUES (?, ?, ?, ?, ?)", (job_id, model_id, kind, json.dumps(data, default=str),
                                                               time.time()))
            return int(cur.lastrowid or 0)

    def results(self, model_id: int | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM results WHERE 1=1", []
        if model_id is not None:
            sql += " AND model_id = ?"
            args.append(model_id)
        if kind is not None:
            sql += " AND kind = ?"
            args.append(kind)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY id", args).fetchall()
        return [{"id": r["id"], "job_id": r["job_id"], "model_id": r["model_id"], "kind": r["kind"],
                 "data": json.loads(r["data_json"]), "created_at": r["created_at"]} for r in rows]
