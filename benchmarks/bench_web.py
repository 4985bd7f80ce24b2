"""Native ONNX Runtime vs ONNX Runtime Web (wasm, in headless Chromium) per model, paired: both sessions are
loaded once and timed in alternating blocks, so the machine's drift hits both alike.

    python benchmarks/bench_web.py [--threads 2] [--blocks 6] [--block 50]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import mobilenet_onnx  # noqa: E402

SAMPLES = ROOT / "resources" / "samples"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--blocks", type=int, default=6)
    ap.add_argument("--block", type=int, default=50)
    args = ap.parse_args()
    from edgestudio.backends.runtimes import get_runtime
    from edgestudio.backends.runtimes.base import timed_loop
    from edgestudio.core.inputspec import make_feeds

    with tempfile.TemporaryDirectory() as tmp:
        models = {"digits CNN": SAMPLES / "digits_cnn.onnx", "MobileNetV2 224": mobilenet_onnx(Path(tmp))}
        print(f"paired, {args.blocks} alternating blocks of {args.block}, {args.threads} threads")
        print(f"{'model':<18}{'native p50 ms':>15}{'web p50 ms':>12}{'web/native':>12}  browser")
        for name, path in models.items():
            native = get_runtime("onnxruntime").load(path, threads=args.threads)
            web = get_runtime("ort-web").load(path, threads=args.threads)
            feeds = make_feeds(native.inputs, count=1).samples[0]
            call = native.bind(feeds)
            nat, webs = [], []
            try:
                web.call(feeds, iterations=5, warmup=2)  # type: ignore[attr-defined]  # the browser is up
                for _ in range(5):
                    call()
                for _ in range(args.blocks):
                    nat.extend(timed_loop(call, args.block).tolist())
                    webs.extend(web.call(feeds, iterations=args.block, warmup=2)["samples"])  # type: ignore[attr-defined]
                facts = web.facts  # type: ignore[attr-defined]
            finally:
                web.close()  # type: ignore[attr-defined]
            n, w = float(np.median(nat)), float(np.median(webs))
            print(f"{name:<18}{n:>15.3f}{w:>12.3f}{w / n:>11.1f}x  {facts.get('browser', '?').split(' built')[0]}, "
                  f"{facts.get('threads')} wasm threads, crossOriginIsolated {facts.get('crossOriginIsolated')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
