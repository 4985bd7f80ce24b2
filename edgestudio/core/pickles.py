"""Pickles of PyTorch archives (ExportedProgram weights, constants and sample inputs, TorchScript data), read with
:mod:`pickletools`: nothing is unpickled. Every global they would call is checked against the tensor-rebuilding
functions PyTorch's own ``weights_only`` loader allows; a reference that cannot be resolved statically is refused
too, and an archive is loaded only from the bytes that were checked. Budgets and zip reading: :mod:`safety`."""

from __future__ import annotations

import zipfile
from pathlib import Path

from edgestudio.core.errors import ModelFormatError, UnsafeModelError, display
from edgestudio.core.safety import check_zip_budget, memory_budget, read_member

#: the globals a PyTorch archive's pickles may name: tensor and storage rebuilding, dtypes, layouts, plain
#: containers (what ``torch.load(weights_only=True)`` allows); TorchScript's own classes (``__torch__.*``,
#: resolved by TorchScript's C++ unpickler to compiled code of the archive, never to Python)
_TORCH_REBUILD = {
    "_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
    "_rebuild_parameter_with_state", "_rebuild_qtensor", "_rebuild_sparse_tensor", "_rebuild_meta_tensor_no_storage",
    "_rebuild_nested_tensor", "_rebuild_device_tensor_from_cpu_tensor", "_rebuild_device_tensor_from_numpy",
    "_rebuild_wrapper_subclass",
}
_TORCH_DTYPES = {
    "float32", "float", "float64", "double", "float16", "half", "bfloat16", "int8", "uint8", "int16", "short",
    "int32", "int", "int64", "long", "bool", "complex64", "complex128", "uint16", "uint32", "uint64",
    "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "qint8", "quint8", "qint32", "quint4x2",
    "strided", "sparse_coo", "sparse_csr", "sparse_csc", "sparse_bsr", "sparse_bsc", "_mkldnn",
    "contiguous_format", "channels_last", "channels_last_3d", "preserve_format", "per_tensor_affine",
    "per_channel_affine", "per_tensor_symmetric", "per_channel_symmetric", "per_channel_affine_float_qparams",
    "Size", "device", "dtype",
}
_SAFE_GLOBALS: set[tuple[str, str]] = (
    {("torch._utils", n) for n in _TORCH_REBUILD}
    | {("torch", n) for n in _TORCH_DTYPES}
    | {("torch", f"{k}Storage") for k in ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char",
                                           "Byte", "Bool", "ComplexFloat", "ComplexDouble", "QInt8", "QUInt8",
                                           "QInt32", "QUInt4x2", "QUInt2x4", "Untyped")}
    | {("torch.storage", "UntypedStorage"), ("torch.storage", "TypedStorage"),
       ("torch.serialization", "_get_layout"), ("torch._tensor", "_rebuild_from_type_v2"),
       ("torch.nn.parameter", "Parameter"), ("torch", "Tensor"),
       ("collections", "OrderedDict"), ("collections", "Counter"), ("collections", "defaultdict"),
       ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex"), ("builtins", "bytearray"),
       ("builtins", "slice"), ("builtins", "range"), ("builtins", "tuple"), ("builtins", "list"), ("builtins", "dict"),
       ("__builtin__", "set"), ("_codecs", "encode"), ("torch.jit._pickle", "build_intlist"),
       ("torch.jit._pickle", "build_tensorlist"), ("torch.jit._pickle", "build_doublelist"),
       ("torch.jit._pickle", "build_boollist"), ("torch.jit._pickle", "build_tensor_from_id"),
       ("torch.jit._pickle", "restore_type_tag")}
)


class UnsafePickle(Exception):
    pass


_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8", "SHORT_BINSTRING", "BINSTRING", "STRING"}
_PUT_OPS = {"PUT", "BINPUT", "LONG_BINPUT"}
_GET_OPS = {"GET", "BINGET", "LONG_BINGET"}


def pickle_globals(data: bytes) -> set[tuple[str, str]]:
    """Every (module, name) a pickle would import, read with :mod:`pickletools` (nothing is unpickled).

    ``STACK_GLOBAL`` takes its module and name from the stack: they are accepted only when they were pushed
    by the two operations right before it (strings, or memo entries holding strings); anything else (a name
    built at load time) raises :class:`UnsafePickle`, as do the extension-registry opcodes and a pickle that
    does not parse."""
    import pickletools

    out: set[tuple[str, str]] = set()
    memo: dict[int, str | None] = {}
    recent: list[str | None] = []  # the values the last operations pushed (None: not a known string)
    end = 0
    try:
        for op, arg, pos in pickletools.genops(data):
            end = pos
            if op.name == "STOP":
                end = pos + 1
            name = op.name
            if name in _STRING_OPS:
                recent.append(arg if isinstance(arg, str) else None)
            elif name == "MEMOIZE":
                # the unpickler numbers a MEMOIZE by the slots already filled (PUTs included), not by MEMOIZEs
                memo[len(memo)] = recent[-1] if recent else None  # a value not known here clears the slot
                continue  # the stack is unchanged
            elif name in _PUT_OPS:
                memo[int(arg)] = recent[-1] if recent else None
                continue
            elif name in _GET_OPS:
                recent.append(memo.get(int(arg)))
            elif name in ("GLOBAL", "INST"):
                mod, _, attr = str(arg).partition(" ")
                out.add((mod, attr))
                recent.append(None)
            elif name == "STACK_GLOBAL":
                if len(recent) < 2 or recent[-1] is None or recent[-2] is None:
                    raise UnsafePickle("a global whose name is computed while loading")
                out.add((str(recent[-2]), str(recent[-1])))
                recent.append(None)
            elif name in ("EXT1", "EXT2", "EXT4"):
                raise UnsafePickle("the copyreg extension registry")
            else:
                recent.append(None)
            del recent[:-4]
    except UnsafePickle:
        raise
    except Exception as exc:  # noqa: BLE001 - pickletools' own errors: an unreadable pickle is unsafe
        raise UnsafePickle(f"it does not parse as a pickle ({' '.join(str(exc).split())[:120]})") from None
    if end < len(data):  # a second pickle after the first (the legacy torch.save format): unchecked bytes
        raise UnsafePickle(f"{len(data) - end:,} bytes follow the pickle (the legacy torch.save format, whose later "
                           "pickles load with arbitrary code)")
    return out


