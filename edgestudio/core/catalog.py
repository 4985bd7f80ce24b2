"""The backend catalog: the one declarative list of runtimes, converters and optimizers.

Read without importing any backend (plain data, like Olive's pass manifest). The registries import exactly
the modules listed here; the CLI's choices, the optimizers' output formats, the default runtime of a format,
deployment packages (pip names), the GUI's runtime lists and presets are all derived from it. Adding a backend
is one module plus one entry here, or, outside this repository, one entry in a TOML file named by the
``EDGESTUDIO_CATALOG`` environment variable (``os.pathsep``-separated)::

    [[runtime]]
    name = "myrt"
    label = "My runtime"
    module = "my_package.myrt"        # importable; registers its class with @RUNTIMES.register
    formats = ["onnx"]
    pip = ["my-runtime"]
    auto = [{label = "My runtime FP32"}]   # what auto-optimize tries on it (method, precision, options, sources)

``env`` names the Python environment a backend needs ("default": this one).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from edgestudio.core.errors import EdgeStudioError


@dataclass(frozen=True)
class AutoCandidate:
    """A variant auto-optimize tries on a runtime: ``method`` None is the FP32 model in the runtime's format."""

    label: str
    method: str | None = None
    precision: str | None = None  # inference precision hint (OpenVINO); None: the device default
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    sources: tuple[str, ...] | None = None  # only from these formats (None: any the runtime can be reached from)


@dataclass(frozen=True)
class RuntimeDecl:
    name: str
    label: str
    module: str
    formats: tuple[str, ...]  # ModelFormat values it runs
    native: tuple[str, ...] = ()  # formats it is the default runtime of
    optimizes: tuple[str, ...] = ()  # formats whose default optimization target it is
    pip: tuple[str, ...] = ()  # what a deployment package (or an environment) installs for it
    package: bool = False  # a deployment package can be made for it
    check_precision: str | None = None  # precision hint for numerical checks (OpenVINO: f32, not bf16)
    env: str = "default"
    presets: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict, hash=False, compare=False)
    auto: tuple[AutoCandidate, ...] = ()  # what auto-optimize tries on it (traps measured on x86 left out)


@dataclass(frozen=True)
class ConverterDecl:
    name: str
    module: str
    sources: tuple[str, ...]
    target: str
    env: str = "default"


@dataclass(frozen=True)
class OptimizerDecl:
    runtime: str  # whose format it produces ("any": keeps the source format)
    method: str
    module: str
    env: str = "default"
    options: tuple[str, ...] = ()  # the OptimizeOptions fields it reads, besides COMMON_OPTIMIZE_OPTIONS

    @property
    def key(self) -> str:
        return f"{self.runtime}:{self.method}"


_TF = ("keras", "h5", "savedmodel")
_R = "edgestudio.backends.runtimes."
_C = "edgestudio.backends.converters."
_O = "edgestudio.backends.optimizers."

