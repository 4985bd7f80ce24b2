"""Model formats, detected from a file's content (never from its extension alone)."""

from __future__ import annotations

import enum
import json
import zipfile
from pathlib import Path

from edgestudio.core.errors import ModelFormatError


class ModelFormat(str, enum.Enum):
    ONNX = "onnx"
    ORT = "ort"  # ONNX Runtime's flatbuffer format
    TFLITE = "tflite"
    KERAS = "keras"  # Keras v3 zip (.keras)
    KERAS_H5 = "h5"  # legacy Keras HDF5
    SAVED_MODEL = "savedmodel"
    OPENVINO = "openvino"  # IR: .xml + .bin
    TFJS = "tfjs"

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def default_suffix(self) -> str:
        return _SUFFIXES[self]

    @classmethod
    def parse(cls, text: str) -> ModelFormat:
        key = text.strip().lower().lstrip(".")
        aliases = {"ir": "openvino", "xml": "openvino", "saved_model": "savedmodel", "hdf5": "h5",
                   "lite": "tflite", "litert": "tflite", "tf.js": "tfjs", "tensorflowjs": "tfjs"}
        key = aliases.get(key, key)
        try:
            return cls(key)
        except ValueError:
            names = ", ".join(f.value for f in cls)
            raise ValueError(f"unknown format {text!r} (one of: {names})") from None


_LABELS = {
    ModelFormat.ONNX: "ONNX",
    ModelFormat.ORT: "ONNX Runtime (.ort)",
    ModelFormat.TFLITE: "TFLite / LiteRT",
    ModelFormat.KERAS: "Keras v3",
    ModelFormat.KERAS_H5: "Keras HDF5",
    ModelFormat.SAVED_MODEL: "TensorFlow SavedModel",
    ModelFormat.OPENVINO: "OpenVINO IR",
    ModelFormat.TFJS: "TensorFlow.js",
}
_SUFFIXES = {
    ModelFormat.ONNX: ".onnx",
    ModelFormat.ORT: ".ort",
    ModelFormat.TFLITE: ".tflite",
    ModelFormat.KERAS: ".keras",
    ModelFormat.KERAS_H5: ".h5",
    ModelFormat.SAVED_MODEL: "",
    ModelFormat.OPENVINO: ".xml",
    ModelFormat.TFJS: "",
}

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ZIP_MAGIC = b"PK\x03\x04"
# Field numbers of onnx.ModelProto; a file whose top-level protobuf fields are all among these,
# with a graph, is an ONNX model.
_ONNX_MODEL_FIELDS = {1, 2, 3, 4, 5, 6, 7, 8, 14, 20, 25, 26}


def detect_format(path: str | Path) -> ModelFormat:
    """Return the format of the model at ``path`` or raise :class:`ModelFormatError` saying why not."""
    p = Path(path)
    if not p.exists():
        raise ModelFormatError(p, "no such file or folder")
    if p.is_dir():
        return _detect_folder(p)
    size = p.stat().st_size
    if size == 0:
        raise ModelFormatError(p, "empty file")
    with p.open("rb") as fh:
        head = fh.read(64)
    if head.startswith(_ZIP_MAGIC):
        return _detect_zip(p)
    if head.startswith(_HDF5_MAGIC):
        return _detect_h5(p)
    if size >= 8 and head[4:8] == b"TFL3":
        _check_flatbuffer(p, head, size, "TFLite")
        return ModelFormat.TFLITE
    if size >= 8 and head[4:8] == b"ORTM":
        _check_flatbuffer(p, head, size, "ONNX Runtime")
        return ModelFormat.ORT
    stripped = head.lstrip()
    if stripped.startswith(b"<"):
        return _detect_xml(p)
    if stripped.startswith(b"{"):
        return _detect_json(p)
    if p.name == "saved_model.pb":
        raise ModelFormatError(p, "this is the graph file of a SavedModel", hint="pass its folder instead")
    if _looks_like_onnx(p, size):
        return ModelFormat.ONNX
    raise ModelFormatError(
        p, "not a recognised model format (expected ONNX, TFLite, Keras, SavedModel, OpenVINO IR or TF.js)"
    )


def _detect_folder(p: Path) -> ModelFormat:
    if (p / "saved_model.pb").is_file() or (p / "saved_model.pbtxt").is_file():
        return ModelFormat.SAVED_MODEL
    if (p / "model.json").is_file():
        _detect_json(p / "model.json")
        return ModelFormat.TFJS
    raise ModelFormatError(p, "folder is neither a SavedModel (no saved_model.pb) nor a TF.js model (no model.json)")


def _check_flatbuffer(p: Path, head: bytes, size: int, what: str) -> None:
    root = int.from_bytes(head[0:4], "little")
    if root < 8 or root >= size:
        raise ModelFormatError(p, f"corrupt {what} file (root table offset {root} outside {size} bytes)")


