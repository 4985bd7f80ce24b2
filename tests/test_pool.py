"""The worker pool, for real: spawned processes that crash, get killed, run out of memory or time."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from edgestudio.core.jobs import JobEvent, JobKind, JobSpec, JobStatus
from edgestudio.execution.pool import WorkerPool
from tests.conftest import SAMPLES


def call(fn: str, **kwargs) -> JobSpec:  # type: ignore[no-untyped-def]
    opts = kwargs.pop("opts", {})
    return JobSpec(JobKind.CALL, options={"function": f"tests.helpers.jobs:{fn}", "kwargs": opts}, **kwargs)


@pytest.fixture
def pool():  # type: ignore[no-untyped-def]
    p = WorkerPool(max_workers=2, grace_s=1.0)
    yield p
    p.shutdown()


class Recorder:
    def __init__(self) -> None:
        self.events: list[JobEvent] = []
        self.lock = threading.Lock()

    def __call__(self, e: JobEvent) -> None:
        with self.lock:
            self.events.append(e)

    def types(self, job_id: str) -> list[str]:
        with self.lock:
            return [e.type for e in self.events if e.job_id == job_id]


def test_job_spec_roundtrips_json() -> None:
    spec = JobSpec(JobKind.BENCH, model="m.onnx", options={"iterations": 5}, runtime="openvino", device="CPU",
                   timeout_s=3.0)
    assert JobSpec.from_json(spec.to_json()) == spec
    assert spec.runs_alone and not JobSpec(JobKind.CONVERT).runs_alone


def test_runs_out_of_process_with_events(pool: WorkerPool) -> None:
    rec = Recorder()
    pool.subscribe(rec)
    job = pool.submit(call("echo", opts={"value": 42}))
    done = pool.wait(job, 60)
    assert done.status is JobStatus.SUCCEEDED and done.result["value"] == 42
    assert done.result["pid"] != os.getpid() and done.result["pid"] in pool.worker_pids()
    assert "echo says hi" in done.log
    types = rec.types(job)
    assert types[0] == "queued" and types[1] == "started" and "progress" in types and types[-1] == "finished"
    assert pool.wait(pool.submit(call("priority")), 60).result["main"] == os.nice(0)  # the default: not niced


def test_workers_run_at_lower_priority_when_asked() -> None:
    """The studio's workers run niced, threads included, so a busy job never starves the GUI thread."""
    base = os.nice(0)
    low = WorkerPool(max_workers=1, nice=7)
    try:
        done = low.wait(low.submit(call("priority")), 60)
        assert done.status is JobStatus.SUCCEEDED, done.error
        assert done.result == {"main": min(19, base + 7), "thread": min(19, base + 7)}
    finally:
        low.shutdown()


def test_failure_is_reported_and_pool_goes_on(pool: WorkerPool) -> None:
    bad = pool.submit(call("fail"))
    r = pool.wait(bad, 60)
    assert r.status is JobStatus.FAILED and "ValueError: the job could not do it" in r.error
    assert any("Traceback" in line or "raise ValueError" in line for line in r.log)
    assert pool.wait(pool.submit(call("echo")), 60).status is JobStatus.SUCCEEDED


@pytest.mark.parametrize("fn,cause", [("segfault", "SIGSEGV"), ("sigkill_self", "SIGKILL")])
def test_crashing_worker_fails_job_and_is_replaced(pool: WorkerPool, fn: str, cause: str) -> None:
    first = pool.wait(pool.submit(call("echo")), 60)
    crashed = pool.wait(pool.submit(call(fn)), 60)
    assert crashed.status is JobStatus.FAILED
    assert cause in crashed.error and "crashed" in crashed.error
    if fn == "segfault":
        assert "about to crash" in crashed.error  # the last log line travels with the cause
    after = pool.wait(pool.submit(call("echo")), 60)
    assert after.status is JobStatus.SUCCEEDED
    assert first.result["pid"] != after.result["pid"]  # the crashed worker was replaced


def test_memory_limit_kills_runaway_job(pool: WorkerPool) -> None:
    r = pool.wait(pool.submit(call("eat_memory", memory_limit_mb=400)), 120)
    assert r.status is JobStatus.FAILED and "out of memory" in r.error and "400 MB" in r.error
    assert pool.wait(pool.submit(call("echo")), 60).status is JobStatus.SUCCEEDED