BUILTIN_RUNTIMES: tuple[RuntimeDecl, ...] = (
    RuntimeDecl("onnxruntime", "ONNX Runtime", _R + "onnxruntime", ("onnx", "ort"), native=("onnx", "ort"),
                optimizes=("onnx", "ort"), pip=("onnxruntime",), package=True, presets={
                    "max speed": ("int8-static", {"activation_type": "uint8", "per_channel": True}),
                    "balanced": ("int8-static", {"calibration_method": "percentile"}),
                    "max accuracy": ("fp16", {})}, auto=(
                    AutoCandidate("ORT FP32"),
                    # not dynamic INT8 (several times slower for CNNs), not S8S8 (gains nothing on x86)
                    AutoCandidate("ORT INT8 static U8S8", "int8-static", options={
                        "activation_type": "uint8", "weight_type": "int8", "per_channel": True}))),
    RuntimeDecl("openvino", "OpenVINO", _R + "openvino", ("openvino", "onnx", "tflite"), native=("openvino",),
                optimizes=("openvino",), pip=("openvino",), package=True, check_precision="f32", presets={
                    "max speed": ("int8-static", {"preset": "performance"}),
                    "balanced": ("int8-accuracy-aware", {"preset": "mixed"}),
                    "max accuracy": ("fp16", {})}, auto=(
                    AutoCandidate("OpenVINO FP32 (device default precision)"),  # bf16 on AMX: its own accuracy
                    AutoCandidate("OpenVINO FP32 (f32 hint)", precision="f32"),
                    AutoCandidate("OpenVINO INT8 NNCF", "int8-static", options={"preset": "performance"}))),
    RuntimeDecl("litert", "LiteRT / TFLite", _R + "litert", ("tflite",), native=("tflite",),
                optimizes=("tflite", "keras", "h5", "savedmodel"), pip=("ai-edge-litert",), package=True, presets={
                    "max speed": ("int8-static", {}), "balanced": ("int8-dynamic", {}),
                    "max accuracy": ("fp16", {})}, auto=(
                    AutoCandidate("LiteRT FP32", sources=(*_TF, "tflite")),
                    # TFLite quantization needs the TensorFlow model
                    AutoCandidate("LiteRT INT8 full-integer", "int8-static", sources=_TF),
                    AutoCandidate("LiteRT INT8 dynamic-range", "int8-dynamic", sources=_TF))),
    RuntimeDecl("tensorflow", "TensorFlow", _R + "tensorflow", ("keras", "h5", "savedmodel"),
                native=("keras", "h5", "savedmodel"), pip=("tensorflow-cpu",)),
    # in a real browser (headless Chromium; onnxruntime-web vendored from npm, served from loopback)
    RuntimeDecl("ort-web", "ONNX Runtime Web (browser)", _R + "ort_web", ("onnx", "ort"), package=True),
    RuntimeDecl("tfjs", "TensorFlow.js (browser)", _R + "tfjs_web", ("tfjs",), package=True),
    RuntimeDecl("tfjs-graph", "TF.js graph in TensorFlow", _R + "tfjs_graph", ("tfjs",), native=("tfjs",),
                pip=("tfjs-graph-converter", "tensorflow-cpu")),
    # PyTorch lives in an environment of its own (a ~190 MB CPU wheel the app does not need otherwise)
    RuntimeDecl("torch", "PyTorch", _R + "torch", ("torchscript", "pt2"), native=("torchscript", "pt2"),
                pip=("torch",), env="torch"),
    # Apache TVM: a compiler; its compiled libraries run in its environment (its FFI pin clashes with nothing here,
    # but it is 450 MB the app does not need otherwise)
    RuntimeDecl("tvm", "Apache TVM", _R + "tvm", ("tvm",), native=("tvm",), pip=("apache-tvm",), env="tvm"),
    # ExecuTorch: PyTorch's own edge runtime (.pte, XNNPACK delegate), in an environment of its own
    RuntimeDecl("executorch", "ExecuTorch", _R + "executorch", ("pte",), native=("pte",),
                pip=("executorch", "torch"), package=True, env="executorch"),
)

BUILTIN_CONVERTERS: tuple[ConverterDecl, ...] = (
    ConverterDecl("keras-export", _C + "keras_to_savedmodel", ("keras", "h5"), "savedmodel"),
    ConverterDecl("onnxslim", _C + "onnx_simplify", ("onnx",), "onnx"),
    ConverterDecl("onnx-ort", _C + "onnx_to_ort", ("onnx",), "ort"),
    ConverterDecl("onnx2tf", _C + "onnx_to_tflite", ("onnx",), "tflite"),
    ConverterDecl("onnx2tf-savedmodel", _C + "onnx_to_savedmodel", ("onnx",), "savedmodel"),
    ConverterDecl("tf2onnx", _C + "tf_to_onnx", ("keras", "h5", "savedmodel"), "onnx"),
    ConverterDecl("tf-tflite", _C + "tf_to_tflite", ("keras", "h5", "savedmodel"), "tflite"),
    ConverterDecl("tflite2onnx", _C + "tflite_to_onnx", ("tflite",), "onnx"),
    ConverterDecl("openvino", _C + "to_openvino", ("onnx", "savedmodel", "tflite"), "openvino"),
    ConverterDecl("tensorflowjs", _C + "tf_to_tfjs", ("keras", "h5", "savedmodel"), "tfjs"),
    ConverterDecl("torch.onnx", _C + "torch_to_onnx", ("torchscript", "pt2"), "onnx", env="torch"),
    # LiteRT Torch: PyTorch -> TFLite without ONNX; its own environment (JAX and MLIR converter, ~1 GB beside torch)
    ConverterDecl("litert-torch", _C + "torch_to_tflite", ("torchscript", "pt2"), "tflite", env="litert-torch"),
    ConverterDecl("tvm-relax", _C + "onnx_to_tvm", ("onnx",), "tvm", env="tvm"),
    ConverterDecl("executorch", _C + "torch_to_executorch", ("torchscript", "pt2"), "pte", env="executorch"),
)


