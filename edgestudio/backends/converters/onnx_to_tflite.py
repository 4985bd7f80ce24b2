"""ONNX -> TFLite with onnx2tf (NCHW inputs become NHWC unless layout=nchw; NHWC inputs stay as they are).

onnx2tf pins old versions of the whole stack; it is installed without its pins (see the Makefile) and
runs fine on ours. The ONNX model is simplified with onnxslim first (onnx2tf needs constant weights), and
onnx2tf's test-image download is replaced by local synthetic images: nothing is fetched at run time.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from edgestudio.backends.converters.base import CONVERTERS, ConversionError, Converter, ConvertOptions
from edgestudio.core.errors import clean_message
from edgestudio.core.formats import ModelFormat
from edgestudio.core.progress import CancelToken, ProgressCallback


def _synthetic_test_images():  # type: ignore[no-untyped-def]
    import numpy as np

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:128, 0:128] / 127.0
    base = np.stack([yy, xx, (yy + xx) / 2], axis=-1).astype(np.float32)
    return np.clip(base[None] * rng.random((20, 1, 1, 3)) + 0.1 * rng.random((20, 128, 128, 3)), 0, 1).astype(np.float32)


@CONVERTERS.register
class OnnxToTflite(Converter):
    name = "onnx2tf"
    label = "onnx2tf"
    sources = frozenset({ModelFormat.ONNX})
    target = ModelFormat.TFLITE
    requires = ("onnx2tf", "tensorflow", "onnxslim")
    distributions = ("onnx2tf", "tensorflow-cpu", "onnxslim")
    uses = ("shapes", "layout")
    preference = 40
    tolerance = 1e-3

    def convert(self, src: Path, fmt: ModelFormat, dst: Path, opts: ConvertOptions, *,
                progress: ProgressCallback, cancel: CancelToken) -> None:
        from edgestudio.core.inspection import tflite_custom_ops

        with tempfile.TemporaryDirectory(prefix="edgestudio-onnx2tf-") as tmp:
            out = run_onnx2tf(src, opts, Path(tmp), progress=progress, cancel=cancel)
            produced = out / "model_float32.tflite"
            if not produced.exists():
                raise ConversionError(src, "onnx2tf finished without writing a float32 TFLite model",
                                      converter=self.name)
            flex = [op for op in tflite_custom_ops(produced) if op.startswith("Flex")]
            pseudo = sorted({PSEUDO_FOR_FLEX[op] for op in flex if op in PSEUDO_FOR_FLEX})
            if flex and not opts.allow_tf_ops and len(pseudo) == len(flex):
                # the next route: onnx2tf's documented pseudo operators (-rtpo) in TFLite builtins; the parity
                # check judges the approximation
                progress(0.5, f"TensorFlow ops {', '.join(flex)} left: again with builtin replacements for "
                              f"{', '.join(pseudo)}")
                shutil.rmtree(out, ignore_errors=True)
                out = run_onnx2tf(src, opts, Path(tmp) / "again", progress=progress, cancel=cancel, pseudo=pseudo)
                produced = out / "model_float32.tflite"
                flex = [op for op in tflite_custom_ops(produced) if op.startswith("Flex")]
            if flex and not opts.allow_tf_ops:
                raise ConversionError(src, f"the TFLite result needs TensorFlow ops ({', '.join(flex)}) that LiteRT's "
                                           "builtin kernels lack", converter=self.name, op=flex[0][4:],
                                      hint="--allow-tf-ops keeps them (the device then needs the Flex delegate), or "
                                           "keep the model on onnxruntime / openvino")
            shutil.move(str(produced), dst)

    def layout_change(self, opts: ConvertOptions) -> str | None:
        return None if opts.layout == "nchw" else "nhwc"

    def explain(self, exc: BaseException, src: Path, fmt: ModelFormat) -> ConversionError:
        err = super().explain(exc, src, fmt)
        err.hint = ("convert the original Keras/SavedModel to TFLite directly, or keep the model on "
                    "onnxruntime / openvino")
        return err


#: TensorFlow (Flex) ops onnx2tf leaves in a TFLite model, and the ONNX op its -rtpo writes in builtins instead
PSEUDO_FOR_FLEX = {"FlexErf": "Erf", "FlexAsin": "Asin", "FlexAcos": "Acos", "FlexAtan": "Atan", "FlexGatherNd": "GatherND",
                   "FlexAbs": "Abs", "FlexNeg": "Neg", "FlexPow": "Power", "FlexMatMulInteger": "MatMulInteger"}


def run_onnx2tf(src: Path, opts: ConvertOptions, work: Path, *, progress: ProgressCallback,
                cancel: CancelToken, portable: bool = False, pseudo: list[str] | None = None) -> Path:
    """Run onnx2tf on a simplified copy of ``src`` in ``work``; returns its output folder (a SavedModel with
    signatures, and float32/float16 TFLite files)."""
    from edgestudio.core.loaders import quiet_tensorflow

    quiet_tensorflow()
    import onnx2tf
    import onnx2tf.onnx2tf as impl

    from edgestudio.backends.converters.onnx_simplify import slim

    impl.download_test_image_data = _synthetic_test_images  # never reach for the network
    # onnx2tf needs every dim fixed ("Dimension -1 must be >= 0" otherwise): the shapes are set in the graph
    # (onnxslim propagates them, so the result is static, as a microcontroller needs) and given as its -ois
    fixed = fixed_input_shapes(src, opts)
    ois = [f"{k}:{','.join(map(str, v))}" for k, v in fixed.items()]
    progress(0.05, "simplifying (constant weights for onnx2tf)" + (f", inputs fixed at {', '.join(ois)}" if ois else ""))
    work.mkdir(parents=True, exist_ok=True)
    slim(src, work / "model.onnx", input_shapes=ois)  # a copy: onnx2tf rewrites its input in place
    _valid_scope_names(work / "model.onnx")
    cancel.check()
    progress(0.2, "converting with onnx2tf")
    kwargs: dict = {"non_verbose": True, "output_signaturedefs": True, "disable_strict_mode": True}
    if ois:
        kwargs["overwrite_input_shape"] = ois
    if pseudo:
        kwargs["replace_to_pseudo_operators"] = [p.lower() for p in pseudo]  # its ops compare lower case
    if portable:  # grouped convolutions as separate ones: TF.js has no grouped conv2d
        kwargs["disable_group_convolution"] = True
    keep = _input_names(work / "model.onnx") if opts.layout == "nchw" else _channels_last_inputs(work / "model.onnx")
    if keep:  # onnx2tf reads every 4-D input as NCHW: an NHWC input would be transposed once more
        # (onnx2tf renames 'a:0' to 'a__0' before it looks the names up; unknown names are ignored)
        kwargs["keep_ncw_or_nchw_or_ncdhw_input_names"] = keep + [k.replace(":", "__") for k in keep if ":" in k]
    failed_at = _run_reporting_node(onnx2tf, work, kwargs)
    if failed_at is not None:
        node, op, exc = failed_at
        what = clean_message(exc, 240) or type(exc).__name__
        raise ConversionError(src, f"onnx2tf failed at node {node!r} ({op}): {what}", converter="onnx2tf", op=op,
                              node=node, hint=_hint_for(op, what))
    return work / "out"


def _run_reporting_node(onnx2tf: Any, work: Path, kwargs: dict[str, Any]) -> tuple[str, str, Exception] | None:
    """Run onnx2tf; on failure, the ONNX node it failed on (it logs ``onnx_op_name: ...`` through its own
    ``error``, silenced here), that node's op type, and the exception; None when it succeeded."""
    import onnx2tf.utils.common_functions as cf

    seen: list[str] = []
    original = cf.error

    def capture(*args: Any, **kw: Any) -> None:
        text = " ".join(str(a) for a in args)
        if text.startswith("onnx_op_name: "):
            seen.append(text[len("onnx_op_name: "):].strip())

    cf.error = capture
    try:
        onnx2tf.convert(input_onnx_file_path=str(work / "model.onnx"), output_folder_path=str(work / "out"),
                        **kwargs)
        return None
    except Exception as exc:  # noqa: BLE001 - named with its node below, or re-raised
        if not seen:
            raise
        import onnx

        node = seen[0]
        ops = {n.name: n.op_type for n in onnx.load(str(work / "model.onnx"), load_external_data=False).graph.node}
        return node, ops.get(node, ops.get(node.lstrip("/"), "unknown op")), exc
    finally:
        cf.error = original


