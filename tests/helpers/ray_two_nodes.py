"""Run 4 benchmarks through RayExecutor on a two-node Ray cluster (two raylets on this host, 1 CPU each, as
``ray.cluster_utils.Cluster`` makes them) and print where and when each ran, as JSON."""

from __future__ import annotations

import json
import sys


def main(model: str) -> None:
    import ray
    from ray.cluster_utils import Cluster

    from edgestudio.core.jobs import JobKind, JobSpec
    from edgestudio.execution.ray_executor import RayExecutor

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ex = RayExecutor(address=cluster.address, max_workers=8)
    try:
        samples: dict[str, int] = {}
        ex.subscribe(lambda e: e.type == "samples" and samples.__setitem__(
            e.job_id, samples.get(e.job_id, 0) + len(e.data["samples"])))
        ids = [ex.submit(JobSpec(JobKind.BENCH, model=model, runtime="onnxruntime",
                                 options={"iterations": 1000, "warmup": 10})) for _ in range(4)]
        runs = []
        for i in ids:
            rec = ex.wait(i)
            on = (rec.result or {}).get("executed_on") or {}
            runs.append({"status": rec.status.value, "node": on.get("ray_node"), "started": on.get("started"),
                         "finished": on.get("finished"), "samples": samples.get(i, 0), "error": rec.error})
        print(json.dumps({"nodes": len([n for n in ray.nodes() if n["Alive"]]), "runs": runs}), flush=True)
    finally:
        ex.shutdown()
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