def _pinned(dist: str) -> str:
    """``dist==<the version installed here>`` (an environment then matches the app), or plain ``dist``."""
    import importlib.metadata

    try:
        return f"{dist}=={importlib.metadata.version(dist)}"
    except importlib.metadata.PackageNotFoundError:
        return dist


#: Python environments backends need, by name: what `edgestudio envs create NAME` installs when given no
#: requirements. onnx/onnxruntime/numpy are pinned to the app's, so checks in the environment match the app's.
ENVIRONMENTS: dict[str, Any] = {
    "torch": lambda: ["torch==2.13.0", "onnxscript==0.7.2", _pinned("onnx"), _pinned("onnxruntime"), _pinned("numpy")],
    # LiteRT Torch (formerly ai-edge-torch) brings JAX, transformers and the LiteRT converter: kept apart from torch
    "litert-torch": lambda: ["torch==2.13.0", "litert-torch==0.10.0", _pinned("ai-edge-litert"), _pinned("onnx"),
                             _pinned("numpy")],
    # ExecuTorch 1.5 runs on torch 2.13 (its wheel pins no torch): export, XNNPACK lowering and the runtime
    "executorch": lambda: ["torch==2.13.0", "executorch==1.5.1", _pinned("onnx"), _pinned("numpy")],
    # apache-tvm-ffi 0.1.15 crashes (SIGSEGV in ToJSONGraph) when MetaSchedule tunes: pinned to 0.1.14.post0;
    # xgboost-cpu is MetaSchedule's cost model; psutil and cloudpickle its builder/runner pool
    "tvm": lambda: ["apache-tvm==0.27.0.post1", "apache-tvm-ffi==0.1.14.post0", "xgboost-cpu==3.2.0", "scipy",
                    "psutil", "cloudpickle", _pinned("onnx"), _pinned("onnxruntime"), _pinned("numpy")],
    # Google's Model Explorer (a graph viewer beside Netron: two graphs side by side, per-node overlays), served by
    # a process of this environment: its TFLite adapter is a 480 MB native library and it brings Flask and IPython,
    # none of which the app needs (edgestudio/execution/model_explorer.py)
    "model-explorer": lambda: ["ai-edge-model-explorer==0.1.34", "model-explorer-onnx==0.4.2", _pinned("onnx"),
                               _pinned("numpy")],
}


def environment_requirements(name: str) -> list[str] | None:
    """The catalog's requirements for environment ``name`` (None: not one the catalog declares)."""
    make = ENVIRONMENTS.get(name)
    return list(make()) if make else None


def current_env() -> str:
    """The environment this process runs in ("default": the app's own)."""
    return os.environ.get("EDGESTUDIO_ENV", "default")


def envs_root() -> Path:
    """Where Python environments live (``EDGESTUDIO_ENVS`` moves them)."""
    override = os.environ.get("EDGESTUDIO_ENVS")
    if override:
        return Path(override)
    try:
        from platformdirs import user_data_dir
    except ImportError:  # a device agent's minimal install: the XDG default platformdirs would give
        return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "edgestudio" / "envs"
    return Path(user_data_dir("edgestudio", appauthor=False)) / "envs"


