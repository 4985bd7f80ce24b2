"""Model formats, detected from a file's content (never from its extension alone)."""

from __future__ import annotations

import enum
import json
import stat
import zipfile
from pathlib import Path

from edgestudio.core.errors import EdgeStudioError, ModelFormatError, display


class ModelFormat(str, enum.Enum):
    ONNX = "onnx"
    ORT = "ort"  # ONNX Runtime's flatbuffer format
    TFLITE = "tflite"
    KERAS = "keras"  # Keras v3 zip (.keras)
    KERAS_H5 = "h5"  # legacy Keras HDF5
    SAVED_MODEL = "savedmodel"
    OPENVINO = "openvino"  # IR: .xml + .bin
    TFJS = "tfjs"
    TORCHSCRIPT = "torchscript"  # torch.jit.save (.pt)
    PT2 = "pt2"  # torch.export.save: an ExportedProgram (.pt2)
    TVM = "tvm"  # Apache TVM: a folder with the compiled library (model.so) and tvm.json
    PTE = "pte"  # an ExecuTorch program (.pte)

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
                   "lite": "tflite", "litert": "tflite", "tf.js": "tfjs", "tensorflowjs": "tfjs",
                   "pt": "torchscript", "jit": "torchscript", "exportedprogram": "pt2", "torch.export": "pt2",
                   "executorch": "pte", "et": "pte"}
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
    ModelFormat.TORCHSCRIPT: "PyTorch TorchScript",
    ModelFormat.PT2: "PyTorch ExportedProgram",
    ModelFormat.TVM: "Apache TVM (compiled)",
    ModelFormat.PTE: "ExecuTorch program",
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
    ModelFormat.TORCHSCRIPT: ".pt",
    ModelFormat.PT2: ".pt2",
    ModelFormat.TVM: "",
    ModelFormat.PTE: ".pte",
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
    if not p.is_file():
        raise ModelFormatError(p, "not a regular file (a device, FIFO or socket)")
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
    if size >= 8 and head[4:6] == b"ET" and head[6:8].isdigit():  # ExecuTorch's flatbuffer identifier ("ET12")
        _check_flatbuffer(p, head, size, "ExecuTorch")
        return ModelFormat.PTE
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


def folder_size(p: Path) -> int:
    """Check a model folder and return the bytes a copy of it holds (links inside it followed, as a copy does).

    Refuses what a copy or a reader must never follow: links that leave the folder (a link to an outside file
    would be copied into the workspace), links to a folder that contains them (a copy would never end), device
    files, FIFOs and sockets (a link to /dev/zero copies until the disk is full)."""
    root = p.resolve()

    def walk(folder: Path, depth: int) -> int:
        if depth > 16:
            raise ModelFormatError(p, "links inside the folder nest too deeply")
        total = 0
        for entry in sorted(folder.iterdir()):
            rel = display(str(entry.relative_to(p))) if entry.is_relative_to(p) else display(entry.name)
            st = entry.lstat()
            if stat.S_ISLNK(st.st_mode):
                target = entry.resolve()
                if target != root and root not in target.parents:
                    raise ModelFormatError(p, f"{rel} is a link that leaves the model folder; copy the real file in")
                if not target.exists():
                    raise ModelFormatError(p, f"{rel} is a broken link")
                st = target.stat()
                if stat.S_ISDIR(st.st_mode):
                    if target == entry.parent.resolve() or target in entry.parent.resolve().parents:
                        raise ModelFormatError(p, f"{rel} is a link to a folder that contains it")
                    total += walk(target, depth + 1)
                    continue
            if stat.S_ISDIR(st.st_mode):
                total += walk(entry, depth + 1)
            elif stat.S_ISREG(st.st_mode):
                total += st.st_size
            else:
                raise ModelFormatError(p, f"{rel} is not a regular file (a device, FIFO or socket)")
        return total

    return walk(p, 0)


def _detect_folder(p: Path) -> ModelFormat:
    folder_size(p)
    if (p / "saved_model.pb").is_file() or (p / "saved_model.pbtxt").is_file():
        from edgestudio.core.graph_ops import saved_model_dangerous_ops
        from edgestudio.core.safety import check_graph_ops

        check_graph_ops(p, saved_model_dangerous_ops(p), "SavedModel")
        return ModelFormat.SAVED_MODEL
    if (p / "model.json").is_file():
        _detect_json(p / "model.json")
        return ModelFormat.TFJS
    if (p / "tvm.json").is_file():
        if not (p / "model.so").is_file():
            raise ModelFormatError(p, "TVM model folder without its compiled library model.so")
        return ModelFormat.TVM
    raise ModelFormatError(p, "folder is neither a SavedModel (no saved_model.pb), a TF.js model (no model.json) nor "
                              "a compiled TVM model (no tvm.json)")


