"""What leaves the studio: ``package`` (a deployment zip) and ``run`` (replay a recipe, with its gates)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from edgestudio.cli.common import _check_inputs, _emit, _input_spec, _open_workspace, _out, run_job
from edgestudio.cli.render import _plan_text, _run_text, _tflm_text
from edgestudio.core.errors import EdgeStudioError, UsageError, display


def cmd_package(args: argparse.Namespace) -> Any:
    from edgestudio.core.formats import detect_format
    from edgestudio.core.jobs import JobKind, JobSpec
    from edgestudio.packaging.deploy import default_package_runtime

    src = Path(args.model)
    fmt = detect_format(src)
    runtime = args.runtime or default_package_runtime(fmt)
    if runtime is None:
        raise EdgeStudioError(src, f"no deployment runtime runs {fmt.label} models; convert it first")
    out = _out(args, src.parent / f"{src.stem if src.is_file() else src.name}_{runtime}.zip")
    lineage = None
    if args.workspace:
        with _open_workspace(args) as ws:
            lineage = ws.lineage_records(str(src.resolve()))
    inputs = _input_spec(args)
    _check_inputs(args, inputs)
    spec = JobSpec(JobKind.PACKAGE, model=str(src), runtime=runtime, output=str(out), options={
        "dataset": args.dataset, "inputs": inputs.to_dict(), "iterations": args.iterations, "tflm": args.tflm,
        "lineage": lineage})
    result = run_job(args, spec, record=False)  # the zip goes where asked, not into the workspace
    lat = result["benchmark"]["latency_ms"]
    from edgestudio.packaging.web import web_runtimes

    if runtime in web_runtimes():
        chk = result["page_check"]
        _emit(args, result, lambda d: f"{d['package']}\n  {runtime}: p50 {lat['p50']:.3f} ms in {chk['browser']}; the "
              f"package's page ran in it and matched the native run ({chk['native_runtime']}, max abs diff "
              f"{chk['max_abs_diff_vs_native']:.3g})"
              f"\n  serve it with: python serve.py (sets the COOP/COEP headers wasm threads need)")
        return result
    _emit(args, result, lambda d: f"{d['package']}\n  {d['runtime']}: p50 {lat['p50']:.3f} ms"
          + (f", top-1 {d['accuracy']['top1']:.4f}" if d.get("accuracy") else "")
          + (_tflm_text(d["tflm"]) if d.get("tflm") else "")
          + f"\n  requirements: {', '.join(d['requirements'])}")
    return result


def cmd_run(args: argparse.Namespace) -> Any:
    """``run RECIPE.yaml``: replay a recipe; exit code 1 when a gate fails."""
    from edgestudio.core.jobs import JobKind, JobSpec
    from edgestudio.app.recipes import load_recipe

    from edgestudio.app.recipes import check_confined, plan_recipe

    recipe = Path(args.recipe).resolve()
    doc = load_recipe(recipe)  # a bad file: its one-line error before anything runs
    check_confined(recipe, doc, allow_outside=args.allow_outside)
    out = Path(args.output) if args.output else recipe.parent / f"{recipe.stem}_out"
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise UsageError(out, "the output folder is a link or a file: give a folder (it is created when missing)")
    if args.plan:
        plan = plan_recipe(recipe, (out / recipe.stem).resolve(), allow_outside=args.allow_outside)
        _emit(args, plan, _plan_text)
        return plan
    model = doc["model"] if Path(doc["model"]).is_absolute() else str((recipe.parent / doc["model"]).resolve())
    spec = JobSpec(JobKind.CALL, model=model, options={
        "function": "edgestudio.app.recipes:run_recipe", "kwargs": {"recipe": str(recipe),
                                                                         "allow_outside": args.allow_outside}})
    if args.workspace:
        result = run_job(args, spec, output_name=recipe.stem)
    else:
        spec.output = str((out / recipe.stem).resolve())
        result = run_job(args, spec, record=False)
    result.pop("artifacts", None)
    _emit(args, result, _run_text)
    if not result["passed"]:
        failed = [r for r in result["steps"] if not r["passed"]]
        why = (f"step {failed[0]['step']} ({failed[0]['kind']} {failed[0]['id']}): "
               + "; ".join(f"{g['gate']} {g['got']} (want {g['want']})" for g in failed[0]["gates"] if not g["passed"])
               if failed else f"{result['completed']} of {result['of']} steps ran")
        print(f"error: {display(str(recipe))}: the recipe failed at {display(why)}", file=sys.stderr)
        raise SystemExit(1)
    return result