def env_ready(name: str) -> bool:
    return (envs_root() / name / "env.json").is_file()


def format_env(fmt: str) -> str:
    """The environment models of this format run in (their native runtime's)."""
    r = next((r for r in runtimes() if fmt in r.native), None)
    return r.env if r else "default"


def converter_env(name: str) -> str:
    return next((c.env for c in converters() if c.name == name), "default")


def module_env(module: str) -> str:
    """The environment of the backend implemented in ``module`` ("default" unless the catalog says)."""
    for entry in (*runtimes(), *converters(), *optimizers()):
        if entry.module == module:
            return entry.env
    return "default"

# options every method takes: data, the accuracy and drift guards, the input specification
COMMON_OPTIMIZE_OPTIONS = ("calibration", "dataset", "max_drop", "inputs", "min_cosine", "keep_lossy")

BUILTIN_OPTIMIZERS: tuple[OptimizerDecl, ...] = (
    OptimizerDecl("onnxruntime", "fp16", _O + "ort_fp16"),
    OptimizerDecl("onnxruntime", "graph-opt", _O + "ort_graph", options=("level",)),
    OptimizerDecl("onnxruntime", "int8-dynamic", _O + "ort_int8_dynamic", options=("per_channel", "weight_type")),
    OptimizerDecl("onnxruntime", "int8-static", _O + "ort_int8_static", options=(
        "subset_size", "calibration_method", "activation_type", "weight_type", "per_channel", "ignored_scope")),
    OptimizerDecl("openvino", "fp16", _O + "ov_fp16"),
    OptimizerDecl("openvino", "int8-static", _O + "ov_int8", options=("subset_size", "preset", "ignored_scope")),
    OptimizerDecl("openvino", "int8-accuracy-aware", _O + "ov_accuracy_aware",
                  options=("subset_size", "preset", "ignored_scope")),
    OptimizerDecl("openvino", "weights-int8", _O + "ov_weights", options=("ignored_scope",)),
    OptimizerDecl("openvino", "weights-int4", _O + "ov_weights", options=("ratio", "group_size", "ignored_scope")),
    OptimizerDecl("litert", "fp16", _O + "tflite_fp16"),
    OptimizerDecl("litert", "int8-dynamic", _O + "tflite_dynamic"),
    OptimizerDecl("litert", "int8-static", _O + "tflite_int8", options=("subset_size", "io_type", "ignored_scope")),
    # LiteRT Quantizer quantizes a .tflite where it is (no round trip through ONNX and a SavedModel); its classes
    # extend the TFLite-converter ones above and take over their keys (a later entry of a key wins)
    OptimizerDecl("litert", "int8-static", _O + "litert_quantizer", options=("subset_size", "io_type", "ignored_scope")),
    OptimizerDecl("litert", "int8-dynamic", _O + "litert_quantizer", options=("ignored_scope",)),
    OptimizerDecl("litert", "weights-int8", _O + "litert_quantizer", options=("per_channel", "ignored_scope")),
    OptimizerDecl("any", "prune", _O + "prune", options=("sparsity",)),
    # ExecuTorch's PT2E INT8 (the XNNPACK quantizer), in its environment
    OptimizerDecl("executorch", "int8-static", _O + "executorch_int8", env="executorch",
                  options=("per_channel", "delegate")),
)


class CatalogError(EdgeStudioError):
    """An extra catalog file that cannot be used."""


def _extra_files() -> list[Path]:
    return [Path(p) for p in os.environ.get("EDGESTUDIO_CATALOG", "").split(os.pathsep) if p.strip()]


def _tuple(d: dict[str, Any], key: str) -> tuple[str, ...]:
    v = d.get(key, ())
    return tuple(str(x) for x in ([v] if isinstance(v, str) else v))


