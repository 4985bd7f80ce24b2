"""A stand-in for the app, killed with SIGKILL by test_workspace: finishes one job, then hangs in another."""

from __future__ import annotations

import sys
import time

from edgestudio.core.jobs import JobKind, JobSpec, JobStatus
from edgestudio.core.workspace import Workspace
from edgestudio.app.manager import JobManager


def main(root: str, model: str) -> None:
    ws = Workspace(root)
    mgr = JobManager(ws, max_workers=2)
    spec = lambda sleep: JobSpec(JobKind.CALL, model=model, options={  # noqa: E731
        "function": "tests.helpers.jobs:copy_model", "kwargs": {"src": model, "name": "copy.onnx", "then_sleep": sleep}})
    done = mgr.submit(spec(0.0), output_name="copy.onnx")
    assert mgr.wait(done, 60).status is JobStatus.SUCCEEDED
    bench = mgr.submit(JobSpec(JobKind.BENCH, model=model, options={"iterations": 20}))
    assert mgr.wait(bench, 60).status is JobStatus.SUCCEEDED
    hanging = mgr.submit(spec(600.0), output_name="copy.onnx")
    while mgr.get(hanging).progress < 0.5:
        time.sleep(0.02)
    print(f"READY {done} {bench} {hanging}", flush=True)
    time.sleep(600)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
