"""Does auto-optimize pick what a careful hand sweep would? Auto-optimize a Keras model (every catalog candidate,
accuracy guard on top-1 agreement with the original over random calibration inputs), then time *every* passing
candidate in one paired sweep (all loaded once, alternating blocks) and say where the pick landed: the fastest, or
tied with it (within the paired evidence), or behind.

    python benchmarks/bench_autopick.py [--models mobilenetv2,resnet50] [--blocks 6] [--block 100]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BUILD = {"mobilenetv2": "keras.applications.MobileNetV2(weights=None)",
         "resnet50": "keras.applications.ResNet50(weights=None)"}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="mobilenetv2")
    ap.add_argument("--blocks", type=int, default=6)
    ap.add_argument("--block", type=int, default=100)
    args = ap.parse_args()
    import types

    import edgestudio.optimization.auto as auto
    from edgestudio.backends.optimizers.base import OptimizeOptions
    from edgestudio.bench.paired import paired_benchmark

    # auto-optimize deletes the candidates it did not pick; the hand sweep needs them all: keep its scratch folder
    # (removed by this script once the sweep is done)
    auto.shutil = types.SimpleNamespace(rmtree=lambda *a, **k: None)  # type: ignore[attr-defined]
    auto_optimize = auto.auto_optimize

    for name in args.models.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            keras_path = Path(tmp) / f"{name}.keras"
            subprocess.run([sys.executable, "-c", f"import keras; {BUILD[name]}.save({str(keras_path)!r})"],
                           check=True, capture_output=True)
            out = Path(tmp) / "auto"
            out.mkdir()
            table = auto_optimize(keras_path, folder=None, iterations=100,
                                  options=OptimizeOptions(calibration="random", max_drop=0.05))
            best = table["best"]
            passed = [r for r in table["candidates"] if r["passed"] and r.get("path")]
            print(f"{name}: {len(table['candidates'])} candidates, {len(passed)} passed the guard; "
                  f"pick: {best['label'] if best else None} (x{best.get('threads') if best else '-'} threads)")
            sweep = paired_benchmark([{"model": r["path"], "runtime": r["runtime"], "precision": r["precision"],
                                       "threads": (best.get("threads") if r is best else None)} for r in passed],
                                     blocks=args.blocks, block=args.block)
            ranked = sorted((v for v in sweep["variants"] if v.get("rank")), key=lambda v: v["rank"])
            for v, r in sorted(zip(sweep["variants"], passed), key=lambda vr: vr[0].get("rank") or 99):
                mark = "  <- pick" if r is best else ""
                print(f"  #{v.get('rank')} {r['label']:<40} {v.get('p50_ms', float('nan')):8.3f} ms "
                      f"[{v['ci_ms'][0]:.3f}, {v['ci_ms'][1]:.3f}]" + (" tie" if v.get("tied") else "") + mark)
            pick = next(v for v, r in zip(sweep["variants"], passed) if r is best)
            tied_with_first = pick["rank"] == 1 or all(v.get("tied") for v in ranked[1:pick["rank"]])
            scratch = {Path(r["path"]).parent for r in passed if Path(r["path"]).parent.name.startswith("edgestudio-auto-")}
            for folder in scratch:  # auto-optimize's scratch folder, kept above for the sweep
                shutil.rmtree(folder, ignore_errors=True)
            print(f"  the pick ranks #{pick['rank']} in the hand sweep: "
                  + ("the fastest" if pick["rank"] == 1 else "tied with the fastest (within the paired evidence)"
                     if tied_with_first else "BEHIND the fastest"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
