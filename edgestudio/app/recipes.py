"""Recipes: what was done to a model (convert, optimize, rescue, distill, bench, eval; every option and the input
specification) as a YAML file that ``edgestudio run RECIPE.yaml`` replays headless, with quality gates that fail
the run (exit code 1) in CI.

A recipe is written from a workspace's records (:func:`export_recipe`: the lineage of a model, its benchmarks and
evaluations), or by hand. Replaying runs each step with the same job runner the pool's workers use, in order, the
artifacts of step N feeding step N+1 by id; paths in the file are relative to the file. Gates (per step):
``parity: passed`` (a conversion's numerical check), ``drift: passed`` (an optimization's guard), ``min_top1``
(an evaluation, or an optimization's accuracy), ``max_p50_ms`` (a benchmark). A gate that cannot be judged (no
figure) fails: a CI run never passes on a missing number.

    edgestudio_recipe: 1
    model: digits_cnn.keras
    inputs: {data: digits8.npz}
    steps:
    - {id: onnx, convert: {from: model, to: onnx}, gates: {parity: passed}}
    - {id: int8, optimize: {from: onnx, method: int8-static, runtime: onnxruntime, options: {calibration: c.npz}},
       gates: {drift: passed}}
    - {bench: {model: int8, runtime: onnxruntime, iterations: 300}, gates: {max_p50_ms: 0.5}}
    - {eval: {model: int8, dataset: test.npz}, gates: {min_top1: 0.96}}
"""

from __future__ import annotations

import itertools
import re
import time
from pathlib import Path
from typing import Any

from edgestudio.core.errors import EdgeStudioError, UsageError, display
from edgestudio.core.progress import CancelToken, ProgressCallback, noop_progress

VERSION = 1
KINDS = ("convert", "optimize", "rescue", "distill", "bench", "eval")
CONVERT_KEYS = ("opset", "shapes", "layout", "input_names", "output_names", "compress_fp16", "allow_tf_ops",
                "tfjs_quantization", "tvm_trials", "tvm_minutes", "tolerance")
PATH_KEYS = ("calibration", "dataset", "data", "student")


# ----------------------------------------------------------------------------------------------- writing
def _rel(path: str | None, base: Path) -> str | None:
    if not path:
        return path
    p = Path(path)
    if not p.is_absolute():
        p = p.resolve()
    try:
        return str(p.relative_to(base))
    except ValueError:
        import os

        try:
            return os.path.relpath(p, base)
        except ValueError:
            return str(p)


def _optimize_options(opts: dict[str, Any], base: Path) -> dict[str, Any]:
    from edgestudio.backends.optimizers.base import OptimizeOptions

    fields = OptimizeOptions.__dataclass_fields__
    defaults = OptimizeOptions().to_dict()
    out = {k: v for k, v in opts.items() if k in fields and k != "inputs" and v != defaults.get(k)}
    for k in PATH_KEYS:
        if out.get(k):
            out[k] = _rel(out[k], base)
    return out


