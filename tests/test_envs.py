"""Python environments as execution targets: created from pinned requirements (pip, from the registry), listed,
health-checked, removed; a job runs in one, isolated from the app's own packages."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLES


def cli(env_root: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgestudio", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env=dict(os.environ, EDGESTUDIO_ENVS=str(env_root)))


@pytest.fixture(scope="module")
def ort_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An environment like a small edge device's: numpy and onnxruntime only (the versions installed here)."""
    root = tmp_path_factory.mktemp("envs")
    reqs = [f"onnxruntime=={importlib.metadata.version('onnxruntime')}", f"numpy=={importlib.metadata.version('numpy')}"]
    r = cli(root, "envs", "create", "ortonly", *reqs, "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["healthy"] and info["requirements"] == reqs
    return root


def test_a_job_runs_in_the_environment(ort_env: Path) -> None:
    r = cli(ort_env, "bench", str(SAMPLES / "digits_cnn.onnx"), "--env", "ortonly", "--iterations", "30", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["runtime"] == "onnxruntime" and d["iterations"] == 30 and d["latency_ms"]["p50"] > 0
    assert d["executed_by"]["prefix"] == str(ort_env / "ortonly")  # measured by the environment's interpreter


def test_the_environment_is_isolated_from_the_app(ort_env: Path) -> None:
    """TensorFlow and LiteRT are installed in the app's venv, not in the environment: a TFLite job fails there."""
    r = cli(ort_env, "bench", str(SAMPLES / "digits_cnn.tflite"), "--env", "ortonly", "--iterations", "5")
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "digits_cnn.tflite" in r.stderr and "not installed" in r.stderr


def test_list_check_remove_and_errors(ort_env: Path, tmp_path: Path) -> None:
    listed = json.loads(cli(ort_env, "envs", "--json").stdout)
    assert [e["name"] for e in listed] == ["ortonly"] and listed[0]["size_bytes"] > 10_000_000
    checked = cli(ort_env, "envs", "check", "ortonly", "--json")
    assert checked.returncode == 0 and json.loads(checked.stdout)["healthy"] is True
    missing = cli(ort_env, "bench", str(SAMPLES / "digits_cnn.onnx"), "--env", "nope")
    assert missing.returncode == 1 and "no environment named 'nope'" in missing.stderr
    bad = cli(tmp_path, "envs", "create", "x", "edgestudio-no-such-package==0.0.1", timeout=300)
    assert bad.returncode == 1 and "pip could not install" in bad.stderr and bad.stderr.count("\n") == 1
    assert json.loads(cli(tmp_path, "envs", "--json").stdout) == []  # nothing half-made is left
    assert cli(tmp_path, "envs", "create", "../evil").returncode == 2


@pytest.mark.heavy
def test_two_creations_of_one_environment_take_turns(tmp_path: Path) -> None:
    """Two processes creating the same environment at once (two studio windows, two pytest workers): the second
    waits for the first, then says it exists; the environment is whole and healthy (before, the second removed the
    folder the first was installing into)."""
    numpy = f"numpy=={importlib.metadata.version('numpy')}"
    cmd = [sys.executable, "-m", "edgestudio", "envs", "create", "twice", numpy]
    env = dict(os.environ, EDGESTUDIO_ENVS=str(tmp_path))
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
             for _ in range(2)]
    results = sorted((p.wait(timeout=600), p.stderr.read()) for p in procs)  # type: ignore[union-attr]
    assert results[0][0] == 0 and results[1][0] == 1 and "exists" in results[1][1], results
    checked = cli(tmp_path, "envs", "check", "twice", "--json")
    assert checked.returncode == 0 and json.loads(checked.stdout)["healthy"] is True


def test_protocol_is_versioned() -> None:
    from edgestudio.jobs.messages import JobMessage, ProtocolError, RunRequest, decode, encode

    req = decode(encode(RunRequest("j1", {"kind": "inspect"})))
    assert isinstance(req, RunRequest) and req.spec == {"kind": "inspect"}
    assert isinstance(decode(encode(JobMessage("progress", "j1", {"fraction": 0.5, "message": "half"}))), JobMessage)
    # messages are typed: each type's data keys, no fewer, no others (a misspelt key is refused where it is made)
    with pytest.raises(ValueError, match="a progress message lacks message; does not take fraktion"):
        JobMessage("progress", "j1", {"fraction": 0.5, "fraktion": 1})
    with pytest.raises(ProtocolError, match="malformed done message"):
        decode('{"v": 1, "type": "done", "job_id": "x", "data": {"results": {}}}')
    with pytest.raises(ProtocolError, match="unknown message type 'dne'"):
        decode('{"v": 1, "type": "dne", "job_id": "x", "data": {}}')
    with pytest.raises(ProtocolError, match="different EdgeStudio versions"):
        decode('{"v": 2, "type": "run", "job_id": "x", "spec": {}}')
    with pytest.raises(ProtocolError, match="not a protocol message"):
        decode("hello")


def test_convert_and_optimize_run_in_the_environment_and_land_in_a_workspace(ort_env: Path, tmp_path: Path) -> None:
    """--env works for every job command, with --workspace: the job runs in the environment's interpreter, its
    artifacts are published and recorded with their lineage like a local job's."""
    ws = tmp_path / "ws"
    conv = cli(ort_env, "convert", str(SAMPLES / "digits_cnn.onnx"), "--to", "ort", "--env", "env:ortonly",
               "--workspace", str(ws), "--json")
    assert conv.returncode == 0, conv.stderr
    d = json.loads(conv.stdout)
    assert d["executed_by"]["prefix"] == str(ort_env / "ortonly") and d["verdict"] == "passed"
    assert Path(d["output"]).is_file() and Path(d["output"]).parent.parent == ws / "artifacts"
    opt = cli(ort_env, "optimize", str(SAMPLES / "digits_cnn.onnx"), "--method", "graph-opt", "--runtime",
              "onnxruntime", "--target", "ortonly", "--workspace", str(ws), "--json")
    assert opt.returncode == 0, opt.stderr
    assert json.loads(opt.stdout)["executed_by"]["prefix"] == str(ort_env / "ortonly")
    tree = json.loads(cli(ort_env, "models", "--workspace", str(ws), "--json").stdout)
    root = next(m["id"] for m in tree if m["parent_id"] is None)
    assert sorted((Path(m["path"]).suffix, m["made_by"]) for m in tree if m["parent_id"] == root) == [
        (".onnx", "optimize"), (".ort", "convert")]
    assert not list((ws / "artifacts").rglob(".*.partial-*"))  # staging published and removed


def test_targets_lists_this_python_and_each_environment(ort_env: Path) -> None:
    r = cli(ort_env, "targets", "--json")
    assert r.returncode == 0, r.stderr
    targets = {t["name"]: t for t in json.loads(r.stdout)}
    assert targets["local"]["python"] == sys.executable
    assert targets["env:ortonly"]["kind"] == "env" and targets["env:ortonly"]["detail"] == "healthy"
    bad = cli(ort_env, "inspect", str(SAMPLES / "digits_cnn.onnx"), "--target", "cluster:x")
    assert bad.returncode == 2 and "unknown execution target 'cluster:x'" in bad.stderr and "env:ortonly" in bad.stderr
    bad = cli(ort_env, "inspect", str(SAMPLES / "digits_cnn.onnx"), "--target", "agent:nosuchdevice")
    assert bad.returncode == 2 and "no device named 'nosuchdevice'" in bad.stderr


def test_the_environment_executor_streams_events_and_cancels(ort_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same Executor interface as the local pool: queued/started/samples/finished events, cancel of a running
    and of a queued job, the target's description."""
    import threading

    from edgestudio.core.jobs import JobKind, JobSpec, JobStatus
    from edgestudio.execution.targets import executor_for

    monkeypatch.setenv("EDGESTUDIO_ENVS", str(ort_env))
    events: list[tuple[str, str]] = []
    first_sample = threading.Event()
    with executor_for("env:ortonly") as ex:
        assert ex.describe().name == "env:ortonly"

        def on_event(e) -> None:  # noqa: ANN001
            events.append((e.job_id, e.type))
            if e.type == "samples":
                first_sample.set()

        ex.subscribe(on_event)
        spec = JobSpec(JobKind.BENCH, model=str(SAMPLES / "digits_cnn.onnx"), runtime="onnxruntime",
                       options={"duration_s": 60, "iterations": 10_000_000})
        long_job = ex.submit(spec)
        queued = ex.submit(JobSpec(JobKind.INSPECT, model=str(SAMPLES / "digits_cnn.onnx")))
        assert first_sample.wait(60), events
        ex.cancel(queued)
        assert ex.get(queued).status is JobStatus.CANCELLED
        ex.cancel(long_job)
        rec = ex.wait(long_job, 30)
        assert rec.status is JobStatus.CANCELLED
        kinds = [t for j, t in events if j == long_job]
        assert kinds[:2] == ["queued", "started"] and "samples" in kinds and kinds[-1] == "finished"
        ok = ex.wait(ex.submit(JobSpec(JobKind.BENCH, model=str(SAMPLES / "digits_cnn.onnx"), runtime="onnxruntime",
                                       options={"iterations": 5})), 60)
        assert ok.status is JobStatus.SUCCEEDED and ok.result["env"] == "ortonly"
