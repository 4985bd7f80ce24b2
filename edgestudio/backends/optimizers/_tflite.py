"""Shared TFLite-converter helper for the LiteRT optimizers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgestudio.core.formats import ModelFormat


def convert(src: Path, fmt: ModelFormat, dst: Path, configure: Any) -> None:
    from edgestudio.backends.converters.tf_to_tflite import tflite_converter

    conv = tflite_converter(src, fmt)
    configure(conv)
    dst.write_bytes(conv.convert())