def export_recipe(workspace: Any, model_id: int, recipe_path: str | Path) -> dict[str, Any]:
    """The recipe that remakes ``model_id`` from its original: every hop of its lineage with its options, then the
    benchmarks and evaluations recorded on the way (their figures become the gates, with a margin: twice the p50
    plus 0.5 ms, 1 point of top-1). Paths relative to ``recipe_path``'s folder. Written there as YAML; returned too."""
    import yaml

    base = Path(recipe_path).resolve().parent
    chain = workspace.lineage(model_id)
    root = chain[0]
    ids: dict[int, str] = {root.id: "model"}
    steps: list[dict[str, Any]] = []
    counter = itertools.count(1)
    for entry in chain[1:]:
        o = dict(entry.options or {})
        sid = f"{entry.format.value}_{next(counter)}"
        src = ids.get(entry.parent_id or -1, "model")
        if o.get("converter") or o.get("kind") == "convert":
            step: dict[str, Any] = {"id": sid, "convert": {"from": src, "to": o.get("to") or entry.format.value,
                                                           "options": {k: o[k] for k in CONVERT_KEYS
                                                                       if o.get(k) not in (None, [], {}, "auto", False, 0)}},
                                    "gates": {"parity": "passed"}}
        elif o.get("method") == "distill":
            step = {"id": sid, "distill": {"from": src, "width": o.get("width") or 0.5,
                                           "temperature": o.get("temperature", 4.0), "epochs": o.get("epochs", 30)},
                    "note": "give the unlabeled inputs: distill.data"}
        elif o.get("rescued"):
            step = {"id": sid, "rescue": {"from": src, "runtime": o.get("runtime"), "method": o.get("method"),
                                          "options": _optimize_options(o, base)}}
        elif o.get("method"):
            sid = f"{str(o['method']).replace('-', '_')}_{sid.rsplit('_', 1)[-1]}"
            step = {"id": sid, "optimize": {"from": src, "method": o["method"], "runtime": o.get("runtime"),
                                            "options": _optimize_options(o, base)}}
            gates: dict[str, Any] = {}
            if o.get("drift"):
                gates["drift"] = "passed"
            acc = o.get("accuracy") or {}
            if acc.get("after") is not None:
                gates["min_top1"] = round(float(acc["after"]) - 0.01, 4)
            if gates:
                step["gates"] = gates
        else:
            continue  # an artifact added by hand: nothing to replay
        ids[entry.id] = sid
        steps.append(step)
    for entry in chain:
        for r in workspace.results(entry.id):
            d = r["data"]
            ref = ids.get(entry.id)
            if ref is None:
                continue
            if r["kind"] == "bench" and d.get("latency_ms"):
                bench = {"model": ref, "runtime": d.get("runtime"), "iterations": d.get("iterations")}
                if d.get("device") and d["device"] != "CPU":
                    bench["device"] = d["device"]
                if d.get("threads_source") == "user":
                    bench["threads"] = d.get("threads")
                # twice the p50 measured then, plus half a millisecond: timings drift 20-40 % between runs on a
                # shared machine; this catches the regressions that matter (a wrong runtime, a slow INT8 path)
                steps.append({"bench": bench, "gates": {"max_p50_ms": round(d["latency_ms"]["p50"] * 2 + 0.5, 4)}})
            elif r["kind"] == "eval" and d.get("top1") is not None and d.get("dataset"):
                steps.append({"eval": {"model": ref, "dataset": _rel(d["dataset"], base), "runtime": d.get("runtime")},
                              "gates": {"min_top1": round(float(d["top1"]) - 0.01, 4)}})
    spec = workspace.inputs_for(root.id) or {}
    inputs = {k: v for k, v in spec.items() if v}
    if inputs.get("data"):
        inputs["data"] = _rel(inputs["data"], base)
    # the user's file when it is still there and the same (the workspace keeps a copy of what was imported)
    original = (root.options or {}).get("imported_from")
    source = original if original and Path(original).exists() else root.path
    recipe = {"edgestudio_recipe": VERSION, "model": _rel(source, base), "inputs": inputs, "steps": steps}
    Path(recipe_path).write_text(
        f"# EdgeStudio recipe: how {chain[-1].name} was made from {root.name}, exported {time.strftime('%Y-%m-%d')}\n"
        f"# replay: edgestudio run {Path(recipe_path).name}  (gates fail the run: edit their limits here)\n"
        + yaml.safe_dump(recipe, sort_keys=False, width=110))
    return recipe


# ----------------------------------------------------------------------------------------------- reading
def load_recipe(path: str | Path) -> dict[str, Any]:
    from edgestudio.core.safety import load_yaml

    p = Path(path)
    doc = load_yaml(p, "recipe")
    if not isinstance(doc, dict) or doc.get("edgestudio_recipe") != VERSION:
        raise EdgeStudioError(p, f"not an EdgeStudio recipe (needs 'edgestudio_recipe: {VERSION}' at the top)")
    if not doc.get("model") or not isinstance(doc.get("steps"), list):
        raise EdgeStudioError(p, "a recipe needs 'model' and a list of 'steps'")
    ids: set[str] = set()
    for i, step in enumerate(doc["steps"]):
        if not isinstance(step, dict):
            raise EdgeStudioError(p, f"step {i + 1} is not a mapping")
        kinds = [k for k in KINDS if k in (step or {})]
        if len(kinds) != 1:
            raise EdgeStudioError(p, f"step {i + 1}: one of {', '.join(KINDS)} per step (found "
                                     f"{', '.join(kinds) or 'none'})")
        if not isinstance(step[kinds[0]] or {}, dict):
            raise EdgeStudioError(p, f"step {i + 1}: its {kinds[0]} is not a mapping")
        sid = step.get("id", f"step{i + 1}")
        sid = step["id"] = str(sid) if isinstance(sid, int) and not isinstance(sid, bool) else sid
        if not isinstance(sid, str) or not _ID.fullmatch(sid) or sid in ("model", *ids):
            raise EdgeStudioError(p, f"step {i + 1}: id {display(str(sid))!r} must be a unique plain name (letters, "
                                     "digits, '_', '-', '.'; no '/' or '..'): it names the step's output folder")
        ids.add(sid)
    return doc


