"""The converter interface: a converter turns one of its source formats into its target format.

Each converter declares what it does as class attributes (sources, target, required packages, which
options it honours, the parity tolerance of its output), Optimum-style, and registers itself in
:data:`CONVERTERS`; the planner chains them. Heavy libraries are imported inside :meth:`convert`.
"""

from __future__ import annotations

import abc
import dataclasses
import importlib.metadata
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from edgestudio.backends.registry import Registry, Requirements
from edgestudio.core.errors import EdgeStudioError, clean_message
from edgestudio.core.formats import ModelFormat
from edgestudio.core.progress import CancelToken, ProgressCallback


class ConversionError(EdgeStudioError):
    """A conversion failed; names the converter, the op and node when known, and what else could work."""

    def __init__(self, path: str | Path | None, cause: str, *, converter: str | None = None,
                 op: str | None = None, node: str | None = None, hint: str | None = None) -> None:
        self.converter, self.op, self.node = converter, op, node
        super().__init__(path, cause, hint=hint)


@dataclass
class ConvertOptions:
    """Options users expect; each converter honours the ones listed in its ``uses``."""

    opset: int | None = field(default=None, metadata={"help": "ONNX opset to produce (default: the converter's, 17 for tf2onnx)"})
    shapes: dict[str, list[int]] = field(default_factory=dict, metadata={
        "help": "fix input shapes, name -> dims (e.g. image=1,224,224,3); unlisted dynamic dims stay dynamic"})
    layout: str = field(default="auto", metadata={
        "help": "ONNX from TensorFlow: 'nchw' makes 4-D inputs channels-first; TFLite from ONNX: 'nchw' keeps "
                "the ONNX input layout instead of converting to NHWC", "choices": ["auto", "nchw", "nhwc"]})
    input_names: list[str] | None = field(default=None, metadata={"help": "rename the inputs of an ONNX result, in order"})
    output_names: list[str] | None = field(default=None, metadata={"help": "rename the outputs of an ONNX result, in order"})
    compress_fp16: bool = field(default=False, metadata={
        "help": "OpenVINO IR: store weights as FP16 (half the size, small numeric change)"})
    allow_tf_ops: bool = field(default=False, metadata={
        "help": "TFLite: keep TensorFlow ops TFLite lacks (SELECT_TF_OPS); the device then needs the Flex delegate"})
    tfjs_quantization: str = field(default="none", metadata={
        "help": "TF.js: store weights as float16 or uint8 (affine) instead of float32 (half / a quarter the size; "
                "a small numeric change, checked with a cosine floor)", "choices": ["none", "float16", "uint8"]})
    executorch_delegate: str = field(default="xnnpack", metadata={
        "help": "ExecuTorch: the backend the program is lowered to: xnnpack (fast on CPUs) or none (portable ops "
                "only: slower, and what `debug` can compare op by op)", "choices": ["xnnpack", "none"]})
    tvm_trials: int = field(default=0, metadata={
        "help": "TVM: MetaSchedule tuning trials (0: untuned, Relax's default CPU schedules; a few hundred tune a "
                "small CNN)"})
    tvm_minutes: float | None = field(default=None, metadata={
        "help": "TVM: stop tuning after this many minutes and keep what was measured"})
    tolerance: float | None = field(default=None, metadata={
        "help": "largest absolute output difference the parity check accepts (default: per converter)"})
    validate: bool = field(default=True, metadata={"help": "check each result numerically against its parent"})
    inputs: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "what the parity checks run on: the input specification (--input, --shape, --value)"})
    chain_target: str | None = field(default=None, metadata={
        "help": "set by the conversion engine: the format the whole chain ends in (a hop may write what it needs)",
        "internal": True})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> ConvertOptions:
        from edgestudio.core.requests import known_fields

        return cls(**known_fields(cls, d, "conversion options"))