def test_memory_error_is_reported(pool: WorkerPool) -> None:
    r = pool.wait(pool.submit(call("raise_memory_error")), 60)
    assert r.status is JobStatus.FAILED and "out of memory" in r.error


def test_timeout(pool: WorkerPool) -> None:
    t0 = time.monotonic()
    r = pool.wait(pool.submit(call("sleep", opts={"seconds": 60, "cooperative": False}, timeout_s=1.5)), 60)
    assert r.status is JobStatus.FAILED and "timed out after 1.5 s" in r.error
    assert time.monotonic() - t0 < 30


def test_cooperative_cancel(pool: WorkerPool) -> None:
    job = pool.submit(call("sleep", opts={"seconds": 60}))
    _wait_running(pool, job)
    pid_before = set(pool.worker_pids())
    pool.cancel(job)
    r = pool.wait(job, 30)
    assert r.status is JobStatus.CANCELLED and r.error is None
    assert set(pool.worker_pids()) & pid_before  # the worker survived: it stopped on its own


def test_uncooperative_cancel_kills_after_grace(pool: WorkerPool) -> None:
    job = pool.submit(call("sleep", opts={"seconds": 60, "cooperative": False}))
    _wait_running(pool, job)
    t0 = time.monotonic()
    pool.cancel(job)
    r = pool.wait(job, 30)
    assert r.status is JobStatus.CANCELLED and "grace period" in (r.error or "")
    assert time.monotonic() - t0 < 10
    assert pool.wait(pool.submit(call("echo")), 60).status is JobStatus.SUCCEEDED


def test_cancel_queued_job(pool: WorkerPool) -> None:
    blockers = [pool.submit(call("sleep", opts={"seconds": 2})) for _ in range(2)]
    queued = pool.submit(call("echo"))
    pool.cancel(queued)
    assert pool.get(queued).status is JobStatus.CANCELLED
    for b in blockers:
        assert pool.wait(b, 60).status is JobStatus.SUCCEEDED


def test_cancelled_job_leaves_no_partial_artifact(pool: WorkerPool, tmp_path: Path) -> None:
    out = tmp_path / "model.bin"
    job = pool.submit(call("write_artifact", opts={"name": "model.bin", "then_sleep": 60, "size": 10_000},
                           output=str(out)))
    _wait_running(pool, job, progress=0.5)
    assert any(p.name.startswith(".model.bin.partial-") for p in tmp_path.iterdir())
    pool.cancel(job)
    assert pool.wait(job, 30).status is JobStatus.CANCELLED
    assert list(tmp_path.iterdir()) == []


def test_artifact_is_moved_into_place_on_success(pool: WorkerPool, tmp_path: Path) -> None:
    out = tmp_path / "sub" / "model.bin"
    r = pool.wait(pool.submit(call("write_artifact", opts={"name": "model.bin", "size": 1234}, output=str(out))), 60)
    assert r.status is JobStatus.SUCCEEDED and r.result["output"] == str(out)
    assert out.stat().st_size == 1234 and [p.name for p in out.parent.iterdir()] == ["model.bin"]


def test_samples_stream_while_running(pool: WorkerPool) -> None:
    rec = Recorder()
    pool.subscribe(rec)
    job = pool.submit(call("stream", opts={"n": 400}))
    pool.wait(job, 60)
    batches = [e.data["samples"] for e in rec.events if e.job_id == job and e.type == "samples"]
    assert len(batches) > 1  # streamed in several batches, not one at the end
    assert [i for batch in batches for i, _ in batch] == list(range(400))


