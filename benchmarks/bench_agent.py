"""Remote (a device agent on loopback) vs local p50 for the same model, paired: alternating blocks, each a bench of
``--block`` iterations here and then the same on the agent, so the machine's drift hits both alike. The device's
figure is what the agent measured on the device (the network is not in it); the transfer of the model (first
upload, then the cache) and each job's round trip are reported separately.

    python benchmarks/bench_agent.py [--blocks 6] [--block 200] [--threads 2]

The agent runs in the ``device`` environment when it exists (numpy + onnxruntime + ai-edge-litert + websockets,
as a Pi would have; the tests create it in .cache/envs), else in this Python.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import mobilenet_onnx  # noqa: E402

SAMPLES = ROOT / "resources" / "samples"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=int, default=6)
    ap.add_argument("--block", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    from edgestudio.bench.latency import BenchConfig, run_benchmark
    from edgestudio.core.jobs import JobKind, JobSpec, JobStatus
    from edgestudio.execution.envs import _package_path
    from edgestudio.execution.remote import AgentClient, DeviceEntry

    device_python = ROOT / ".cache" / "envs" / "device" / "bin" / "python"
    python = str(device_python) if device_python.exists() else sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env.update(PYTHONPATH=str(_package_path()), PYTHONNOUSERSITE="1")
        agent = subprocess.Popen([python, "-m", "edgestudio.agent", "--port", "0", "--dir", f"{tmp}/agent"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        assert agent.stdout is not None
        port = int(agent.stdout.readline().split("127.0.0.1:")[1].split()[0])
        token = agent.stdout.readline().rsplit(" ", 1)[1].strip()
        client = AgentClient(DeviceEntry("bench", "127.0.0.1", port, token))
        try:
            models = {"digits CNN": SAMPLES / "digits_cnn.onnx", "MobileNetV2 224": mobilenet_onnx(Path(tmp))}
            print(f"agent: {python}; paired, {args.blocks} alternating blocks of {args.block}, {args.threads} threads")
            print(f"{'model':<18}{'local p50 ms':>14}{'device p50 ms':>15}{'device/local':>14}{'first upload s':>16}"
                  f"{'job round trip s':>18}")
            for name, path in models.items():
                local, remote, trips, uploads = [], [], [], []
                for b in range(args.blocks):
                    res = run_benchmark(path, BenchConfig(runtime="onnxruntime", iterations=args.block, warmup=20,
                                                          threads=args.threads))
                    local.append(res.latency_ms.p50)
                    t0 = time.perf_counter()
                    rec = client.run(JobSpec(JobKind.BENCH, model=str(path), runtime="onnxruntime", device="CPU",
                                             options={"iterations": args.block, "warmup": 20, "threads": args.threads,
                                                      "keep_samples": False}))
                    trips.append(time.perf_counter() - t0)
                    assert rec.status is JobStatus.SUCCEEDED, rec.error
                    assert rec.result is not None
                    remote.append(rec.result["latency_ms"]["p50"])
                    uploads.append(rec.result["agent"]["transfer_s"])
                lp, rp = statistics.median(local), statistics.median(remote)
                print(f"{name:<18}{lp:>14.3f}{rp:>15.3f}{rp / lp:>14.2f}{uploads[0]:>16.3f}"
                      f"{statistics.median(trips[1:] or trips):>18.2f}")
                print(f"{'':<18}  per block local {', '.join(f'{x:.3f}' for x in local)}; device "
                      f"{', '.join(f'{x:.3f}' for x in remote)}")
        finally:
            agent.kill()
            agent.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