@cache
def _load(files: tuple[Path, ...]) -> tuple[tuple[RuntimeDecl, ...], tuple[ConverterDecl, ...], tuple[OptimizerDecl, ...]]:
    runtimes, converters, optimizers = list(BUILTIN_RUNTIMES), list(BUILTIN_CONVERTERS), list(BUILTIN_OPTIMIZERS)
    for f in files:
        try:
            doc = tomllib.loads(f.read_text("utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise CatalogError(f, f"cannot read the catalog file ({exc})") from None
        try:
            for d in doc.get("runtime", []):
                runtimes.append(RuntimeDecl(
                    str(d["name"]), str(d.get("label", d["name"])), str(d["module"]), _tuple(d, "formats"),
                    _tuple(d, "native"), _tuple(d, "optimizes"), _tuple(d, "pip"), bool(d.get("package", False)),
                    d.get("check_precision"), str(d.get("env", "default")), auto=tuple(
                        AutoCandidate(str(a["label"]), a.get("method"), a.get("precision"), dict(a.get("options", {})),
                                      _tuple(a, "sources") or None) for a in d.get("auto", []))))
            for d in doc.get("converter", []):
                converters.append(ConverterDecl(str(d["name"]), str(d["module"]), _tuple(d, "sources"),
                                                str(d["target"]), str(d.get("env", "default"))))
            for d in doc.get("optimizer", []):
                optimizers.append(OptimizerDecl(str(d["runtime"]), str(d["method"]), str(d["module"]),
                                                str(d.get("env", "default")), _tuple(d, "options")))
        except KeyError as exc:
            raise CatalogError(f, f"an entry lacks {exc}") from None
    return tuple(runtimes), tuple(converters), tuple(optimizers)


def runtimes() -> tuple[RuntimeDecl, ...]:
    return _load(tuple(_extra_files()))[0]


def converters() -> tuple[ConverterDecl, ...]:
    return _load(tuple(_extra_files()))[1]


def optimizers() -> tuple[OptimizerDecl, ...]:
    return _load(tuple(_extra_files()))[2]


def modules(kind: str) -> list[str]:
    """The modules a registry imports: ``kind`` is runtimes, converters or optimizers."""
    entries: tuple[Any, ...] = {"runtimes": runtimes, "converters": converters, "optimizers": optimizers}[kind]()
    return list(dict.fromkeys(e.module for e in entries))


def runtime(name: str) -> RuntimeDecl | None:
    return next((r for r in runtimes() if r.name == name), None)


def runtime_names(*, packaged: bool = False, optimizing: bool = False) -> list[str]:
    """Runtime names in catalog order (``packaged``: deployment package targets; ``optimizing``: runtimes
    that have optimizers)."""
    opt = {o.runtime for o in optimizers()}
    return [r.name for r in runtimes() if (not packaged or r.package) and (not optimizing or r.name in opt)]


def native_runtime(fmt: str) -> str | None:
    """The default runtime of a format (ModelFormat value)."""
    return next((r.name for r in runtimes() if fmt in r.native), None)


def optimize_runtime(fmt: str) -> str | None:
    """The runtime a model of this format is optimized for by default."""
    return next((r.name for r in runtimes() if fmt in r.optimizes), None)


def output_format(runtime_name: str) -> str | None:
    """The format a runtime's optimizers produce: its first native format (None for "any")."""
    r = runtime(runtime_name)
    return r.native[0] if r and r.native else None


def optimizer(runtime_name: str, method: str) -> OptimizerDecl | None:
    """The catalog entry of ``method`` for ``runtime_name`` (or the runtime-independent one, e.g. prune)."""
    found = {o.key: o for o in optimizers()}
    return found.get(f"{runtime_name}:{method}") or found.get(f"any:{method}")


def optimizer_options(runtime_name: str, method: str) -> tuple[str, ...]:
    """The options ``method`` for ``runtime_name`` reads, besides the common ones: what its form shows and
    which of the CLI's option flags apply."""
    decl = optimizer(runtime_name, method)
    return decl.options if decl else ()


def methods() -> list[str]:
    return list(dict.fromkeys(o.method for o in optimizers()))


def preset(name: str, runtime_name: str) -> tuple[str, dict[str, Any]] | None:
    r = runtime(runtime_name)
    return r.presets.get(name) if r else None
