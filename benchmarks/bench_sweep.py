"""The same 24-configuration sweep on the local pool and on a local Ray cluster: the same rows and the same
accuracy (latencies differ by noise only), and how long each took.

    python benchmarks/bench_sweep.py

24 configurations: the digits CNN as ONNX (onnxruntime, openvino) and as TFLite (litert, openvino) x 3 thread counts
(1, 2, 3) x 2 iteration counts (50, 100), each with its accuracy on the digits test split.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "resources" / "samples"


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        rows = {}
        for iterations in (50, 100):
            path = Path(tmp) / f"sweep{iterations}.yaml"
            path.write_text(f"models: [{SAMPLES / 'digits_cnn.onnx'}, {SAMPLES / 'digits_cnn.tflite'}]\n"
                            "runtimes: [onnxruntime, openvino, litert]\nthreads: [1, 2, 3]\n"
                            f"iterations: {iterations}\ndataset: {SAMPLES / 'digits_test.npz'}\n")
            for executor in ("local", "ray"):
                t0 = time.perf_counter()
                r = subprocess.run([sys.executable, "-m", "edgestudio", "sweep", str(path), "--executor", executor,
                                    "--json"], capture_output=True, text=True, cwd=ROOT)
                wall = time.perf_counter() - t0
                if r.returncode != 0:
                    print(r.stderr)
                    return 1
                d = json.loads(r.stdout)
                rows.setdefault(executor, []).extend(
                    (Path(x["model"]).name, x["runtime"], x["threads"], iterations, x["accuracy"], x["p50_ms"])
                    for x in d["rows"])
                print(f"{executor:<6} {iterations:>4} iterations: {d['configs']} configs, {d['jobs']} jobs, "
                      f"{d['seconds']:.1f} s of jobs, {wall:.1f} s with start-up")
        key = lambda r: r[:4]  # noqa: E731
        local = {key(r): r for r in rows["local"]}
        ray = {key(r): r for r in rows["ray"]}
        same = set(local) == set(ray) and all(local[k][4] == ray[k][4] for k in local)
        print(f"{len(local)} configurations; same rows and accuracy on both: {same}")
        worst = max(abs(local[k][5] - ray[k][5]) / local[k][5] for k in local)
        print(f"largest p50 difference local vs Ray: {worst * 100:.0f} % (timing noise: different processes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