def option_schema(names: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Describe options (name, type, default, help) so a GUI can generate its form from them."""
    out = []
    for f in dataclasses.fields(ConvertOptions):
        if (names is not None and f.name not in names) or f.metadata.get("internal"):
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        out.append({"name": f.name, "type": str(f.type), "default": default, "help": f.metadata.get("help", ""),
                    "choices": f.metadata.get("choices")})
    return out


class Converter(Requirements, abc.ABC):
    name: ClassVar[str]
    label: ClassVar[str]  # the library call, for messages: "openvino.convert_model"
    sources: ClassVar[frozenset[ModelFormat]]
    target: ClassVar[ModelFormat]
    distributions: ClassVar[tuple[str, ...]] = ()  # pip names whose versions go into lineage
    uses: ClassVar[tuple[str, ...]] = ()  # ConvertOptions fields this converter honours
    preference: ClassVar[int] = 50  # among paths of equal length, lower wins
    tolerance: ClassVar[float] = 1e-4  # default max abs diff for the parity check of its output
    route: str | None = None  # set by convert() when it took its second route: shown with the step, never silent
    # runtimes the result is also run on (where a runtime is missing the report says so): e.g. TF.js in a browser
    also_check_on: ClassVar[tuple[str, ...]] = ()
    # sources it converts in seconds with little memory (a small model): the studio lets such a conversion run
    # beside a long one instead of queueing behind it
    quick_from: ClassVar[frozenset[ModelFormat]] = frozenset()

    def layout_change(self, opts: ConvertOptions) -> str | None:
        """The input layout this converter moves channels-first/last inputs to with these options
        ("nhwc", "nchw"), or None: it keeps the parent's layout (any change then fails the parity check)."""
        return None

    @classmethod
    def versions(cls) -> dict[str, str]:
        out = {}
        for dist in cls.distributions:
            try:
                out[dist] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                pass
        return out

    @classmethod
    def output_path(cls, folder: Path, stem: str) -> Path:
        from edgestudio.core.formats import output_name

        return folder / output_name(stem, cls.target)

    @abc.abstractmethod
    def convert(self, src: Path, fmt: ModelFormat, dst: Path, opts: ConvertOptions, *,
                progress: ProgressCallback, cancel: CancelToken) -> None:
        """Write the converted model to ``dst`` (a file, or a folder for SavedModel / TF.js)."""

    def explain(self, exc: BaseException, src: Path, fmt: ModelFormat) -> ConversionError:
        """Turn a library's exception into an error a user can act on."""
        full = " ".join(str(exc).split()) or type(exc).__name__
        msg = clean_message(exc)
        op = find_unsupported_op(full)
        node = onnx_node_for_op(src, op) if op and fmt is ModelFormat.ONNX else None
        if op:
            cause = f"{self.label} does not support op {op}" + (f" (node {node})" if node else "")
        else:
            cause = f"{self.label} failed: {msg[:300]}"
        return ConversionError(src, cause, converter=self.name, op=op, node=node)


CONVERTERS: Registry[Converter] = Registry("edgestudio.backends.converters", key=lambda cls: cls.name)

_OP_PATTERNS = [
    re.compile(r"not support the following ONNX operations?:\s*([\w.\-]+)", re.I),
    re.compile(r"No conversion rule found for operations?:\s*([\w.\-]+)", re.I),
    re.compile(r"Conversion failed for ([\w.\-]+?)-\d+", re.I),
    re.compile(r"Unsupported ops?: Counter\(\{'([\w.\-]+)'", re.I),
    re.compile(r"ops are not supported by the native TFLite runtime.*?(tf\.[\w]+)", re.I),
    re.compile(r"op type (?:not registered|is not supported)[:\s]*'?([\w.\-]+)", re.I),
    re.compile(r"Could not find an implementation for ([\w.\-]+)\(", re.I),
    re.compile(r"opset.*?(?:for|of) ([A-Z][\w]+) is not supported", re.I),
]


def find_unsupported_op(message: str) -> str | None:
    for pat in _OP_PATTERNS:
        m = pat.search(message)
        if m:
            return m.group(1).rstrip(".,;")
    return None


def onnx_node_for_op(path: Path, op: str) -> str | None:
    """Name the first node of type ``op`` (``domain.Op`` or ``Op``) in an ONNX model."""
    try:
        import onnx

        model = onnx.load(str(path), format="protobuf", load_external_data=False)
    except Exception:
        return None
    want = op.split(".")[-1]
    for i, n in enumerate(model.graph.node):
        if n.op_type == want:
            return n.name or f"#{i} ({n.op_type})"
    return None


def rename_onnx_io(path: Path, inputs: list[str] | None, outputs: list[str] | None) -> None:
    """Rename graph inputs/outputs of an ONNX file in place (every reference follows)."""
    if not inputs and not outputs:
        return
    import onnx

    model = onnx.load(str(path), format="protobuf")
    g = model.graph
    inits = {i.name for i in g.initializer}
    mapping: dict[str, str] = {}
    real_inputs = [v for v in g.input if v.name not in inits]
    for vals, names in ((real_inputs, inputs), (list(g.output), outputs)):
        if not names:
            continue
        if len(names) != len(vals):
            raise ConversionError(path, f"{len(names)} names given for {len(vals)} tensors")
        for v, new in zip(vals, names):
            mapping[v.name] = new
    for v in list(g.input) + list(g.output) + list(g.value_info):
        v.name = mapping.get(v.name, v.name)
    for n in g.node:
        n.input[:] = [mapping.get(x, x) for x in n.input]
        n.output[:] = [mapping.get(x, x) for x in n.output]
    onnx.save(model, str(path), format="protobuf")


def static_torch_program(src: Path, opts: ConvertOptions, progress: ProgressCallback) -> tuple[Any, tuple[Any, ...]]:
    """A PyTorch model as an ExportedProgram at one row of the user's inputs (``--input``, ``--shape``, ``--value``),
    for converters to static formats (TFLite, ExecuTorch); (the program, its example arguments)."""
    from edgestudio.core.inputspec import InputSpec, make_feeds
    from edgestudio.core.inspection import load_torch_program
    from edgestudio.core.readers.torch import exported_at

    progress(0.1, "loading with PyTorch")
    prog = load_torch_program(src)
    spec = InputSpec.from_dict(opts.inputs).merged(InputSpec(shapes=dict(opts.shapes)))
    args = prog.static_args(make_feeds(prog.inputs, spec, count=1, model=src).samples[0])
    progress(0.2, "torch.export at the example inputs' shapes")
    return exported_at(prog, args), args
