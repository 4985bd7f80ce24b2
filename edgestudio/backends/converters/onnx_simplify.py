"""ONNX -> ONNX simplification with onnxslim (constant folding, dead-node removal, fusions)."""

from __future__ import annotations

from pathlib import Path

from edgestudio.backends.converters.base import CONVERTERS, Converter, ConvertOptions
from edgestudio.core.formats import ModelFormat
from edgestudio.core.progress import CancelToken, ProgressCallback


def slim(src: Path, dst: Path, input_shapes: list[str] | None = None) -> None:
    """Simplify ``src`` into ``dst``; ``input_shapes`` ("name:1,3,224,224") fixes dynamic input dims first."""
    import contextlib
    import io

    import onnxslim

    with contextlib.redirect_stdout(io.StringIO()):  # its summary table is not ours to print
        onnxslim.slim(str(src), str(dst), **({"input_shapes": input_shapes} if input_shapes else {}))
    if not dst.exists():
        raise RuntimeError("onnxslim wrote no output")


@CONVERTERS.register
class OnnxSimplify(Converter):
    name = "onnxslim"
    label = "onnxslim"
    sources = frozenset({ModelFormat.ONNX})
    target = ModelFormat.ONNX
    requires = ("onnxslim",)
    distributions = ("onnxslim",)
    preference = 30
    quick_from = frozenset({ModelFormat.ONNX})
    tolerance = 1e-4

    @classmethod
    def output_path(cls, folder: Path, stem: str) -> Path:
        return folder / f"{stem}_slim.onnx"

    def convert(self, src: Path, fmt: ModelFormat, dst: Path, opts: ConvertOptions, *,
                progress: ProgressCallback, cancel: CancelToken) -> None:
        progress(0.2, "simplifying")
        slim(src, dst)