def _hint_for(op: str, what: str) -> str:
    if "Dimension -1" in what or "None" in what:
        return "fix the dynamic dims with --shape NAME=dims (or real data with --input)"
    if "Dimensions must be equal" in what or "Incompatible shapes" in what:
        return (f"onnx2tf's NCHW -> NHWC transposition went wrong around this {op}: its parameter replacement JSON "
                "(onnx2tf's README) can fix that node; else keep the model on onnxruntime / openvino")
    return "keep the model on onnxruntime / openvino, or convert the original Keras/SavedModel to TFLite directly"


_SCOPE_BAD = re.compile(r"[^A-Za-z0-9_./>-]")


def _valid_scope_names(path: Path) -> None:
    """TensorFlow names a layer's scope after its ONNX node and refuses names outside ``[A-Za-z0-9_.\\/>-]``
    (Paddle exports ``Softmax@0``): such node names are rewritten, uniquely, in onnx2tf's copy."""
    import onnx

    m = onnx.load(str(path))
    names = {n.name for n in m.graph.node}
    changed = False
    for i, n in enumerate(m.graph.node):
        if n.name and _SCOPE_BAD.search(n.name):
            new = _SCOPE_BAD.sub("_", n.name)
            while new in names:
                new = f"{new}_{i}"
            names.add(new)
            n.name, changed = new, True
    if changed:
        onnx.save(m, str(path))


