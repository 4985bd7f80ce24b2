"""Time from submit to the first progress event, for a cold worker (spawned for the job) and a warm one
(kept alive with its imports), with a trivial job and with jobs that need a heavy runtime."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgestudio.core.jobs import JobEvent, JobKind, JobSpec  # noqa: E402
from edgestudio.workers.pool import WorkerPool  # noqa: E402

SAMPLE = ROOT / "resources" / "samples"


def first_event_ms(pool: WorkerPool, spec: JobSpec) -> tuple[float, float]:
    """(submit -> first progress event, submit -> job finished) in ms."""
    got = threading.Event()
    job_id: list[str] = []

    def on_event(e: JobEvent) -> None:
        if e.type == "progress" and job_id and e.job_id == job_id[0]:
            got.set()

    unsubscribe = pool.subscribe(on_event)
    t0 = time.perf_counter()
    job_id.append(pool.submit(spec))
    got.wait(120)
    first = (time.perf_counter() - t0) * 1e3
    pool.wait(job_id[0], 300)
    done = (time.perf_counter() - t0) * 1e3
    unsubscribe()
    return first, done


def main() -> int:
    trivial = JobSpec(JobKind.INSPECT, model=str(SAMPLE / "digits_cnn.onnx"))
    jobs = {
        "inspect ONNX (onnx)": trivial,
        "bench ONNX on openvino": JobSpec(JobKind.BENCH, model=str(SAMPLE / "digits_cnn.onnx"), runtime="openvino",
                                          options={"iterations": 10}),
        "inspect Keras (tensorflow)": JobSpec(JobKind.INSPECT, model=str(SAMPLE / "digits_cnn.keras")),
    }
    print("submit -> first progress event (and -> job done), ms")
    print(f"{'job':<32}{'cold first':>11}{'cold done':>11}{'warm first':>12}{'warm done':>11}")
    for name, spec in jobs.items():
        with WorkerPool(max_workers=1) as pool:
            cold = first_event_ms(pool, spec)
            warm = min(first_event_ms(pool, spec) for _ in range(3))
        print(f"{name:<32}{cold[0]:>11.1f}{cold[1]:>11.1f}{warm[0]:>12.1f}{warm[1]:>11.1f}")
    with WorkerPool(max_workers=1, warm_imports=("onnxruntime", "openvino")) as pool:
        first_event_ms(pool, trivial)  # the worker is up and has its imports
        pre = first_event_ms(pool, jobs["bench ONNX on openvino"])
    print(f"{'bench openvino, pre-imported':<32}{'':>11}{'':>11}{pre[0]:>12.1f}{pre[1]:>11.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
