"""One PyTorch model, three edge paths, paired: ExecuTorch (XNNPACK .pte, FP32 and PT2E INT8), ONNX Runtime (the
ONNX export) and LiteRT (LiteRT Torch's .tflite), every variant made by EdgeStudio from the same ``.pt2`` (each hop
checked against PyTorch), loaded once (ExecuTorch's in its environment's process) and timed in alternating blocks.

    EDGESTUDIO_ENVS=.cache/envs python benchmarks/bench_pytorch_paths.py [--size 96] [--blocks 6] [--block 40]

The model is a MobileNet-like CNN (depthwise-separable blocks, random weights: latency does not depend on them;
BatchNorm statistics set on random batches, so the output moves with the input and parity can judge) at
1x3xSIZExSIZE, exported with ``torch.export`` in the ``torch`` environment. Needs the ``torch``, ``executorch`` and
``litert-torch`` environments (``edgestudio envs create NAME``); says which are missing and exits 0 otherwise.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("EDGESTUDIO_ENVS", str(ROOT / ".cache" / "envs"))

from benchmarks.common import cli, print_paired  # noqa: E402

MAKE = """
import sys, torch
from torch import nn

def block(cin, cout, stride):
    return nn.Sequential(nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU6(),
                         nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU6())

torch.manual_seed(0)
net = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6(), block(16, 32, 1),
                    block(32, 64, 2), block(64, 64, 1), block(64, 128, 2), block(128, 128, 1), block(128, 256, 2),
                    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, 100))
size = int(sys.argv[2])
with torch.no_grad():  # BatchNorm statistics from random batches: otherwise the output hardly depends on the input
    for _ in range(8):
        net(torch.randn(16, 3, size, size))
net.eval()
torch.export.save(torch.export.export(net, (torch.randn(1, 3, size, size),)), sys.argv[1])
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--blocks", type=int, default=6)
    ap.add_argument("--block", type=int, default=40)
    args = ap.parse_args()
    from edgestudio.core.catalog import envs_root
    from edgestudio.core.machine import default_threads, machine_facts
    from edgestudio.execution.block_server import paired_benchmark

    missing = [e for e in ("torch", "executorch", "litert-torch") if not (envs_root() / e / "env.json").is_file()]
    if missing:
        print(f"needs the {', '.join(missing)} environment(s) under {envs_root()} "
              f"(edgestudio envs create {' / '.join(missing)}): nothing measured")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-pytorch-") as tmp:
        folder = Path(tmp)
        pt2 = folder / "net.pt2"
        r = subprocess.run([str(envs_root() / "torch" / "bin" / "python"), "-c", MAKE, str(pt2), str(args.size)],
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise SystemExit(f"could not export the model: {r.stderr[-2000:]}")
        calib = folder / "calib.npz"
        import numpy as np

        np.savez(calib, x=np.random.default_rng(0).standard_normal((16, 3, args.size, args.size)).astype(np.float32))
        made = {}
        for label, to, extra in (("onnx", "onnx", []), ("pte", "executorch", []), ("tflite", "tflite", [])):
            out = folder / f"net.{label}"
            d = cli("convert", str(pt2), "--to", to, "-o", str(out), *extra)
            step = d["steps"][-1]
            print(f"{to:<11} {' -> '.join(s['converter'] for s in d['steps']):<28} {d['verdict']:<12} "
                  f"{(step.get('parity') or {}).get('summary', '')[:70]}")
            made[label] = out
        int8 = folder / "net_int8.pte"
        d = cli("optimize", str(pt2), "--runtime", "executorch", "--method", "int8-static",
                "--calibration", str(calib), "-o", str(int8), "--keep-lossy")
        drift = (d.get("details") or {}).get("drift") or {}
        print(f"executorch INT8 (PT2E, XNNPACK quantizer): drift {drift.get('verdict')} "
              f"(worst cosine {(drift.get('worst') or {}).get('cosine')})")
        variants = [{"model": str(made["onnx"]), "runtime": "onnxruntime", "label": "ORT FP32 (ONNX export)"},
                    {"model": str(made["tflite"]), "runtime": "litert", "label": "LiteRT FP32 (LiteRT Torch)"},
                    {"model": str(made["pte"]), "runtime": "executorch", "label": "ExecuTorch FP32 (XNNPACK)"},
                    {"model": str(int8), "runtime": "executorch", "label": "ExecuTorch INT8 (XNNPACK)"}]
        m = machine_facts()
        print(f"paired: {args.blocks} blocks of {args.block} runs, {default_threads()} threads, 1x3x{args.size}x"
              f"{args.size}, on {m.get('cpu')}")
        result = paired_benchmark(variants, blocks=args.blocks, block=args.block)
        print_paired(result, width=28)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