def _detect_zip(p: Path) -> ModelFormat:
    try:
        with zipfile.ZipFile(p) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFormatError(p, f"corrupt or truncated zip archive ({exc})") from None
    if "config.json" in names and ("model.weights.h5" in names or "metadata.json" in names):
        return ModelFormat.KERAS
    raise ModelFormatError(p, "zip archive is not a Keras v3 model (no config.json / model.weights.h5)")


def _detect_h5(p: Path) -> ModelFormat:
    import h5py  # ships with tensorflow; light

    try:
        with h5py.File(p, "r") as f:
            has_model = "model_config" in f.attrs
    except OSError as exc:
        raise ModelFormatError(p, f"corrupt or truncated HDF5 file ({' '.join(str(exc).split())[:160]})") from None
    if not has_model:
        raise ModelFormatError(p, "HDF5 file holds no Keras model config (weights only?)")
    return ModelFormat.KERAS_H5


def _detect_xml(p: Path) -> ModelFormat:
    with p.open("rb") as fh:
        text = fh.read(4096).decode("utf-8", "replace")
    if "<net" not in text:
        raise ModelFormatError(p, "XML file is not an OpenVINO IR (no <net> element)")
    weights = p.with_suffix(".bin")
    if not weights.is_file():
        raise ModelFormatError(p, f"OpenVINO IR weights file {weights.name} is missing beside it")
    return ModelFormat.OPENVINO


def _detect_json(p: Path) -> ModelFormat:
    if p.stat().st_size > 256 * 1024 * 1024:
        raise ModelFormatError(p, "JSON file too large to be a TF.js model.json")
    try:
        doc = json.loads(p.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(p, f"invalid JSON ({exc})") from None
    if isinstance(doc, dict) and "modelTopology" in doc:
        return ModelFormat.TFJS
    raise ModelFormatError(p, "JSON file is not a TF.js model.json (no modelTopology)")


def _read_varint(fh) -> int | None:  # type: ignore[no-untyped-def]
    result = shift = 0
    for _ in range(10):
        b = fh.read(1)
        if not b:
            return None
        result |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return result
        shift += 7
    return None


def _looks_like_onnx(p: Path, size: int) -> bool:
    """Walk the top-level protobuf fields without parsing the graph (cheap on large files).

    Raises :class:`ModelFormatError` for an ONNX model whose fields run past the end (truncated).
    """
    seen: set[int] = set()
    with p.open("rb") as fh:
        for _ in range(64):
            pos = fh.tell()
            if pos >= size:
                break
            tag = _read_varint(fh)
            if tag is None:
                return False
            field, wire = tag >> 3, tag & 7
            if field not in _ONNX_MODEL_FIELDS:
                return False
            if wire == 0:
                if _read_varint(fh) is None:
                    return False
            elif wire == 2:
                length = _read_varint(fh)
                if length is None:
                    return False
                if fh.tell() + length > size:
                    if 1 in seen or field == 7:
                        raise ModelFormatError(p, f"truncated ONNX file (a field runs {fh.tell() + length - size} bytes past the end)")
                    return False
                fh.seek(length, 1)
            else:
                return False
            seen.add(field)
    return 7 in seen and (1 in seen or 8 in seen)


def _skip_value(fh, wire: int) -> int | None:  # type: ignore[no-untyped-def]
    """Skip one protobuf value; returns the length of a length-delimited one (after skipping it), else 0."""
    if wire == 0:
        return 0 if _read_varint(fh) is not None else None
    if wire == 2:
        length = _read_varint(fh)
        if length is None:
            return None
        fh.seek(length, 1)
        return length
    if wire in (1, 5):
        fh.seek(8 if wire == 1 else 4, 1)
        return 0
    return None


def count_onnx_nodes(p: Path) -> int:
    """Count the nodes of an ONNX graph by walking the protobuf wire format (initializers are skipped, not read)."""
    with p.open("rb") as fh:
        size = p.stat().st_size
        graph: tuple[int, int] | None = None
        while fh.tell() < size:
            tag = _read_varint(fh)
            if tag is None:
                break
            length = _skip_value(fh, tag & 7)
            if length is None:
                break
            if tag >> 3 == 7 and tag & 7 == 2:  # ModelProto.graph
                graph = (fh.tell() - length, length)
        if graph is None:
            raise ModelFormatError(p, "ONNX file has no graph")
        fh.seek(graph[0])
        end = graph[0] + graph[1]
        nodes = 0
        while fh.tell() < end:
            tag = _read_varint(fh)
            if tag is None or _skip_value(fh, tag & 7) is None:
                raise ModelFormatError(p, "truncated or corrupt ONNX graph")
            nodes += tag == (1 << 3 | 2)  # GraphProto.node
        return nodes
