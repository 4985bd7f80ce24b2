"""The workspace database's schema: one migration per version (MIGRATIONS[i] takes version i to i+1), each all or
nothing."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable


def _run_script(db: sqlite3.Connection, script: str) -> None:
    # Statement by statement: executescript() would commit, and a migration must be all or nothing.
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _v1(db: sqlite3.Connection) -> None:
    _run_script(db, """
        CREATE TABLE models (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            path TEXT NOT NULL,
            format TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            size_bytes INTEGER NOT NULL,
            parent_id INTEGER REFERENCES models(id) ON DELETE CASCADE,
            job_id TEXT,
            options_json TEXT NOT NULL DEFAULT '{}',
            stored TEXT NOT NULL DEFAULT 'copy',
            created_at REAL NOT NULL
        );
        CREATE INDEX models_sha ON models(sha256);
        CREATE INDEX models_parent ON models(parent_id);
        CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            spec_json TEXT NOT NULL,
            status TEXT NOT NULL,
            progress REAL NOT NULL DEFAULT 0,
            message TEXT NOT NULL DEFAULT '',
            log_json TEXT NOT NULL DEFAULT '[]',
            result_json TEXT,
            error TEXT,
            created_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL
        );
    """)


def _v2(db: sqlite3.Connection) -> None:
    """v2: results get their own table (one job may yield several), models learn what made them."""
    _run_script(db, """
        CREATE TABLE results (
            id INTEGER PRIMARY KEY,
            job_id TEXT REFERENCES jobs(id) ON DELETE SET NULL,
            model_id INTEGER REFERENCES models(id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            data_json TEXT NOT NULL,
            created_at REAL NOT NULL
        );
        CREATE INDEX results_model ON results(model_id);
        ALTER TABLE models ADD COLUMN made_by TEXT NOT NULL DEFAULT 'import';
    """)
    db.execute("UPDATE models SET made_by = 'job' WHERE parent_id IS NOT NULL")


def _v3(db: sqlite3.Connection) -> None:
    """v3: each model remembers its input specification (--input/--shape/--value), inherited by its variants."""
    db.execute("ALTER TABLE models ADD COLUMN inputs_json TEXT NOT NULL DEFAULT '{}'")
    # the process that runs a job (pid:start time): recovery touches only the jobs of processes that are gone
    db.execute("ALTER TABLE jobs ADD COLUMN owner TEXT")


def _v4(db: sqlite3.Connection) -> None:
    """v4: a change log filled by triggers, so every process sharing the workspace learns exactly which models,
    jobs and results changed (the studio updates those rows instead of rebuilding its tree)."""
    db.execute("CREATE TABLE changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT NOT NULL, ref TEXT NOT NULL, "
               "op TEXT NOT NULL)")
    _change_triggers(db)


def _change_triggers(db: sqlite3.Connection) -> None:
    for table, key in (("models", "id"), ("jobs", "id"), ("results", "model_id")):
        for op, row in (("insert", "NEW"), ("update", "NEW"), ("delete", "OLD")):
            db.execute(f"DROP TRIGGER IF EXISTS {table}_{op}_log")
            # a result of no model (a job's plain answer) is no row anyone shows: nothing to log
            db.execute(f"CREATE TRIGGER {table}_{op}_log AFTER {op.upper()} ON {table} "
                       f"WHEN {row}.{key} IS NOT NULL BEGIN "
                       f"INSERT INTO changes (tbl, ref, op) VALUES ('{table}', {row}.{key}, '{op}'); END")


def _v5(db: sqlite3.Connection) -> None:
    """v5: v4's triggers logged results of no model as NULL, which the log refuses (the result was lost)."""
    _change_triggers(db)


def _v6(db: sqlite3.Connection) -> None:
    """v6: each model remembers its data files (calibration, evaluation), inherited by its variants: data belongs to
    a model and its lineage, never to a panel that showed another model last."""
    db.execute("ALTER TABLE models ADD COLUMN data_json TEXT NOT NULL DEFAULT '{}'")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1, _v2, _v3, _v4, _v5, _v6]  # MIGRATIONS[i] takes version i to i+1
SCHEMA_VERSION = len(MIGRATIONS)