_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def recipe_paths(path: str | Path, doc: dict[str, Any]) -> list[tuple[str, str]]:
    """Every file the recipe reads, as (what, absolute path), in order: its model, its input data, each step's
    calibration / dataset / data."""
    base = Path(path).resolve().parent
    out: list[tuple[str, str]] = []

    def add(what: str, value: Any) -> None:
        if value:
            if not isinstance(value, str):
                raise EdgeStudioError(path, f"{what} is not a path: {display(str(value))[:80]}")
            out.append((what, str(value if Path(value).is_absolute() else (base / value).resolve())))

    add("model", doc.get("model"))
    add("inputs.data", (doc.get("inputs") or {}).get("data") if isinstance(doc.get("inputs") or {}, dict) else None)
    for i, step in enumerate(doc["steps"]):
        kind = next(k for k in KINDS if k in step)
        body = step[kind] or {}
        opts = body.get("options") or {}
        if not isinstance(opts, dict):
            raise EdgeStudioError(path, f"step {i + 1}: its options are not a mapping")
        for k in PATH_KEYS:
            add(f"step {i + 1} {k}", opts.get(k))
        for k in ("data", "dataset"):
            add(f"step {i + 1} {k}", body.get(k))
    return out


def check_confined(path: str | Path, doc: dict[str, Any], *, allow_outside: bool = False) -> None:
    """A recipe is a file someone else can hand you: what it reads must be inside its own folder (no absolute
    path, no '..' out of it, no link out of it), unless the user allows it (``--allow-outside``)."""
    if allow_outside:
        return
    base = Path(path).resolve().parent
    raw = {"model": doc.get("model"), "inputs.data": (doc.get("inputs") or {}).get("data")}
    for what, value in raw.items():
        if isinstance(value, str) and Path(value).is_absolute():
            raise UsageError(path, f"{what} is an absolute path ({display(value)}): refused (--allow-outside lets "
                                   "a recipe you trust read it)")
    for what, p in recipe_paths(path, doc):
        if not Path(p).resolve().is_relative_to(base):
            raise UsageError(path, f"{what} {display(p)} is outside the recipe's folder {display(str(base))}: "
                                   "refused (--allow-outside lets a recipe you trust read it)")


def plan_recipe(recipe: str | Path, output: str | Path, *, allow_outside: bool = False) -> dict[str, Any]:
    """What ``run`` would read, write and run, without running anything."""
    path = Path(recipe).resolve()
    doc = load_recipe(path)
    check_confined(path, doc, allow_outside=allow_outside)
    out = Path(output)
    steps = []
    for i, step in enumerate(doc["steps"]):
        kind = next(k for k in KINDS if k in step)
        body = step[kind] or {}
        sid = step.get("id") or f"step{i + 1}"
        writes = str(out / f"{i + 1:02d}_{sid}") if kind in ("convert", "optimize", "rescue", "distill") else None
        what = {"convert": f"convert to {body.get('to')}", "optimize": f"optimize {body.get('method')} "
                f"({body.get('runtime') or 'default runtime'})",
                "rescue": f"rescue ({body.get('runtime') or 'default runtime'})",
                "distill": "distill a student", "bench": f"benchmark on {body.get('runtime') or 'the default runtime'}",
                "eval": "evaluate"}[kind]
        steps.append({"step": i + 1, "id": sid, "kind": kind, "runs": what,
                      "from": body.get("from") or body.get("model") or "model", "writes": writes,
                      "gates": step.get("gates") or {}})
    return {"recipe": str(path), "reads": [{"what": w, "path": p} for w, p in recipe_paths(path, doc)],
            "output": str(out), "steps": steps}


