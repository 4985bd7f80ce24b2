"""A model's files on disk: which files it consists of, copies (private ones for libraries that write beside their
input), removal and the content hash the workspace identifies it by."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from pathlib import Path

from edgestudio.core.errors import EdgeStudioError, ModelFormatError, display
from edgestudio.core.formats import ModelFormat


def model_files(path: Path, fmt: ModelFormat) -> list[Path]:
    """The files a model consists of, in a stable order."""
    if path.is_dir():
        return sorted(f for f in path.rglob("*") if f.is_file())
    if fmt is ModelFormat.OPENVINO:
        return [path, path.with_suffix(".bin")]
    return [path]


def copy_model(src: Path, dst: Path) -> None:
    """Copy a model to ``dst``: a folder, a file, and an IR's .bin beside its .xml."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst, dirs_exist_ok=True)
    else:
        shutil.copy2(src, dst)
        if src.suffix == ".xml" and src.with_suffix(".bin").exists():
            shutil.copy2(src.with_suffix(".bin"), dst.with_suffix(".bin"))


def onnx_external_files(path: Path) -> list[str]:
    """The external-data files an ONNX model names (relative to its folder), read without loading the data."""
    try:
        import onnx
    except ImportError:
        return []
    from edgestudio.core.inspection import onnx_graphs

    try:
        model = onnx.load(str(path), format="protobuf", load_external_data=False)
    except Exception:  # noqa: BLE001 - an unreadable model: the library that reads it next says why
        return []
    out: list[str] = []
    for graph in onnx_graphs(model.graph):
        tensors = list(graph.initializer) + [a.t for n in graph.node for a in n.attribute if a.type == a.TENSOR]
        for t in tensors:
            if t.data_location == onnx.TensorProto.EXTERNAL:
                loc = next((e.value for e in t.external_data if e.key == "location"), None)
                if loc and loc not in out:
                    out.append(loc)
    return out


def private_copy(src: Path, fmt: ModelFormat, folder: Path) -> Path:
    """A copy of the model for a library that may write beside what it is given (ONNX Runtime's quantizer writes
    ``<model>-inferred.onnx`` beside its input, onnx2tf rewrites its input, tensorflowjs unzips beside it): the
    user's folder is never touched. ONNX external data and an IR's .bin come along (regular files of the model's
    folder only)."""
    from edgestudio.core.safety import member_file

    folder.mkdir(parents=True, exist_ok=True)
    name = src.name
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        name = "model" + "".join(c for c in src.suffix if c.isascii() and (c.isalnum() or c == "."))
    dst = folder / name
    if src.is_dir():
        copy_model_folder(src, dst)
        return dst
    shutil.copy2(src, dst)
    if fmt is ModelFormat.OPENVINO:
        shutil.copy2(member_file(src.parent, src.with_suffix(".bin").name, src, "OpenVINO IR weights file"),
                     dst.with_suffix(".bin"))
    elif fmt is ModelFormat.ONNX:
        for rel in onnx_external_files(src):
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(member_file(src.parent, rel, src, "ONNX external data file"), target)
    return dst


def remove_model_files(path: str | Path) -> None:
    """Delete a model from disk: a folder, a file, and an IR's .bin beside its .xml. Missing is fine."""
    p = Path(path)
    if p.is_dir():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)
        if p.suffix == ".xml":
            p.with_suffix(".bin").unlink(missing_ok=True)


def copy_model_folder(src: Path, dst: Path) -> None:
    """Copy a checked model folder (see formats.folder_size), never more than the bytes it really holds."""
    from edgestudio.core.formats import folder_size

    budget = [folder_size(src)]

    def copy(a: str, b: str) -> str:
        try:
            with open(a, "rb") as fin, open(b, "wb") as fout:
                while block := fin.read(1 << 20):
                    budget[0] -= len(block)
                    if budget[0] < 0:
                        raise ModelFormatError(src, "the folder's files grew while being copied; refusing")
                    fout.write(block)
            shutil.copystat(a, b)
        except OSError as exc:  # one line naming where it failed (copytree would gather a list of errno tuples)
            if exc.errno == errno.ENOSPC:
                raise EdgeStudioError(dst.parent, f"no space left on {display(str(dst.parent))}") from None
            raise EdgeStudioError(src, f"cannot copy {display(Path(a).name)}: {exc.strerror or exc}") from None
        return b

    shutil.copytree(src, dst, copy_function=copy)


def hash_model(path: str | Path, fmt: ModelFormat) -> str:
    p = Path(path)
    h = hashlib.sha256()
    for f in model_files(p, fmt):
        h.update(os.fsencode(str(f.relative_to(p) if p.is_dir() else f.suffix)) + b"\0")
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()
