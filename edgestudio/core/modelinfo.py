"""What inspection returns: a plain, JSON-serialisable description of a model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgestudio.core.formats import ModelFormat

Dim = int | str  # a static size, or the name of a dynamic dimension ("batch", "?")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: list[Dim]
    dtype: str  # numpy dtype name: "float32", "int64", ...

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) and d >= 0 for d in self.shape)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TensorSpec:
        return cls(d["name"], list(d["shape"]), d["dtype"])


@dataclass
class ModelInfo:
    format: ModelFormat
    path: str
    size_bytes: int
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    ops: dict[str, int] = field(default_factory=dict)
    parameters: int | None = None
    macs: int | None = None
    opset: int | None = None
    producer: str | None = None
    macs_at: str | None = None  # the input shapes the MACs were counted at
    macs_note: str | None = None  # why there is no MACs figure (e.g. dynamic inputs: needs --shape)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["format"] = self.format.value
        d["inputs"] = [t.to_dict() for t in self.inputs]
        d["outputs"] = [t.to_dict() for t in self.outputs]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelInfo:
        d = dict(d)
        d["format"] = ModelFormat(d["format"])
        d["inputs"] = [TensorSpec.from_dict(t) for t in d["inputs"]]
        d["outputs"] = [TensorSpec.from_dict(t) for t in d["outputs"]]
        return cls(**d)


def model_size_bytes(path: str | Path, fmt: ModelFormat) -> int:
    """Bytes on disk of everything the model consists of (folder contents, IR .xml + .bin)."""
    p = Path(path)
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    size = p.stat().st_size
    if fmt is ModelFormat.OPENVINO and p.with_suffix(".bin").is_file():
        size += p.with_suffix(".bin").stat().st_size
    return size
