"""The workspace: imports, lineage, jobs and results in SQLite, migrations, and surviving a SIGKILL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from edgestudio.core.errors import EdgeStudioError, ModelFormatError
from edgestudio.core.jobs import JobKind, JobSpec, JobStatus
from edgestudio.core.workspace import INTERRUPTED, MIGRATIONS, SCHEMA_VERSION, Workspace
from edgestudio.app.manager import JobManager
from tests.conftest import ROOT


def test_import_copies_and_dedupes(tmp_path: Path, sample_onnx: Path, sample_savedmodel: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    a = ws.import_model(sample_onnx)
    assert Path(a.path).is_file() and Path(a.path).is_relative_to(ws.root) and a.stored == "copy"
    other = tmp_path / "renamed.onnx"
    other.write_bytes(sample_onnx.read_bytes())
    assert ws.import_model(other).id == a.id  # same content, one model
    sm = ws.import_model(sample_savedmodel)
    assert sm.format.value == "savedmodel" and Path(sm.path).is_dir() and sm.size_bytes > 100_000
    assert len(ws.models()) == 2 and ws.schema_version == SCHEMA_VERSION


def test_import_reference_and_bad_file(tmp_path: Path, sample_tflite: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    ref = ws.import_model(sample_tflite, copy=False)
    assert ref.path == str(sample_tflite.resolve()) and ref.stored == "reference"
    junk = tmp_path / "junk.onnx"
    junk.write_text("nope")
    with pytest.raises(ModelFormatError, match="junk.onnx"):
        ws.import_model(junk)
    assert len(ws.models()) == 1


def test_lineage_and_remove(tmp_path: Path, sample_onnx: Path, sample_tflite: Path, sample_keras: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    root = ws.import_model(sample_keras)
    child = ws.add_artifact(sample_onnx, parent_id=root.id, job_id="j1", options={"opset": 17})
    grandchild = ws.add_artifact(sample_tflite, parent_id=child.id, job_id="j2", options={"method": "fp16"})
    assert [m.id for m in ws.lineage(grandchild.id)] == [root.id, child.id, grandchild.id]
    assert ws.lineage(grandchild.id)[1].options == {"opset": 17}
    ws.remove_model(child.id, delete_files=False)
    assert [m.id for m in ws.models()] == [root.id]


def test_migration_from_v1_keeps_data(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    db = sqlite3.connect(root / "workspace.db")
    MIGRATIONS[0](db)
    db.execute("PRAGMA user_version = 1")
    db.execute("INSERT INTO models (name, path, format, sha256, size_bytes, parent_id, created_at)"
               " VALUES ('m.onnx', '/x/m.onnx', 'onnx', 'abc', 10, NULL, 0)")
    db.execute("INSERT INTO models (name, path, format, sha256, size_bytes, parent_id, created_at)"
               " VALUES ('m.xml', '/x/m.xml', 'openvino', 'def', 20, 1, 0)")
    db.commit()
    db.close()
    ws = Workspace(root)
    assert ws.schema_version == SCHEMA_VERSION == 6
    models = ws.models()
    assert [(m.name, m.made_by) for m in models] == [("m.onnx", "import"), ("m.xml", "job")]
    assert ws.results() == []
    # v6: a model's data files, inherited by its variants (a variant's own one wins)
    ws.set_data(models[0].id, {"calibration": "/d/calib.npz", "evaluation": "/d/test.npz"})
    ws.set_data(models[1].id, {"evaluation": "/d/other.npz"})
    assert ws.data_for(models[1].id) == {"calibration": "/d/calib.npz", "evaluation": "/d/other.npz"}
    ws.set_data(models[0].id, {"calibration": None})
    assert ws.data_for(models[1].id) == {"evaluation": "/d/other.npz"}


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    db = sqlite3.connect(root / "workspace.db")
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(EdgeStudioError, match="newer EdgeStudio"):
        Workspace(root)


def test_manager_records_jobs_artifacts_and_results(tmp_path: Path, sample_onnx: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    mgr = JobManager(ws, max_workers=1)
    try:
        job = mgr.submit(JobSpec(JobKind.CALL, model=str(sample_onnx), options={
            "function": "tests.helpers.jobs:copy_model", "kwargs": {"src": str(sample_onnx), "name": "c.onnx"}}),
            output_name="c.onnx")
        assert mgr.wait(job, 60).status is JobStatus.SUCCEEDED
        bench = mgr.submit(JobSpec(JobKind.BENCH, model=str(sample_onnx), options={"iterations": 10}))
        assert mgr.wait(bench, 60).status is JobStatus.SUCCEEDED
        bad = mgr.submit(JobSpec(JobKind.CALL, model=str(sample_onnx), options={"function": "tests.helpers.jobs:fail"}))
        assert mgr.wait(bad, 60).status is JobStatus.FAILED
        not_a_model = mgr.submit(JobSpec(JobKind.CALL, options={"function": "tests.helpers.jobs:write_artifact",
                                                                "kwargs": {"name": "x.bin"}}), output_name="x.bin")
        r = mgr.wait(not_a_model, 60)
        assert r.status is JobStatus.FAILED and "not a usable model" in r.error
    finally:
        mgr.shutdown()
    original = ws.model_by_path(sample_onnx)
    artifact = ws.children(original.id)[0]
    assert artifact.job_id == job and artifact.path == str(ws.artifact_path(job, "c.onnx"))
    assert artifact.options["kind"] == "call" and Path(artifact.path).read_bytes() == sample_onnx.read_bytes()
    assert [r["kind"] for r in ws.results(original.id)] == ["bench"]
    statuses = {j.id: j.status for j in ws.jobs()}
    assert statuses == {job: JobStatus.SUCCEEDED, bench: JobStatus.SUCCEEDED, bad: JobStatus.FAILED,
                        not_a_model: JobStatus.FAILED}
    assert "could not do it" in ws.job(bad).error


def test_app_killed_mid_job_loses_nothing(tmp_path: Path, sample_onnx: Path) -> None:
    root = tmp_path / "ws"
    proc = subprocess.Popen([sys.executable, "-m", "tests.helpers.app_killed", str(root), str(sample_onnx)],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True)
    line = proc.stdout.readline()  # type: ignore[union-attr]
    assert line.startswith("READY"), line
    done, bench, hanging = line.split()[1:]
    partial = list((root / "artifacts" / hanging).glob(".*.partial-*"))
    assert partial, "the hanging job should be writing into its staging folder"
    import psutil

    workers = psutil.Process(proc.pid).children(recursive=True)
    os.kill(proc.pid, signal.SIGKILL)  # the app dies; its workers are told by the kernel (PDEATHSIG)
    proc.wait(10)
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, "worker processes outlived the app"

    ws = Workspace(root)
    jobs = {j.id: j for j in ws.jobs()}
    assert jobs[done].status is JobStatus.SUCCEEDED and jobs[bench].status is JobStatus.SUCCEEDED
    assert jobs[bench].result["iterations"] == 20
    assert jobs[hanging].status is JobStatus.FAILED and jobs[hanging].error == INTERRUPTED
    artifacts = [m for m in ws.models() if m.job_id]
    assert [m.job_id for m in artifacts] == [done]
    assert Path(artifacts[0].path).read_bytes() == sample_onnx.read_bytes()
    leftovers = [p for p in root.rglob("*") if ".partial-" in p.name or p.parent.name == hanging]
    assert leftovers == [] and not (root / "artifacts" / hanging).exists()
    assert [r["kind"] for r in ws.results()] == ["call", "bench"]  # nothing from the interrupted job


def test_the_change_log_names_what_changed(tmp_path: Path, sample_onnx: Path, sample_tflite: Path) -> None:
    """Every process sharing a workspace learns which rows changed (triggers fill the log), not just that
    something did: the studio updates those rows only."""
    ws = Workspace(tmp_path / "ws")
    other = Workspace(tmp_path / "ws")  # another process's connection
    start = ws.last_change()
    root = other.import_model(sample_onnx)
    child = other.add_artifact(sample_tflite, parent_id=root.id, job_id="j1", options={})
    seq, changes = ws.changes_since(start)
    assert changes.models == {root.id, child.id} and not changes.removed_models and not changes.everything
    seq2, nothing = ws.changes_since(seq)
    assert seq2 == seq and not nothing
    other.remove_model(root.id, delete_files=False)  # the child goes with it (cascade)
    _, gone = ws.changes_since(seq)
    assert gone.removed_models == {root.id, child.id} and not gone.models
    ws.add_result(None, None, "call", {"value": 1})  # a result of no model is recorded (and not logged)
    assert ws.changes_since(ws.last_change())[1].results == set()
    ws.trim_changes(keep=0)
    assert ws.changes_since(start)[1].everything  # the log no longer reaches back: reload all
