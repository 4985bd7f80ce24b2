"""ONNX -> TFLite with onnx2tf (NCHW inputs become NHWC unless layout=nchw; NHWC inputs stay as they are).

onnx2tf pins old versions of the whole stack; it is installed without its pins (see the Makefile) and
runs fine on ours. The ONNX model is simplified with onnxslim first (onnx2tf needs constant weights), and
onnx2tf's test-image download is replaced by local synthetic images: nothing is fetched at run time.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from edgestudio.backends.converters.base import CONVERTERS, ConversionError, Converter, ConvertOptions
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
        with tempfile.TemporaryDirectory(prefix="edgestudio-onnx2tf-") as tmp:
            out = run_onnx2tf(src, opts, Path(tmp), progress=progress, cancel=cancel)
            produced = out / "model_float32.tflite"
            if not produced.exists():
                raise ConversionError(src, "onnx2tf finished without writing a float32 TFLite model",
                                      converter=self.name)
            shutil.move(str(produced), dst)

    def layout_change(self, opts: ConvertOptions) -> str | None:
        return None if opts.layout == "nchw" else "nhwc"

    def explain(self, exc: BaseException, src: Path, fmt: ModelFormat) -> ConversionError:
        err = super().explain(exc, src, fmt)
        err.hint = ("convert the original Keras/SavedModel to TFLite directly, or keep the model on "
                    "onnxruntime / openvino")
        return err


def run_onnx2tf(src: Path, opts: ConvertOptions, work: Path, *, progress: ProgressCallback,
                cancel: CancelToken) -> Path:
    """Run onnx2tf on a simplified copy of ``src`` in ``work``; returns its output folder (a SavedModel with
    signatures, and float32/float16 TFLite files)."""
    from edgestudio.core.loaders import quiet_tensorflow

    quiet_tensorflow()
    import onnx2tf
    import onnx2tf.onnx2tf as impl

    from edgestudio.backends.converters.onnx_simplify import slim

    impl.download_test_image_data = _synthetic_test_images  # never reach for the network
    progress(0.05, "simplifying (constant weights for onnx2tf)")
    slim(src, work / "model.onnx")  # a copy: onnx2tf rewrites its input in place
    cancel.check()
    progress(0.2, "converting with onnx2tf")
    kwargs: dict = {"non_verbose": True, "output_signaturedefs": True, "disable_strict_mode": True}
    if opts.shapes:
        kwargs["overwrite_input_shape"] = [f"{k}:{','.join(map(str, v))}" for k, v in opts.shapes.items() if k]
    keep = _input_names(work / "model.onnx") if opts.layout == "nchw" else _channels_last_inputs(work / "model.onnx")
    if keep:  # onnx2tf reads every 4-D input as NCHW: an NHWC input would be transposed once more
        # (onnx2tf renames 'a:0' to 'a__0' before it looks the names up; unknown names are ignored)
        kwargs["keep_ncw_or_nchw_or_ncdhw_input_names"] = keep + [k.replace(":", "__") for k in keep if ":" in k]
    onnx2tf.convert(input_onnx_file_path=str(work / "model.onnx"), output_folder_path=str(work / "out"), **kwargs)
    return work / "out"


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