def test_benchmark_job_streams_latencies_and_runs_alone(pool: WorkerPool) -> None:
    rec = Recorder()
    pool.subscribe(rec)
    other = pool.submit(call("sleep", opts={"seconds": 1.0}))
    bench = pool.submit(JobSpec(JobKind.BENCH, model=str(SAMPLES / "digits_cnn.onnx"), runtime="onnxruntime",
                                options={"iterations": 300, "warmup": 5}))
    after = pool.submit(call("echo"))
    b = pool.wait(bench, 120)
    o, a = pool.wait(other, 60), pool.wait(after, 60)
    assert b.status is JobStatus.SUCCEEDED and b.result["iterations"] == 300
    streamed = [i for e in rec.events if e.job_id == bench and e.type == "samples" for i, _ in e.data["samples"]]
    assert streamed == list(range(300))
    # nothing else ran while the benchmark did
    assert b.started_at >= o.finished_at and a.started_at >= b.finished_at


def test_concurrency_uses_several_workers(pool: WorkerPool) -> None:
    jobs = [pool.submit(call("sleep", opts={"seconds": 1.0})) for _ in range(2)]
    recs = [pool.wait(j, 60) for j in jobs]
    assert recs[1].started_at < recs[0].finished_at  # both ran at once


def test_inspect_job_and_bad_model(pool: WorkerPool, tmp_path: Path) -> None:
    ok = pool.wait(pool.submit(JobSpec(JobKind.INSPECT, model=str(SAMPLES / "digits_cnn.tflite"))), 60)
    assert ok.status is JobStatus.SUCCEEDED and ok.result["format"] == "tflite"
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    r = pool.wait(pool.submit(JobSpec(JobKind.INSPECT, model=str(bad))), 60)
    assert r.status is JobStatus.FAILED and r.error.startswith(str(bad) + ": ") and "\n" not in r.error


def _wait_running(pool: WorkerPool, job: str, progress: float = 0.0, timeout: float = 60) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        r = pool.get(job)
        if r.status is JobStatus.RUNNING and r.progress >= progress and (progress or r.progress > 0):
            return
        time.sleep(0.02)
    raise AssertionError(f"job {job} did not start: {pool.get(job)}")


@pytest.mark.heavy
def test_quick_jobs_run_beside_a_long_one_not_behind_it() -> None:
    """One worker (two cores): an inspection and a small ONNX -> IR conversion do not wait behind a long job;
    a regular job still does, the extra worker exits once idle, and nothing runs beside a benchmark."""
    from edgestudio.conversion.planner import is_quick
    from edgestudio.core.formats import ModelFormat

    assert is_quick(ModelFormat.ONNX, ModelFormat.OPENVINO, model_bytes=1000)
    assert not is_quick(ModelFormat.ONNX, ModelFormat.OPENVINO, model_bytes=10 * 2**30)  # too big to be quick
    assert not is_quick(ModelFormat.ONNX, ModelFormat.TFLITE, model_bytes=1000)  # onnx2tf: never quick
    assert JobSpec(JobKind.INSPECT).is_quick and not JobSpec(JobKind.CONVERT).is_quick
    p = WorkerPool(max_workers=1, grace_s=1.0)
    try:
        long = p.submit(call("sleep", opts={"seconds": 8.0}))
        regular = p.submit(call("echo", opts={"value": 1}))
        waiting_bench = p.submit(JobSpec(JobKind.BENCH, model=str(SAMPLES / "digits_cnn.onnx"), runtime="onnxruntime",
                                         options={"iterations": 50, "warmup": 5}))
        inspect = p.submit(JobSpec(JobKind.INSPECT, model=str(SAMPLES / "digits_cnn.onnx")))
        quick_call = p.submit(call("echo", quick=True, opts={"value": 2}))
        i, q = p.wait(inspect, 60), p.wait(quick_call, 60)
        lg = p.wait(long, 60)
        r = p.wait(regular, 60)
        assert i.status is JobStatus.SUCCEEDED and q.status is JobStatus.SUCCEEDED
        assert i.finished_at < lg.finished_at and q.finished_at < lg.finished_at  # beside, not behind
        assert any("runs beside call" in line for line in i.log)
        assert r.started_at >= lg.finished_at  # a regular job still waits its turn
        wb = p.wait(waiting_bench, 60)  # the quick jobs passed a benchmark waiting in the queue, not its run
        assert wb.status is JobStatus.SUCCEEDED and wb.started_at >= max(r.finished_at, i.finished_at, q.finished_at)
        deadline = time.monotonic() + 10
        while len(p.worker_pids()) > 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(p.worker_pids()) == 1  # the extra worker went away once idle
        bench = p.submit(JobSpec(JobKind.BENCH, model=str(SAMPLES / "digits_cnn.onnx"), runtime="onnxruntime",
                                 options={"iterations": 2000, "warmup": 5}))
        while p.get(bench).status is JobStatus.QUEUED:
            time.sleep(0.05)
        beside_bench = p.wait(p.submit(JobSpec(JobKind.INSPECT, model=str(SAMPLES / "digits_cnn.onnx"))), 120)
        b = p.wait(bench, 120)
        assert b.status is JobStatus.SUCCEEDED and beside_bench.started_at >= b.finished_at  # timings undisturbed
    finally:
        p.shutdown()