# ----------------------------------------------------------------------------------------------- replaying
def _judge(gates: dict[str, Any], result: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    out = []
    for name, want in (gates or {}).items():
        got: Any = None
        ok = False
        if name == "parity":
            steps = result.get("steps") or []
            got = ",".join(str((s.get("parity") or {}).get("verdict")) for s in steps) or None
            ok = bool(steps) and all((s.get("parity") or {}).get("verdict") == want for s in steps)
        elif name == "drift":
            got = ((result.get("details") or {}).get("drift") or {}).get("verdict")
            ok = got == want
        elif name == "min_top1":
            got = result.get("top1") if kind == "eval" else (result.get("accuracy") or {}).get("after")
            if got is None and kind == "rescue":
                got = (result.get("steps") or [{}])[-1].get("top1")
            ok = got is not None and float(got) >= float(want)
        elif name == "max_p50_ms":
            got = (result.get("latency_ms") or {}).get("p50")
            ok = got is not None and float(got) <= float(want)
        else:
            got = f"unknown gate {name!r}"
        out.append({"gate": name, "want": want, "got": got, "passed": ok})
    return out


def run_recipe(recipe: str | Path, output: str | Path, *, progress: ProgressCallback = noop_progress,
               cancel: CancelToken | None = None, log: Any = None, allow_outside: bool = False) -> dict[str, Any]:
    """Replay ``recipe``; artifacts go under the folder ``output`` (one sub-folder per step). Returns every step's
    result and gate verdicts, ``passed`` (all gates), and ``artifacts`` (for a workspace: the lineage)."""
    from edgestudio.backends.converters.base import ConvertOptions
    from edgestudio.backends.optimizers.base import OptimizeOptions
    from edgestudio.core.catalog import output_format
    from edgestudio.core.formats import ModelFormat, detect_format, output_name
    from edgestudio.core.jobs import JobKind, JobSpec
    from edgestudio.jobs.context import JobContext
    from edgestudio.execution.placement import run_placed

    path = Path(recipe).resolve()
    doc = load_recipe(path)
    check_confined(path, doc, allow_outside=allow_outside)
    base = path.parent
    cancel = cancel or CancelToken()
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)

    def here(p: str | None) -> str | None:
        return str((base / p).resolve()) if p and not Path(p).is_absolute() else p

    inputs = dict(doc.get("inputs") or {})
    if inputs.get("data"):
        inputs["data"] = here(inputs["data"])
    model = here(doc["model"])
    if not Path(model or "").exists():
        raise EdgeStudioError(path, f"its model {doc['model']} is not there ({model})")
    made: dict[str, str] = {"model": str(model)}
    art_index: dict[str, int] = {}
    artifacts: list[dict[str, Any]] = []
    report: list[dict[str, Any]] = []
    n = len(doc["steps"])

    def send(msg: Any) -> None:
        if msg.type == "log" and log is not None:
            log(msg.data.get("line", ""))

    for i, step in enumerate(doc["steps"]):
        cancel.check()
        kind = next(k for k in KINDS if k in step)
        body = dict(step[kind] or {})
        sid = step.get("id") or f"step{i + 1}"
        src_ref = body.get("from") or body.get("model") or "model"
        if src_ref not in made:
            raise EdgeStudioError(path, f"step {i + 1} ({kind}) uses {src_ref!r}, which no earlier step made")
        src = made[src_ref]
        progress(i / n, f"step {i + 1}/{n}: {kind} {Path(src).name}")
        folder = out / f"{i + 1:02d}_{sid}"
        if not folder.resolve().is_relative_to(out.resolve()):  # load_recipe's id rule makes this impossible
            raise EdgeStudioError(path, f"step {i + 1}: its output folder leaves {display(str(out))}")
        if kind in ("convert", "optimize", "rescue", "distill"):
            folder.mkdir(parents=True, exist_ok=True)
        ctx = JobContext(f"recipe-{i + 1}", send, cancel, folder)
        stem = Path(src).stem if Path(src).is_file() else Path(src).name
        opts = dict(body.get("options") or {})
        for k in PATH_KEYS:
            if opts.get(k):
                opts[k] = here(opts[k])
        t0 = time.monotonic()
        if kind == "convert":
            fmt = ModelFormat.parse(body["to"])
            copts = ConvertOptions.from_dict({**opts, "inputs": inputs})
            spec = JobSpec(JobKind.CONVERT, model=src, output=str(folder / output_name(stem, fmt)),
                           options={"to": fmt.value, "via": body.get("via") or [], "keep_intermediate": False,
                                    "convert": copts.to_dict()})
        elif kind in ("optimize", "rescue"):
            oopts = OptimizeOptions.from_dict({**opts, "inputs": inputs})
            if kind == "optimize":
                # the runtime's own format (what its optimizers write), else the source's (the default runtime's)
                own = output_format(body["runtime"]) if body.get("runtime") else None
                suffix = ModelFormat(own).default_suffix if own else ""
                name = f"{stem}_{body['method']}{suffix or Path(src).suffix or '.onnx'}"
                spec = JobSpec(JobKind.OPTIMIZE, model=src, runtime=body.get("runtime"), output=str(folder / name),
                               options={"method": body["method"], "options": oopts.to_dict()})
            else:
                from edgestudio.optimization.engine import default_runtime_for
                from edgestudio.optimization.rescue import rescue_suffix

                rt = body.get("runtime") or default_runtime_for(detect_format(src))  # as rescue's own default
                name = f"{stem}_rescued{rescue_suffix(rt)}"
                spec = JobSpec(JobKind.CALL, model=src, output=str(folder / name), options={
                    "function": "edgestudio.optimization.rescue:rescue", "kwargs": {
                        "parent": src, "runtime": rt, "method": body.get("method") or "int8-static",
                        "options": oopts.to_dict(), "inputs": inputs, "max_drop": oopts.max_drop}})
        elif kind == "distill":
            spec = JobSpec(JobKind.CALL, model=src, output=str(folder / f"{stem}_student.keras"), options={
                "function": "edgestudio.optimization.distill:distill", "kwargs": {
                    "teacher": src, "data": here(body.get("data")), "width": body.get("width", 0.5),
                    "temperature": body.get("temperature", 4.0), "epochs": body.get("epochs", 30),
                    "dataset": here(body.get("dataset"))}})
        elif kind == "bench":
            spec = JobSpec(JobKind.BENCH, model=src, runtime=body.get("runtime"), device=body.get("device") or "CPU",
                           options={"iterations": body.get("iterations") or 300, "warmup": body.get("warmup", 10),
                                    "threads": body.get("threads"), "inputs": inputs, "keep_samples": False})
            ctx.staging = None
        else:  # eval
            spec = JobSpec(JobKind.EVAL, model=src, runtime=body.get("runtime"),
                           options={"dataset": here(body.get("dataset")), "inputs": inputs})
            ctx.staging = None
        try:
            result = run_placed(spec, ctx)
            ctx.flush()
            error = None
        except EdgeStudioError as exc:
            result, error = {}, exc.one_line()
        verdicts = _judge(step.get("gates") or {}, result, kind)
        if error:
            verdicts.append({"gate": "ran", "want": True, "got": error, "passed": False})
        row = {"step": i + 1, "id": sid, "kind": kind, "model": src, "seconds": round(time.monotonic() - t0, 2),
               "gates": verdicts, "passed": all(v["passed"] for v in verdicts), "error": error}
        if kind == "bench" and result:
            row["p50_ms"] = result["latency_ms"]["p50"]
        if kind == "eval" and result:
            row["top1"] = result.get("top1")
        produced = result.get("output") if kind in ("convert", "optimize", "rescue", "distill") else None
        if produced:
            made[sid] = str(produced)
            row["output"] = str(produced)
            parent = art_index.get(src_ref)
            art_index[sid] = len(artifacts)
            artifacts.append({"path": str(produced), "parent": parent,
                              "options": {"recipe": path.name, "step": sid, "kind": kind, **({
                                  "converter": (result.get("steps") or [{}])[-1].get("converter"),
                                  "to": body.get("to"), "parity": (result.get("steps") or [{}])[-1].get("parity")}
                                  if kind == "convert" else {"method": body.get("method") or kind,
                                                             "runtime": body.get("runtime")})}})
        elif kind in ("convert", "optimize", "rescue", "distill") and not error:
            row["passed"] = False
            row["gates"].append({"gate": "ran", "want": True, "got": "no output", "passed": False})
        report.append(row)
        if log is not None:
            log(f"step {i + 1} {kind} {sid}: " + ("ok" if row["passed"] else "FAILED ") + "; ".join(
                f"{v['gate']} {v['got']} (want {v['want']})" for v in verdicts if not v["passed"]))
        if error and kind in ("convert", "optimize", "rescue", "distill"):
            break  # what follows needs this step's model
    progress(1.0, "done")
    return {"recipe": str(path), "model": str(model), "steps": report, "passed": all(r["passed"] for r in report)
            and len(report) == n, "completed": len(report), "of": n, "output": str(out), "artifacts": artifacts}