def unsafe_globals(data: bytes) -> list[str]:
    """The globals of a pickle that are neither tensor rebuilding nor TorchScript classes ([] when safe)."""
    try:
        refs = pickle_globals(data)
    except UnsafePickle as exc:
        return [str(exc)]
    return sorted(f"{m}.{n}" for m, n in refs if (m, n) not in _SAFE_GLOBALS and m.split(".", 1)[0] != "__torch__")


def _pt2_raw_members(zf: zipfile.ZipFile, top: str, path: str | Path) -> set[str]:
    """The members of an ExportedProgram that its configs declare raw tensor bytes (``use_pickle: false``)."""
    import json

    raw: set[str] = set()
    loaded: set[str] = set()  # declared to load through a pickle: never raw, whatever else says so
    for folder, config in (("weights", "model_weights_config.json"), ("constants", "model_constants_config.json")):
        name = f"{top}/data/{folder}/{config}"
        if name not in zf.namelist():
            continue
        try:
            doc = json.loads(read_member(zf, zf.getinfo(name), 64 << 20, path))
            entries = doc.get("config", {}).values()
            for entry in entries:
                rel = str(entry.get("path_name", ""))
                member = f"{top}/data/{folder}/{rel}"
                if entry.get("use_pickle") is False and not rel.startswith(("custom_obj", "opaque_obj")):
                    raw.add(member)
                else:
                    loaded.add(member)
        except (ValueError, AttributeError, TypeError):
            raise ModelFormatError(path, f"archive member {display(name)} is not a valid payload config") from None
    # PyTorch's archive reader matches member names ignoring case: a name declared pickled in any case is pickled
    pickled = {m.lower() for m in loaded}
    return {m for m in raw if m.lower() not in pickled}


_PT2_CONFIGS = ("data/weights/model_weights_config.json", "data/constants/model_constants_config.json")


def check_torch_archive(path: str | Path, data: bytes | None = None, *, _depth: int = 0) -> None:
    """Refuse a PyTorch zip archive (TorchScript, ExportedProgram, a nested ``torch.save``) any of whose pickles
    would call more than tensor rebuilding: every ``.pkl`` member, and in an ExportedProgram every member of its
    ``data/`` folder that is not declared raw tensor bytes (pickled weights and constants, custom and opaque
    objects, sample inputs), with the archives nested in them."""
    import io

    src = io.BytesIO(data) if data is not None else path
    try:
        with zipfile.ZipFile(src) as zf:
            if data is None:
                check_zip_budget(path, zf, "PyTorch archive")
            names = zf.namelist()
            tops = {n.split("/", 1)[0] for n in names if "/" in n}
            pt2 = {t for t in tops if f"{t}/archive_format" in names}
            raw: set[str] = set()
            for top in pt2:
                raw |= _pt2_raw_members(zf, top, path)
            for info in zf.infolist():
                name = info.filename
                if info.is_dir() or name in raw:
                    continue
                top, _, rel = name.partition("/")
                # an ExportedProgram loads what its data/ folder holds with torch.load or pickle.loads, whatever
                # the member is named: all of it is checked but the two configs and the declared raw tensors
                pickled = name.endswith((".pkl", ".debug_pkl")) or (
                    top in pt2 and rel.startswith("data/") and rel not in _PT2_CONFIGS)
                if not pickled:
                    continue
                member = read_member(zf, info, memory_budget(), path)
                if member.startswith(b"PK\x03\x04"):
                    if _depth >= 2:
                        raise UnsafeModelError(path, f"archive member {display(name)} nests archives too deeply")
                    try:
                        check_torch_archive(path, member, _depth=_depth + 1)
                    except UnsafeModelError as exc:
                        raise UnsafeModelError(path, f"in {display(name)}: {exc.cause}", hint=exc.hint) from None
                    continue
                bad = unsafe_globals(member)
                if bad:
                    raise UnsafeModelError(path, f"archive member {display(name)} is a pickle that would run code "
                                                 f"when loaded ({', '.join(bad[:3])}): EdgeStudio does not load it",
                                           hint="export the model again with torch.export.save from a trusted "
                                                "environment")
    except zipfile.BadZipFile as exc:
        raise ModelFormatError(path, f"corrupt or truncated zip archive ({exc})") from None