def test_what_a_killed_worker_started_goes_with_it(pool: WorkerPool) -> None:
    """A process the job started (a browser writing its profile, a converter) is stopped with the worker killed for
    the job's timeout: orphaned, a browser went on writing into the worker's folder after it was removed, and an
    unmarked edgestudio-worker-* folder was left in /tmp on every test run."""
    import psutil

    job = pool.submit(call("temp_litter", opts={"seconds": 60, "writer": True}, timeout_s=3))
    r = pool.wait(job, 60)
    assert r.status is JobStatus.FAILED and "timed out" in (r.error or "")
    pid = int(next(x for x in r.log if x.startswith("writer: ")).split()[1])
    folder = Path(next(x for x in r.log if x.startswith("scratch: ")).split()[1])
    worker_folder = folder.parent
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    time.sleep(0.5)  # a writer still running would have made its folders again by now
    assert not worker_folder.exists(), list(worker_folder.rglob("*"))


def test_what_a_finished_job_left_running_goes_when_the_pool_stops() -> None:
    """A job that returned with a process still running (a browser session left open) does not outlive the pool:
    once the worker had exited, that browser went on writing its profile into the removed worker folder."""
    import psutil

    p = WorkerPool(max_workers=1, grace_s=1.0)
    try:
        r = p.wait(p.submit(call("temp_litter", opts={"seconds": 0, "writer": True})), 60)
        assert r.status is JobStatus.SUCCEEDED, r.error
    finally:
        p.shutdown()
    pid = int(next(x for x in r.log if x.startswith("writer: ")).split()[1])
    worker_folder = Path(next(x for x in r.log if x.startswith("scratch: ")).split()[1]).parent
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    time.sleep(0.5)  # a writer still running would have made its folders again by now
    assert not worker_folder.exists(), list(worker_folder.rglob("*"))


def test_a_killed_job_leaves_no_temporary_files(pool: WorkerPool, tmp_path: Path) -> None:
    """Libraries' scratch files (TensorFlow's autograph modules, a conversion's temporary folder) live in the
    worker's own temporary folder, removed when the worker ends: a job killed for its timeout leaves nothing in
    the system's temporary folder. A folder a killed app left (its mark names a dead process) is removed by the
    next pool; one of a live app is left alone."""
    import json
    import tempfile

    job = pool.submit(call("temp_litter", opts={"seconds": 60}, timeout_s=3))
    r = pool.wait(job, 60)
    assert r.status is JobStatus.FAILED and "timed out" in (r.error or "")
    line = next(x for x in r.log if x.startswith("scratch: "))
    folder, module = line.split()[1:3]
    assert not Path(tempfile.gettempdir(), Path(folder).name).exists()  # not in the system's temp folder...
    assert not Path(folder).exists() and not Path(module).exists()  # ...and gone with the worker
    from edgestudio.core.owners import OWNER_FILE
    from edgestudio.execution.pool import clean_dead_worker_folders

    dead = Path(tempfile.mkdtemp(prefix="edgestudio-worker-"))
    (dead / OWNER_FILE).write_text(json.dumps({"owner": "999999999:1.00"}))  # a process that does not exist
    alive = Path(tempfile.mkdtemp(prefix="edgestudio-worker-"))
    (alive / OWNER_FILE).write_text(json.dumps({"owner": f"{os.getpid()}:0"}))
    try:
        assert dead in clean_dead_worker_folders() and not dead.exists() and alive.exists()
    finally:
        import shutil

        shutil.rmtree(alive, ignore_errors=True)
