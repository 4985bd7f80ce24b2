"""Shared NNCF helpers for the OpenVINO optimizers (not an optimizer: the registry skips '_' modules)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgestudio.backends.optimizers.base import OptimizeOptions


def read_ir(src: Path) -> Any:
    from edgestudio.backends.runtimes.openvino import ov_core
    from edgestudio.core.formats import native_path

    return ov_core().read_model(native_path(src))


def save_ir(model: Any, dst: Path) -> None:
    import openvino as ov

    ov.save_model(model, str(dst), compress_to_fp16=False)


def ignored_scope(opts: OptimizeOptions) -> Any:
    import nncf

    if not opts.ignored_scope:
        return None
    names = [n for n in opts.ignored_scope if not n.startswith("type:")]
    types = [n[5:] for n in opts.ignored_scope if n.startswith("type:")]
    return nncf.IgnoredScope(names=names, types=types)


def quiet_nncf() -> None:
    import logging

    logging.getLogger("nncf").setLevel(logging.WARNING)