def fixed_input_shapes(path: Path, opts: ConvertOptions) -> dict[str, list[int]]:
    """A fixed shape for every input of the ONNX model ``path`` that has dynamic dims: from ``--shape`` (the converter's shapes
    and the input specification's), the ``--input`` arrays, a dim of the same name elsewhere, batch 1; a dim none
    of these fixes is a one-line error naming the input and the ``--shape`` to give."""
    from edgestudio.core.inputspec import InputSpec, resolve_shapes
    from edgestudio.core.inspection import inspect_model

    from edgestudio.core.errors import ModelFormatError

    try:
        specs = inspect_model(path).inputs
    except ModelFormatError:  # a graph onnx's checker refuses (an input without a shape): onnx2tf may still cope
        return {}
    spec = InputSpec.from_dict(opts.inputs).merged(InputSpec(shapes={k: list(v) for k, v in opts.shapes.items()}))
    # inputs of unknown rank are left to onnx2tf unless the user gave their shape
    dynamic = [s for s in specs if (s.shape != ["?"] and any(not isinstance(d, int) or d < 0 for d in s.shape))
               or (s.shape == ["?"] and (s.name in spec.shapes or (len(specs) == 1 and "" in spec.shapes)))]
    if not dynamic:
        return {}
    given = None
    if spec.data:  # a dynamic batch's rows are samples: one of them gives the shape
        by_name = {s.name: s for s in specs}
        given = {k: v[:1] if v.ndim == len(by_name[k].shape) and v.ndim and not (
                 isinstance(by_name[k].shape[0], int) and by_name[k].shape[0] >= 0) else v
                 for k, v in spec.arrays(specs).items()}
    known = [s for s in specs if s.shape != ["?"] or s in dynamic]
    shapes = resolve_shapes(known, spec, model=path, given=given)
    return {s.name: shapes[s.name] for s in dynamic}


def _input_names(path: Path) -> list[str]:
    import onnx

    g = onnx.load(str(path), format="protobuf", load_external_data=False).graph
    inits = {i.name for i in g.initializer}
    return [v.name for v in g.input if v.name not in inits]


def _channels_last_inputs(path: Path) -> list[str]:
    """Inputs that already look channels-last (N, H, W, C with C in 1/3/4 and not N, C, H, W)."""
    import onnx

    from edgestudio.core.inputspec import looks_channels_last

    g = onnx.load(str(path), format="protobuf", load_external_data=False).graph
    inits = {i.name for i in g.initializer}
    out = []
    for v in g.input:
        if v.name in inits or not v.type.tensor_type.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim]
        if looks_channels_last(dims):
            out.append(v.name)
    return out
