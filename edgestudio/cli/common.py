"""What the commands share: --json or text output, the input specification, where an artifact is
written, the workspace, and running one job through the worker pool."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgestudio.core.errors import EdgeStudioError, UsageError, display


Handler = Callable[[argparse.Namespace], Any]


def _emit(args: argparse.Namespace, data: Any, text: Callable[[Any], str]) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, default=str))
    else:
        print(text(data))


def _input_spec(args: argparse.Namespace) -> Any:
    """The input specification from --input / --shape / --value (one meaning on every command)."""
    from edgestudio.core.inputspec import InputSpec

    spec = InputSpec.from_cli(getattr(args, "input", None), getattr(args, "shape", None), getattr(args, "value", None),
                              getattr(args, "output_kind", None))
    return _remembered_kinds(args, spec)


def _remembered_kinds(args: argparse.Namespace, spec: Any) -> Any:
    """With --workspace, what the model's outputs are (--output-kind) is remembered for it and its variants: given
    kinds are saved, kinds given before are used."""
    model = getattr(args, "model", None)
    if not getattr(args, "workspace", None) or not isinstance(model, str) or not Path(model).exists():
        return spec
    from edgestudio.core.errors import EdgeStudioError
    from edgestudio.core.inputspec import InputSpec

    try:
        with _open_workspace(args) as ws:
            entry = ws.model_by_path(model) or ws.import_model(model, copy=False)
            saved = ws.inputs_for(entry.id)
            kinds = {**(saved.get("outputs") or {}), **spec.outputs}
            if spec.outputs:
                ws.set_inputs(entry.id, {**saved, "outputs": kinds})
    except (EdgeStudioError, OSError):
        return spec
    return InputSpec(spec.data, spec.shapes, spec.values, kinds)


def _check_inputs(args: argparse.Namespace, spec: Any) -> None:
    """Names the model does not have are an error listing the real ones (checked before any job starts)."""
    if spec.empty:
        return
    from edgestudio.core.formats import ModelFormat, detect_format

    if detect_format(args.model) in (ModelFormat.KERAS, ModelFormat.KERAS_H5, ModelFormat.SAVED_MODEL) or \
            _other_env(args.model):
        return  # reading their inputs needs TensorFlow (or another environment's PyTorch); the job checks them
    from edgestudio.core.inspection import inspect_model

    spec.check_names(inspect_model(args.model).inputs, args.model)


def _other_env(model: str) -> bool:
    """Is this model read in another Python environment (a PyTorch file: the ``torch`` environment)?"""
    from edgestudio.app.pipelines import reads_elsewhere

    return reads_elsewhere(model)


def _in_model_env(args: argparse.Namespace, model: str, function: Any, **kwargs: Any) -> Any:
    """``function(**kwargs)`` here, or as a job in the environment ``model`` is read in (a .pte: ExecuTorch's)."""
    if not _other_env(model):
        return function(**kwargs)
    from edgestudio.core.jobs import JobKind, JobSpec

    return run_job(args, JobSpec(JobKind.CALL, model=str(Path(model).resolve()), options={
        "function": f"{function.__module__}:{function.__name__}", "kwargs": kwargs}), record=False)


def _names(text: str | None) -> list[str] | None:
    return [n.strip() for n in text.split(",") if n.strip()] if text else None


def _out(args: argparse.Namespace, default: Path) -> Path:
    """Where a command writes its artifact: ``default`` without ``-o``; ``-o`` naming an existing folder writes
    inside it (a free name, never replacing what is there); ``-o`` naming a link is refused (EdgeStudio never
    writes through a link). The path is absolute, its last part never resolved."""
    if not getattr(args, "output", None):
        return default.parent.resolve() / default.name
    out = Path(args.output)
    if out.is_symlink():
        raise UsageError(out, "is a link: EdgeStudio never writes through one (give a plain path)")
    if out.is_dir():
        from edgestudio.execution.pool import free_name

        return free_name(out.resolve() / default.name)
    if out.exists() and not getattr(args, "overwrite", False):
        raise UsageError(out, "exists: give another name, or --overwrite to replace it")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(out, f"cannot make its folder {display(str(out.parent))}: {exc.strerror or exc}") from None
    return out.parent.resolve() / out.name


def _open_workspace(args: argparse.Namespace) -> Any:
    from edgestudio.core.workspace import Workspace

    return Workspace(args.workspace)  # None: the default workspace under the user's data dir


def run_job(args: argparse.Namespace, spec: Any, output_name: str | None = None, *, record: bool = True) -> dict[str, Any]:
    """Run one job through the worker pool (recorded in ``--workspace`` when given and ``record``) and
    return its result."""
    from edgestudio.core.jobs import JobStatus
    from edgestudio.execution.targets import executor_for
    from edgestudio.app.manager import JobManager

    if getattr(args, "timeout", None) and not spec.timeout_s:
        spec.timeout_s = args.timeout
    executor = executor_for(getattr(args, "env", None), max_workers=1)  # an unknown target fails here
    try:
        ws = _open_workspace(args) if args.workspace and record else None
    except BaseException:
        executor.shutdown()
        raise
    mgr = JobManager(ws, executor)
    show = sys.stderr.isatty() and not args.json
    if show:
        mgr.subscribe(lambda e: e.type == "progress" and print(
            f"\r[{e.data['fraction']:4.0%}] {e.data['message'][:70]:<70}", end="", file=sys.stderr, flush=True))
    try:
        job = mgr.submit(spec, output_name=output_name)
        try:
            rec = mgr.wait(job)
        except KeyboardInterrupt:
            mgr.cancel(job)
            mgr.wait(job, 30)
            raise
    finally:
        mgr.shutdown()
        if ws is not None:
            ws.close()
        if show:
            print("\r" + " " * 80 + "\r", end="", file=sys.stderr)
    if rec.status is JobStatus.SUCCEEDED:
        return rec.result or {}
    err = EdgeStudioError(None, rec.error or rec.status.value)
    err.named = True  # the worker's message names its file already
    raise err


def _option_fields(target: str) -> list[Any]:
    """The fields of an options dataclass named ``module:Class``, read from its source without importing the
    module (the parser must not import backends: the CLI starts fast)."""
    import ast

    module, _, cls_name = target.partition(":")
    parts = module.split(".")
    assert parts[0] == "edgestudio"
    tree = ast.parse(Path(__file__).parent.parent.joinpath(*parts[1:]).with_suffix(".py").read_text("utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls_name)
    out = []
    for node in cls.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None):
            continue
        default: Any = None
        meta: dict[str, Any] = {}
        if isinstance(node.value, ast.Call) and getattr(node.value.func, "id", "") == "field":
            for kw in node.value.keywords:
                if kw.arg == "default":
                    default = ast.literal_eval(kw.value)
                elif kw.arg == "metadata":
                    meta = ast.literal_eval(kw.value)
        else:
            default = ast.literal_eval(node.value)
        out.append((node.target.id, ast.unparse(node.annotation), default, meta))
    return out

