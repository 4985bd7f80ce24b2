"""Compiled TVM modules (EdgeStudio's own folder format)."""

from __future__ import annotations

import json
from pathlib import Path

from edgestudio.core.errors import ModelFormatError
from edgestudio.core.formats import ModelFormat
from edgestudio.core.modelinfo import ModelInfo, TensorSpec


def _inspect_tvm(p: Path) -> ModelInfo:
    """What the compiler recorded beside the library (reading it needs no TVM)."""
    try:
        doc = json.loads((p / "tvm.json").read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFormatError(p, f"unreadable tvm.json ({exc})") from None
    specs = [[TensorSpec(t["name"], list(t["shape"]), t["dtype"]) for t in doc.get(k, [])] for k in ("inputs", "outputs")]
    return ModelInfo(ModelFormat.TVM, str(p), 0, specs[0], specs[1], dict(doc.get("ops") or {}), doc.get("parameters"),
                     None, None, f"apache-tvm {doc.get('tvm_version', '?')} ({doc.get('target', {}).get('mcpu', '?')}"
                     f", {'tuned ' + str(doc.get('tuning', {}).get('trials')) + ' trials' if doc.get('tuning') else 'untuned'})")