def _check_flatbuffer(p: Path, head: bytes, size: int, what: str) -> None:
    root = int.from_bytes(head[0:4], "little")
    if root < 8 or root >= size:
        raise ModelFormatError(p, f"corrupt {what} file (root table offset {root} outside {size} bytes)")


#: a .keras archive is refused before anything reads it when a member would unpack to more than this, or
#: a large member is compressed more than MAX_ZIP_RATIO times (real weights barely compress)
MAX_ZIP_MEMBER = 8 << 30
MAX_ZIP_TOTAL = 16 << 30
MAX_ZIP_RATIO = 100
MAX_CONFIG_BYTES = 64 << 20


def check_zip(p: Path, zf: zipfile.ZipFile) -> None:
    """Member sizes and compression ratios, from the archive's directory: a decompression bomb is refused
    before a byte is inflated."""
    total = 0
    for info in zf.infolist():
        total += info.file_size
        name = display(info.filename)
        if info.file_size > MAX_ZIP_MEMBER or total > MAX_ZIP_TOTAL:
            raise ModelFormatError(p, f"archive member {name} would unpack to {info.file_size:,} bytes "
                                      f"(over {MAX_ZIP_MEMBER:,}): refusing a possible decompression bomb")
        if info.file_size > (1 << 20) and info.file_size > MAX_ZIP_RATIO * max(info.compress_size, 1):
            raise ModelFormatError(p, f"archive member {name} is compressed {info.file_size // max(info.compress_size, 1):,}"
                                      f"x ({info.compress_size:,} -> {info.file_size:,} bytes): refusing a possible "
                                      "decompression bomb")
        if info.filename.endswith(".json") and info.file_size > MAX_CONFIG_BYTES:
            raise ModelFormatError(p, f"archive member {name} is {info.file_size:,} bytes: too large for a model "
                                      "configuration")
    from edgestudio.core.safety import check_zip_budget

    try:
        check_zip_budget(p, zf, "archive")  # many small members that inflate far past the archive's size, too
    except EdgeStudioError as exc:
        raise ModelFormatError(p, exc.cause) from None


def _detect_zip(p: Path) -> ModelFormat:
    try:
        with zipfile.ZipFile(p) as zf:
            names = set(zf.namelist())
            check_zip(p, zf)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFormatError(p, f"corrupt or truncated zip archive ({exc})") from None
    if "config.json" in names and ("model.weights.h5" in names or "metadata.json" in names):
        return ModelFormat.KERAS
    torch_kind = _torch_archive(p, names)
    if torch_kind is not None:
        return torch_kind
    raise ModelFormatError(p, "zip archive is not a Keras v3 or PyTorch model (no config.json / model.weights.h5, "
                              "no TorchScript code or ExportedProgram)")


EXPORT_HINT = ("export it instead: torch.export.save(torch.export.export(model, example_inputs), 'model.pt2'), "
               "or torch.jit.save(torch.jit.trace(model, example), 'model.pt')")


def _torch_archive(p: Path, names: set[str]) -> ModelFormat | None:
    """PyTorch's zip archives (one top folder): an ExportedProgram, a TorchScript module, or a pickled object
    (``torch.save``), which is refused: unpickling runs code the file names. Which one it is comes from the
    archive's entries and, for pickles, from the globals its data.pkl references (read, never executed)."""
    tops = {n.split("/", 1)[0] for n in names if "/" in n}
    if len(tops) != 1:
        return None
    from edgestudio.core.pickles import check_torch_archive

    top = next(iter(tops))
    if f"{top}/archive_format" in names:
        check_torch_archive(p)  # every pickle inside: tensor rebuilding only, or refused naming the member
        return ModelFormat.PT2
    if f"{top}/constants.pkl" in names and any(n.startswith(f"{top}/code/") for n in names):
        check_torch_archive(p)
        return ModelFormat.TORCHSCRIPT
    if f"{top}/data.pkl" in names:
        refs = _pickle_globals(p, f"{top}/data.pkl")
        weights_only = refs <= {("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"),
                                ("torch._utils", "_rebuild_parameter")} | {
            ("torch", n) for n in ("FloatStorage", "HalfStorage", "BFloat16Storage", "LongStorage", "IntStorage",
                                   "ByteStorage", "BoolStorage", "DoubleStorage", "float32", "Size")}
        if weights_only:
            raise ModelFormatError(p, "PyTorch weights only (a state_dict saved with torch.save): there is no "
                                      "graph to run or convert", hint="load them into your model and " + EXPORT_HINT)
        classes = sorted({f"{m}.{n}" for m, n in refs if not m.startswith(("torch", "collections", "builtins", "__builtin__"))})
        raise ModelFormatError(p, "a pickled PyTorch module (torch.save(model)): loading it would run code named "
                                  "by the file" + (f" ({', '.join(classes[:3])})" if classes else "")
                                  + ", so EdgeStudio does not", hint=EXPORT_HINT)
    return None


