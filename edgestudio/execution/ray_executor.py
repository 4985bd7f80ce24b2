"""Ray as an execution target: the same typed job requests, run as Ray tasks on a local or remote Ray cluster
(``ray`` is an optional extra: ``pip install edgestudio[ray]``).

Each job is one task running EdgeStudio's job runner in a Ray worker process (a crash fails the task, not the
driver). A benchmark asks for every CPU of a node (``num_cpus`` = the node's CPUs), so Ray never places two
benchmarks, or a benchmark and anything else, on one machine at the same time; other jobs ask for one CPU.
Results arrive as each task ends (the workspace records them then; the studio's comparison fills row by row).
While a task runs, its progress, log lines and live latency samples come back through a Ray queue (an actor that
takes no CPU, so it never competes with a benchmark for its node): the studio's live chart follows a Ray benchmark
as it follows a local one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from edgestudio.core.errors import UsageError
from edgestudio.core.jobs import JobKind, JobRecord, JobSpec, JobStatus
from edgestudio.core.progress import CancelToken
from edgestudio.execution.base import TargetInfo, ThreadedExecutor
from edgestudio.jobs.messages import JobMessage


def _run_task(spec_dict: dict[str, Any], job_id: str, live: Any = None) -> dict[str, Any]:
    """In a Ray worker: run one job with EdgeStudio's one runner; its messages go to the ``live`` queue as they
    happen (dropped, never waited for, when the queue is full), and its log lines also come back with the result."""
    import platform

    from edgestudio.execution.placement import run_placed
    from edgestudio.jobs.runner import run_one

    lines: list[str] = []

    def send(msg: Any) -> None:
        if msg.type == "log":
            lines.append(str(msg.data.get("line", "")))
        if live is not None and msg.type in ("progress", "log", "samples"):
            # fire and forget: a task that waits on Ray (queue.put_nowait does a ray.get) hands its CPUs back
            # while it waits, and Ray would place another benchmark on its node meanwhile
            live.actor.put_nowait.remote((msg.type, msg.data))

    node: dict[str, Any] = {"node": platform.node(), "pid": os.getpid()}
    try:
        import ray

        node["ray_node"] = ray.get_runtime_context().get_node_id()  # one host may run several Ray nodes
    except Exception:  # noqa: BLE001 - outside a Ray worker (tests call this directly)
        pass
    started = time.time()
    outcome = run_one(job_id, spec_dict, send, CancelToken(), None, run=run_placed,
                      tag=lambda r: {**r, "executed_on": {**node, "started": started, "finished": time.time()}})
    msg = outcome.message
    if msg.type == "done":
        return {"status": "succeeded", "result": msg.data["result"], "log": lines[-50:]}
    if msg.type == "cancelled":
        return {"status": "cancelled", "log": lines[-50:]}
    return {"status": "failed", "error": msg.data.get("error", "failed"), "log": lines[-50:]}


class RayExecutor(ThreadedExecutor):
    """The ``ray`` execution target (``ray:ADDRESS`` for a running cluster; plain ``ray`` starts a local one)."""

    def __init__(self, address: str | None = None, max_workers: int = 64, num_cpus: int | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise UsageError(None, "Ray is not installed: pip install 'edgestudio[ray]' (or ray)") from None
        self.address = address
        self._owns_ray = not ray.is_initialized()  # started here: stopped with this executor
        if self._owns_ray:
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "configure_logging": False}
            if address:
                kwargs["address"] = address
            else:
                kwargs["num_cpus"] = num_cpus or os.cpu_count()
            ray.init(**kwargs)
        self._ray = ray
        self._task = ray.remote(max_retries=0)(_run_task)
        super().__init__("ray" + (f":{address}" if address else ""), max_workers)

    def describe(self) -> TargetInfo:
        res = self._ray.cluster_resources()
        nodes = [n for n in self._ray.nodes() if n.get("Alive")]
        return TargetInfo(self.target_name, "ray", "", f"Ray cluster ({len(nodes)} node(s), "
                          f"{res.get('CPU', 0):g} CPUs)", True, "connected", {"resources": res})

    def _node_cpus(self) -> float:
        return max((n["Resources"].get("CPU", 1.0) for n in self._ray.nodes() if n.get("Alive")), default=1.0)

    def _execute(self, rec: JobRecord, on_message: Callable[[JobMessage], None], token: CancelToken) -> JobRecord:
        # a benchmark takes a whole node: nothing else runs beside it to disturb its timings
        alone = rec.spec.exclusive if rec.spec.exclusive is not None else rec.spec.kind is JobKind.BENCH
        cpus = self._node_cpus() if alone else 1
        spec = JobSpec.from_dict(rec.spec.to_dict())
        spec.output = None  # artifacts stay on the node; sweeps measure
        from ray.util.queue import Queue

        live = Queue(maxsize=10_000, actor_options={"num_cpus": 0})
        # SPREAD: benchmarks go to the idle nodes first (the default packs the driver's node and queues there)
        ref = self._task.options(num_cpus=cpus, scheduling_strategy="SPREAD" if alone else "DEFAULT").remote(
            spec.to_dict(), rec.id, live)
        on_message(JobMessage("progress", rec.id, {"fraction": 0.0, "message": f"submitted to Ray ({cpus:g} CPUs)"}))
        out = JobRecord(id=rec.id, spec=rec.spec, status=JobStatus.RUNNING, started_at=time.time())
        relayed_logs = 0

        def drain() -> tuple[int, int]:
            """(messages relayed, of which log lines)."""
            try:
                batch = live.get_nowait_batch(live.qsize())
            except Exception:  # noqa: BLE001 - empty, or the queue's actor is gone
                return 0, 0
            for kind, data in batch:
                on_message(JobMessage(kind, rec.id, data))
            return len(batch), sum(kind == "log" for kind, _ in batch)

        try:
            while True:
                ready, _ = self._ray.wait([ref], timeout=0.2)
                relayed_logs += drain()[1]
                if ready:
                    break
                if token.cancelled:
                    self._ray.cancel(ref, force=True)
                    out.status, out.finished_at = JobStatus.CANCELLED, time.time()
                    return out
            # the task's last puts were sent, not waited for: they may reach the queue just after it ended
            quiet = 0
            for _ in range(40):
                n, logs = drain()
                relayed_logs += logs
                quiet = quiet + 1 if n == 0 else 0
                if quiet >= 3:
                    break
                time.sleep(0.05)
        finally:
            live.shutdown()
        try:
            answer = self._ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - a worker that died: the task's error, one line
            out.status, out.error = JobStatus.FAILED, f"the Ray task failed: {type(exc).__name__}: {str(exc)[:200]}"
            out.finished_at = time.time()
            return out
        if not relayed_logs:  # the live queue lost them: the result carries the last ones
            for line in answer.get("log", []):
                on_message(JobMessage("log", rec.id, {"line": line}))
        out.status = JobStatus(answer["status"])
        out.result, out.error = answer.get("result"), answer.get("error")
        out.finished_at = time.time()
        return out

    def _tag(self, result: dict[str, Any]) -> dict[str, Any]:
        return {**result, "executor": self.target_name}

    def shutdown(self, wait: bool = True) -> None:
        super().shutdown(wait)
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()
