"""Time from submit to the first progress event, for a cold worker (spawned for the job) and a warm one
(kept alive with its imports), with a trivial job and with jobs that need a heavy runtime; then the same for
an environment executor (``env:NAME``: each job starts the environment's own interpreter).

    python benchmarks/bench_pool_latency.py [--env NAME]   # default: a temporary numpy+onnxruntime environment
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgestudio.core.jobs import JobEvent, JobKind, JobSpec  # noqa: E402
from edgestudio.execution.base import Executor  # noqa: E402
from edgestudio.execution.pool import WorkerPool  # noqa: E402

SAMPLE = ROOT / "resources" / "samples"


def first_event_ms(pool: Executor, spec: JobSpec) -> tuple[float, float]:
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
    env_latency(sys.argv[sys.argv.index("--env") + 1] if "--env" in sys.argv else None)
    return 0


def env_latency(name: str | None) -> None:
    """The same on an environment executor. Without a name, a temporary environment with this machine's numpy
    and onnxruntime is created first (about 15 s from the package registry's cache)."""
    import importlib.metadata
    import os
    import tempfile

    from edgestudio.execution.envs import EnvExecutor, create_env

    tmp = None
    if name is None:
        tmp = tempfile.TemporaryDirectory()
        os.environ["EDGESTUDIO_ENVS"] = tmp.name
        name = "bench-ort"
        t0 = time.perf_counter()
        create_env(name, [f"onnxruntime=={importlib.metadata.version('onnxruntime')}",
                          f"numpy=={importlib.metadata.version('numpy')}"])
        print(f"\nenvironment {name} created in {time.perf_counter() - t0:.1f} s")
    spec = JobSpec(JobKind.BENCH, model=str(SAMPLE / "digits_cnn.onnx"), runtime="onnxruntime",
                   options={"iterations": 10})
    with EnvExecutor(name) as ex:
        runs = [first_event_ms(ex, spec) for _ in range(4)]
    print(f"{'bench ONNX on ORT, env:' + name:<32}{runs[0][0]:>11.1f}{runs[0][1]:>11.1f}"
          f"{min(r[0] for r in runs[1:]):>12.1f}{min(r[1] for r in runs[1:]):>11.1f}")
    print("(an environment job starts the environment's interpreter each time: 'warm' is the best of 3 more runs,\n"
          " with the OS's file cache warm; there is no resident worker in an environment yet)")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    raise SystemExit(main())