def _pickle_globals(p: Path, member: str) -> set[tuple[str, str]]:
    """The (module, name) pairs a member's pickle references (``pickles.pickle_globals``: nothing is unpickled);
    one that cannot be read statically counts as code, the safe answer."""
    from edgestudio.core.pickles import UnsafePickle, pickle_globals

    try:
        with zipfile.ZipFile(p) as zf:
            return pickle_globals(zf.read(member))
    except (UnsafePickle, zipfile.BadZipFile, OSError, KeyError):
        return {("?", "unreadable pickle")}


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
    if not weights.is_file() and not weights.is_symlink():
        raise ModelFormatError(p, f"OpenVINO IR weights file {display(weights.name)} is missing beside it")
    from edgestudio.core.safety import member_file

    member_file(p.parent, weights.name, p, "OpenVINO IR weights file")  # a regular file, not a link or a device
    return ModelFormat.OPENVINO


def _detect_json(p: Path) -> ModelFormat:
    if p.stat().st_size > 256 * 1024 * 1024:
        raise ModelFormatError(p, "JSON file too large to be a TF.js model.json")
    try:
        doc = json.loads(p.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(p, f"invalid JSON ({exc})") from None
    if isinstance(doc, dict) and "modelTopology" in doc:
        from edgestudio.core.graph_ops import tfjs_dangerous_ops
        from edgestudio.core.safety import check_graph_ops, check_tfjs_weights

        check_tfjs_weights(p, doc)
        check_graph_ops(p, tfjs_dangerous_ops(doc), "TF.js")
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


_ALIASES: dict[str, str] = {}


def native_path(path: str | Path) -> str:
    """``path`` as a string the native libraries accept.

    TFLite, ONNX Runtime, OpenVINO and TensorFlow take paths as UTF-8 strings; a file whose name holds other
    bytes (surrogate-escaped by Python) is reached through a link with a plain name in a private temporary
    folder (an IR's .bin gets one beside its .xml). Error messages still name the user's path.
    """
    text = str(path)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    if text in _ALIASES:
        return _ALIASES[text]
    import atexit
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="edgestudio-link-"))
    atexit.register(shutil.rmtree, folder, True)
    src = Path(path).absolute()
    link = folder / ("model" + "".join(c for c in src.suffix if c.isascii() and (c.isalnum() or c == ".")))
    link.symlink_to(src, target_is_directory=src.is_dir())
    if src.suffix == ".xml" and src.with_suffix(".bin").exists():
        link.with_suffix(".bin").symlink_to(src.with_suffix(".bin"))
    _ALIASES[text] = str(link)
    return str(link)


def onnxruntime_session_options_for(path: str | Path, so: object) -> object:
    """Tell ONNX Runtime the real format: it decides ONNX vs ORT by the file's extension, not its content
    (an .ort file named .onnx would be parsed as protobuf)."""
    try:
        fmt = detect_format(path)
        if fmt in (ModelFormat.ORT, ModelFormat.ONNX):  # an ONNX model named .ort too
            so.add_session_config_entry("session.load_model_format", fmt.name)  # type: ignore[attr-defined]
    except ModelFormatError:
        pass
    return so


def output_name(stem: str, fmt: ModelFormat) -> str:
    """``model`` + ``.onnx`` / ``.xml`` / ``.tflite``...; folders: ``model_savedmodel``, ``model_tfjs``."""
    if fmt is ModelFormat.SAVED_MODEL:
        return f"{stem}_savedmodel"
    if fmt is ModelFormat.TFJS:
        return f"{stem}_tfjs"
    if fmt is ModelFormat.TVM:
        return f"{stem}_tvm"
    return f"{stem}{fmt.default_suffix}"
