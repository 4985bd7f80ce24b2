"""The optimizer interface: one method (fp16, int8-static, ...) for one runtime's model format.

Optimizers use the field's libraries (onnxruntime.quantization and its float16 converter, NNCF, the TFLite
converter); none quantizes by hand. Options are one described dataclass, so a GUI can generate a form.
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from edgestudio.backends.registry import Registry, Requirements
from edgestudio.core.errors import EdgeStudioError, UsageError
from edgestudio.core.formats import ModelFormat
from edgestudio.core.progress import CancelToken, ProgressCallback


def methods() -> list[str]:
    """Every optimization method in the catalog."""
    from edgestudio.core.catalog import methods as catalog_methods

    return catalog_methods()


class OptimizationError(EdgeStudioError):
    """An optimization failed or broke its accuracy guard."""


@dataclass
class OptimizeOptions:
    calibration: str | None = field(default=None, metadata={
        "help": "calibration samples: .npz/.npy, a folder of images, or 'random' (results then carry a warning)",
        "metavar": "DATA"})
    dataset: str | None = field(default=None, metadata={
        "help": "labeled evaluation data (.npz with x,y or class folders) for the accuracy guard", "metavar": "DATA"})
    max_drop: float = field(default=0.01, metadata={"help": "largest top-1 loss accepted (0.01 = 1 point)"})
    subset_size: int = field(default=300, metadata={"help": "calibration samples used at most"})
    per_channel: bool = field(default=True, metadata={"help": "INT8: per-channel weight scales",
                                                      "flag": "--per-tensor", "flag_help": "INT8: per-tensor "
                                                      "instead of per-channel weight scales"})
    calibration_method: str = field(default="minmax", metadata={
        "help": "ORT static INT8 calibration", "choices": ["minmax", "entropy", "percentile"]})
    activation_type: str = field(default="uint8", metadata={
        "help": "ORT static INT8 activations; uint8 (U8S8) is the fast choice on x86", "choices": ["uint8", "int8"]})
    io_type: str = field(default="float", metadata={
        "help": "LiteRT full INT8: the model's input/output type: float (a drop-in model), int8 or uint8 (what "
                "microcontrollers feed it)", "choices": ["float", "int8", "uint8"]})
    weight_type: str = field(default="int8", metadata={"help": "ORT INT8 weights", "choices": ["int8", "uint8"]})
    preset: str = field(default="performance", metadata={
        "help": "NNCF preset: performance (symmetric) or mixed (asymmetric activations)",
        "choices": ["performance", "mixed"]})
    delegate: str = field(default="xnnpack", metadata={
        "help": "ExecuTorch INT8: lower to xnnpack, or none (portable quantized ops: what `debug` compares op by op)",
        "choices": ["xnnpack", "none"]})
    ignored_scope: list[str] = field(default_factory=list, metadata={
        "help": "node names (or type:OpType) to keep in floating point", "flag": "--ignore"})
    level: str = field(default="all", metadata={
        "help": "ORT graph optimization level", "choices": ["basic", "extended", "all"]})
    sparsity: float = field(default=0.5, metadata={"help": "pruning: fraction of weights set to zero"})
    ratio: float = field(default=1.0, metadata={"help": "INT4 weights: share of layers in INT4 (rest INT8)"})
    group_size: int = field(default=-1, metadata={"help": "INT4 weights: group size (-1: per channel)"})
    inputs: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "the input specification (--input, --shape, --value): other inputs during calibration, and what "
                "the drift check runs on"})
    min_cosine: float = field(default=0.99, metadata={
        "help": "drift guard: the lowest cosine similarity to the FP32 model accepted per output"})
    keep_lossy: bool = field(default=False, metadata={
        "help": "keep a result that fails the drift guard (marked as such) instead of refusing it"})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> OptimizeOptions:
        from edgestudio.core.requests import known_fields

        return cls(**known_fields(cls, d, "optimization options"))


class Optimizer(Requirements, abc.ABC):
    method: ClassVar[str]
    runtime: ClassVar[str]  # whose format it produces: onnxruntime, openvino, litert ("any" for pruning)
    sources: ClassVar[tuple[ModelFormat, ...]]  # in order of preference (the first is converted to if needed)
    needs_calibration: ClassVar[bool] = False
    needs_labels: ClassVar[bool] = False
    #: takes ``--ignore`` (node names or ``type:OpType`` kept in floating point); a method that cannot is refused
    #: when asked, never silently ignores it
    keeps_in_float: ClassVar[bool] = False
    description: ClassVar[str] = ""
    distributions: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def key(cls) -> str:
        return f"{cls.runtime}:{cls.method}"

    @classmethod
    def output_format(cls, source: ModelFormat) -> ModelFormat:
        from edgestudio.core.catalog import output_format

        fmt = output_format(cls.runtime)
        return ModelFormat(fmt) if fmt else source

    @abc.abstractmethod
    def optimize(self, src: Path, fmt: ModelFormat, dst: Path, opts: OptimizeOptions, *,
                 progress: ProgressCallback, cancel: CancelToken) -> dict[str, Any]:
        """Write the optimized model to ``dst``; return details for the report (warnings, sparsity...)."""


OPTIMIZERS: Registry[Optimizer] = Registry("edgestudio.backends.optimizers", key=lambda cls: cls.key())


def find_optimizer(method: str, runtime: str) -> type[Optimizer]:
    items = OPTIMIZERS.all()
    for key in (f"{runtime}:{method}", f"any:{method}"):
        if key in items:
            cls = items[key]
            missing = cls.missing_packages()
            if missing:
                raise OptimizationError(None, f"{method} for {runtime} needs {', '.join(missing)}, not installed")
            return cls
    offered = sorted(k.split(":")[0] for k in items if k.endswith(f":{method}"))
    if not offered:
        raise UsageError(None, f"unknown method {method!r} (one of: {', '.join(methods())})")
    raise UsageError(None, f"{method} is not available for {runtime} (it is for: {', '.join(offered)})")


def calibration_feeds(opts: OptimizeOptions, specs: list[Any], model: Any = None) -> tuple[list[dict[str, Any]], list[str]]:
    """Full feed dicts for calibration: the calibration set gives the first input (or every input, from an
    ``.npz`` keyed by input name); the others come from ``--value``/``--shape``, else random (said so)."""
    from edgestudio.core.datasets import RANDOM, load_dataset
    from edgestudio.core.inputspec import CHECK_DYNAMIC_DIM, InputSpec, make_feeds, npz_keys_are_inputs

    source = opts.calibration or opts.dataset
    if source is None:
        raise OptimizationError(model, "this method needs calibration data: --calibration DATA "
                                       "(.npz/.npy, an image folder, or 'random')")
    given = InputSpec.from_dict(opts.inputs)
    base = InputSpec(shapes=given.shapes, values=given.values)
    warnings: list[str] = []
    if source == RANDOM:
        feeds = make_feeds(specs, base, count=min(opts.subset_size, 64), dynamic_default=CHECK_DYNAMIC_DIM, model=model)
        warnings.append("calibrated on random data: accuracy of the result is unknown; give real samples with "
                        "--calibration")
    elif npz_keys_are_inputs(source, specs):
        feeds = make_feeds(specs, base.merged(InputSpec(data=str(source))), count=opts.subset_size,
                           dynamic_default=CHECK_DYNAMIC_DIM, model=model)
    else:
        ds = load_dataset(source, spec=specs[0])
        warnings += ds.warnings
        data = {specs[0].name: list(ds.samples(specs[0], limit=opts.subset_size))}
        feeds = make_feeds(specs, base, count=None, data=data, data_source="calibration",
                           dynamic_default=CHECK_DYNAMIC_DIM, model=model)
    if source != RANDOM and feeds.partly_random:
        warnings.append("calibration used " + "; ".join(feeds.notes))
    return feeds.samples, warnings
