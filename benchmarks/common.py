"""What the benchmark scripts share: the CLI called for its JSON, and the model they build where a bigger one than
the digits CNN is needed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "resources" / "samples"


def cli(*args: str) -> dict:  # type: ignore[type-arg]
    """``edgestudio ARGS --json`` in a process of its own; its answer, or exit naming the command and its error."""
    r = subprocess.run([sys.executable, "-m", "edgestudio", *args, "--json"], capture_output=True, text=True, cwd=ROOT)
    if r.returncode:
        raise SystemExit(f"edgestudio {' '.join(args)} failed: {r.stderr.strip()[-500:]}")
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def mobilenet_onnx(folder: Path) -> Path:
    """MobileNetV2 (Keras, weights=None, 224x224) converted to ONNX with the CLI (nothing is downloaded)."""
    return keras_app_onnx(folder, "MobileNetV2")


def keras_app_onnx(folder: Path, app: str) -> Path:
    """A ``keras.applications`` model (weights=None: nothing is downloaded) converted to ONNX with the CLI."""
    keras_path = folder / f"{app.lower()}.keras"
    subprocess.run([sys.executable, "-c", f"import keras; keras.applications.{app}(weights=None)"
                    f".save({str(keras_path)!r})"], check=True, capture_output=True)
    out = folder / f"{app.lower()}.onnx"
    subprocess.run([sys.executable, "-m", "edgestudio", "convert", str(keras_path), "--to", "onnx", "-o", str(out)],
                   check=True, capture_output=True, cwd=ROOT)
    return out


def print_paired(result: dict, width: int = 16) -> None:  # type: ignore[type-arg]
    """A paired round's variants, best first: rank, label, p50 and its confidence interval."""
    for v in sorted(result["variants"], key=lambda v: v.get("rank") or 99):
        if v.get("error"):
            print(f"  {v['label']:<{width}} error: {v['error']}")
            continue
        lo, hi = v["ci_ms"]
        print(f"  #{v['rank']} {v['label']:<{width}} p50 {v['p50_ms']:8.3f} ms  [{lo:.3f}, {hi:.3f}]"
              + ("  (tie with the one above)" if v.get("tied") else ""))
