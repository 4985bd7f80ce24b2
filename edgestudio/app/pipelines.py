"""Pipelines that cross environments and runtimes, written once for the CLI and the studio.

The full-INT8 TFLite chain (what TensorFlow Lite Micro runs): a model read in another environment (a PyTorch file)
goes to ONNX first, there, checked against its framework; then it is calibrated and quantized by the TFLite format's
runtime (drift-guarded). ``convert --to tflite --int8`` runs it as two recorded jobs; the studio's Microcontroller
target runs it inside one job and adds the TFLite Micro package.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgestudio.core.errors import UsageError
from edgestudio.core.inputspec import InputSpec
from edgestudio.core.jobs import JobKind, JobSpec

#: runs one step of a pipeline: (the step's job, the file name its output should have) -> the job's result
StepRunner = Callable[[JobSpec, str], dict[str, Any]]


def reads_elsewhere(model: str | Path) -> bool:
    """Is ``model`` read in another Python environment than this one (a PyTorch file: ``torch``)?"""
    from edgestudio.execution.placement import model_env

    return model_env(JobSpec(JobKind.INSPECT, model=str(model))) is not None


@dataclass
class Int8Chain:
    """What the chain made: the ONNX step's result (None when the model needed no ONNX first) and the INT8 step's."""

    onnx: dict[str, Any] | None
    int8: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    inputs: InputSpec = field(default_factory=InputSpec)  # the input specification the INT8 model was made with


def int8_tflite(model: str | Path, calibration: str, run_step: StepRunner, *, inputs: InputSpec | None = None,
                io_type: str = "float", name: str | None = None, onnx_name: str | None = None,
                convert: Any = None, keep_intermediate: bool = False, keep_reference: bool = False,
                progress: Callable[[float, str], None] | None = None) -> Int8Chain:
    """The full-INT8 TFLite chain for ``model`` calibrated on ``calibration``; each step runs through ``run_step``.

    ``convert``: the ConvertOptions of the ONNX step; ``keep_intermediate`` / ``keep_reference``: keep the ONNX step's
    intermediate files / the FP32 TFLite reference beside the INT8 model (for a workspace's lineage)."""
    import dataclasses

    from edgestudio.backends.converters.base import ConvertOptions
    from edgestudio.backends.optimizers.base import OptimizeOptions
    from edgestudio.backends.runtimes import runtime_for_format
    from edgestudio.core.formats import ModelFormat

    src = Path(model)
    spec = inputs or InputSpec()
    current, onnx, steps, warnings = src, None, [], []
    if reads_elsewhere(src):  # PyTorch: to ONNX in its environment first
        if progress:
            progress(0.02, "PyTorch -> ONNX (in its environment)")
        copts = dataclasses.replace(convert or ConvertOptions(), inputs=spec.to_dict())
        onnx = run_step(JobSpec(JobKind.CONVERT, model=str(src), options={
            "to": ModelFormat.ONNX.value, "keep_intermediate": keep_intermediate, "convert": copts.to_dict()}),
            onnx_name or f"{src.stem}.onnx")
        current = Path(onnx["output"])
        steps += onnx.get("steps", [])
        warnings += onnx.get("warnings", [])
        spec = InputSpec(data=spec.data, values=spec.values)  # the ONNX model has its shapes now (NHWC after it)
    if progress:
        progress(0.3, "full INT8 TFLite (calibrating)")
    opts = OptimizeOptions(calibration=calibration, io_type=io_type, inputs=spec.to_dict(), keep_lossy=False)
    tflite = runtime_for_format(ModelFormat.TFLITE)  # TFLite Micro runs what the TFLite runtime's quantizer writes
    int8 = run_step(JobSpec(JobKind.OPTIMIZE, model=str(current), runtime=tflite, options={
        "method": "int8-static", "options": opts.to_dict(), "keep_reference": keep_reference}),
        name or f"{src.stem}_int8.tflite")
    return Int8Chain(onnx, int8, steps, warnings + list(int8.get("warnings", [])), spec)


def run_microcontroller(ctx: Any, model: str, calibration: str, io_type: str = "int8",
                        inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The microcontroller path in one job (the studio's "Microcontroller" target): the full-INT8 TFLite chain
    (:func:`int8_tflite`), then a deployment package with TFLite Micro sources whose arena is measured in the TFLM
    interpreter. Artifacts: the ONNX (when made), the FP32 TFLite reference and the INT8 TFLite, in one lineage."""
    from edgestudio.backends.runtimes import runtime_for_format
    from edgestudio.core.formats import ModelFormat
    from edgestudio.execution.placement import run_placed
    from edgestudio.packaging.deploy import build_package

    if ctx.staging is None:
        raise UsageError(model, "the microcontroller job needs an output folder")
    src = Path(model)

    def step(job: JobSpec, name: str) -> dict[str, Any]:
        job.output = str(ctx.staged(name))
        return run_placed(job, ctx)

    chain = int8_tflite(src, calibration, step, inputs=InputSpec.from_dict(inputs), io_type=io_type, keep_reference=True,
                        progress=ctx.progress)
    artifacts: list[dict[str, Any]] = []
    if chain.onnx is not None:
        artifacts.append({"path": chain.onnx["output"], "options": {
            "converter": (chain.onnx["steps"][-1] or {}).get("converter", "torch.onnx"), "from": "pytorch",
            "to": "onnx", "parity": (chain.onnx["steps"][-1] or {}).get("parity")}})
    base = len(artifacts)
    for a in chain.int8.get("artifacts") or []:
        parent = a.get("parent")
        artifacts.append({**a, "parent": (parent + base) if parent is not None else (base - 1 if base else None)})
    ctx.progress(0.75, "TensorFlow Lite Micro: measuring the arena in the interpreter")
    opt = chain.int8
    manifest = build_package(opt["output"], runtime_for_format(ModelFormat.TFLITE), ctx.staged(f"{src.stem}_mcu.zip"),
                             inputs=chain.inputs, iterations=50, tflm=True, cancel=ctx.cancel)
    return {"output": opt["output"], "artifacts": artifacts, "steps": chain.steps + opt.get("steps", []),
            "drift": (opt.get("details") or {}).get("drift"), "warnings": opt.get("warnings", []),
            "package": manifest["output"], "tflm": manifest["tflm"], "size_bytes": opt.get("size_bytes")}
