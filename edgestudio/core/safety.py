"""What a model or a data file may make EdgeStudio do: nothing of its own code runs while it is read, and no small
file takes the machine.

- **Pickles** (PyTorch archives: ExportedProgram weights, constants and sample inputs, TorchScript data) are read
  with :mod:`pickletools` (nothing is unpickled) and every global they would call is checked against the
  tensor-rebuilding functions PyTorch's own ``weights_only`` loader allows. A reference that cannot be resolved
  statically is refused too: an archive is loaded only from the bytes that were checked.
- **TensorFlow graphs** (SavedModel, TF.js graph models) that hold file-system or Python ops (``ReadFile``,
  ``WriteFile``, ``PyFunc``, ...) are refused unless the user trusts that model (``--trust-model``; the studio
  asks). Their ops are read from the protobuf wire format / JSON, without TensorFlow.
- **Budgets**: what a file declares (tensor shapes, unpacked sizes) is checked against the memory budget
  (:func:`memory_budget`) before anything is allocated or inflated.
- **Only regular files** are read as data (a FIFO blocks for ever, ``/dev/zero`` never ends).
"""

from __future__ import annotations

import os
import re
import stat
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from edgestudio.core.errors import ModelFormatError, UnsafeModelError, UntrustedModelError, UsageError, display

# ------------------------------------------------------------------------------------------------ budgets
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_bytes(text: str) -> int:
    """``"4G"``, ``"512M"``, ``"1048576"`` -> bytes."""
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    unit = t[-1:] if t[-1:] in _UNITS else ""
    return int(float(t[: len(t) - len(unit)]) * _UNITS[unit])


def total_memory() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def memory_budget() -> int:
    """Bytes one command (one job) may use: ``EDGESTUDIO_MEMORY_BUDGET`` (``4G``, ``512M``) or half of this
    machine's memory. What a file declares is checked against it before allocation, and a job whose worker
    grows past it is stopped."""
    env = os.environ.get("EDGESTUDIO_MEMORY_BUDGET")
    if env:
        try:
            return max(64 << 20, parse_bytes(env))
        except (ValueError, IndexError):
            pass
    return total_memory() // 2


def human(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def check_budget(path: str | Path | None, nbytes: int, what: str) -> None:
    """Refuse ``what`` (declared by ``path``) when it needs more than the memory budget."""
    budget = memory_budget()
    if nbytes > budget:
        raise UsageError(path, f"{what} would need {human(nbytes)}, over the memory budget of {human(budget)} "
                               "(EDGESTUDIO_MEMORY_BUDGET raises it)")


# ------------------------------------------------------------------------------------------ numeric options
#: bounds of the numbers a command, a recipe, a sweep file or a request may ask for (a thread count of 100000
#: starts 100000 threads; 10^8 debug samples never end)
LIMITS: dict[str, tuple[float, float]] = {
    "threads": (1, 256), "iterations": (1, 10_000_000), "warmup": (0, 1_000_000), "samples": (1, 100_000),
    "runs": (1, 1_000_000), "limit": (1, 1_000_000_000), "duration": (0.001, 86_400), "max_steps": (1, 1000),
    "epochs": (1, 100_000), "batch_size": (1, 1_000_000), "batch": (1, 65_536), "streams": (1, 256),
    "opset": (7, 30), "tvm_trials": (0, 1_000_000), "tvm_minutes": (0, 100_000), "port": (0, 65_535),
    "timeout": (1, 7 * 86_400),
}


def check_number(name: str, value: object, path: str | Path | None = None) -> None:
    """Refuse a number outside ``LIMITS[name]`` (or not a finite number) with a one-line error."""
    import math

    if value is None:
        return
    lo, hi = LIMITS[name]
    label = name.replace("_", "-")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(path, f"{label} must be a number, not {display(str(value))[:40]}")
    if not lo <= value <= hi:
        raise UsageError(path, f"{label} {value:g} is out of range ({lo:g} to {hi:g})")


_WATCH: Callable[[int, int], None] = lambda used, budget: None


def watch_memory(on_exceed: Callable[[int, int], None], interval_s: float = 0.1) -> None:
    """Watch this process's resident memory from a daemon thread; past the budget, ``on_exceed(rss, budget)`` is
    called once (the CLI prints its one line and exits: what runs in the command's own process, a per-layer
    comparison or a rescue, is held to the budget like the pool's workers)."""
    import threading

    global _WATCH
    _WATCH = on_exceed  # the latest caller's: one watching thread per process
    if any(t.name == "edgestudio-memory-watch" for t in threading.enumerate()):
        return
    budget = memory_budget()

    def rss() -> int:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return 0

    def loop() -> None:
        import time

        while True:
            used = rss()
            if used > budget:
                _WATCH(used, budget)
                return
            time.sleep(interval_s)

    threading.Thread(target=loop, name="edgestudio-memory-watch", daemon=True).start()


# -------------------------------------------------------------------------------------------- plain files
def regular_file(path: str | Path, what: str = "file") -> Path:
    """``path`` if it is a regular file (links to one are fine); a FIFO, device, socket or folder is refused at
    once, before anything opens it (a FIFO blocks, ``/dev/zero`` never ends)."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise UsageError(p, f"no such {what}") from None
    except OSError as exc:
        raise UsageError(p, f"cannot read the {what}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise UsageError(p, f"is a folder, not a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(p, f"is not a regular file (a device, FIFO or socket): not read as the {what}")
    return p


def read_regular(path: str | Path, what: str = "file", limit: int | None = None) -> bytes:
    """The bytes of a regular file, at most ``limit`` of them (more is refused, never read)."""
    p = regular_file(path, what)
    size = p.stat().st_size
    if limit is not None and size > limit:
        raise UsageError(p, f"the {what} is {human(size)}, over the {human(limit)} a {what} may have")
    with open(p, "rb") as fh:
        data = fh.read(limit + 1 if limit is not None else -1)
    if limit is not None and len(data) > limit:
        raise UsageError(p, f"the {what} is over the {human(limit)} a {what} may have")
    return data


def member_file(folder: Path, rel: str, model: str | Path, what: str) -> Path:
    """A file a model names (a weights shard, external data, an IR's .bin): a regular file, not a link, inside the
    model's folder; anything else is refused naming the model and the member."""
    if not rel or "\x00" in rel or Path(rel).is_absolute():
        raise ModelFormatError(model, f"{what} {display(rel)!s} is not a path inside the model's folder")
    p = folder / rel
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise ModelFormatError(model, f"{what} {display(rel)} cannot be read: {exc.strerror or exc}") from None
    if st is not None and stat.S_ISLNK(st.st_mode):
        raise ModelFormatError(model, f"{what} {display(rel)} is a link: copy the real file in")
    try:
        inside = p.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):
        inside = False
    if not inside:
        raise ModelFormatError(model, f"{what} {display(rel)} leaves the model's folder")
    if st is None:
        raise ModelFormatError(model, f"{what} {display(rel)} is missing")
    if not stat.S_ISREG(st.st_mode):
        raise ModelFormatError(model, f"{what} {display(rel)} is not a regular file (a device, FIFO, socket "
                                      "or folder)")
    return p


_TFJS_BYTES = {"float32": 4, "int32": 4, "bool": 1, "float16": 2, "uint8": 1, "int8": 1, "uint16": 2, "int16": 2,
               "complex64": 8}


def check_tfjs_weights(mj: Path, doc: dict, *, model: str | Path | None = None) -> int:  # type: ignore[type-arg]
    """A TF.js model.json's weights manifest, before anything reads a shard: every shard a regular file inside
    the model's folder (no link, no device), every weight's shape fitting the shards' real bytes, and the whole
    within the memory budget. Returns the number of weight values."""
    model = model if model is not None else mj.parent
    total = declared = 0
    manifest = doc.get("weightsManifest", []) or []
    if not isinstance(manifest, list):
        raise ModelFormatError(model, "TF.js weightsManifest is not a list")
    for group in manifest:
        if not isinstance(group, dict):
            raise ModelFormatError(model, "TF.js weightsManifest holds an entry that is not an object")
        need = 0
        for w in group.get("weights", []) or []:
            shape = w.get("shape", []) if isinstance(w, dict) else None
            if not isinstance(shape, list) or any(not isinstance(d, int) or isinstance(d, bool) or d < 0
                                                  for d in shape):
                raise ModelFormatError(model, f"TF.js weight {display(str(w.get('name') if isinstance(w, dict) else w))!r}"
                                              f" has a bad shape {display(str(shape))[:60]}")
            n = 1
            for d in shape:
                n *= d
            q = w.get("quantization") or {}
            itemsize = _TFJS_BYTES.get(str(q.get("dtype") or w.get("dtype", "float32")) if isinstance(q, dict)
                                       else "float32", 4)
            if w.get("dtype") == "string":
                itemsize = 0
            need += n * itemsize
            declared += n * 4  # decoded to float32 / int32 by every reader
            total += n
        have = 0
        paths = group.get("paths", []) or []
        if not isinstance(paths, list):
            raise ModelFormatError(model, "TF.js weightsManifest paths is not a list")
        for shard in paths:
            have += member_file(mj.parent, str(shard), model, "TF.js weights file").stat().st_size
        if need > have:
            raise ModelFormatError(model, f"TF.js weights need {need:,} bytes but the shard files hold {have:,}: "
                                          "implausible shapes or truncated files")
        strings = any(isinstance(w, dict) and w.get("dtype") == "string" for w in group.get("weights", []) or [])
        if not strings and have > 2 * need + (1 << 20):
            raise ModelFormatError(model, f"TF.js shard files hold {have:,} bytes but its weights need {need:,}: "
                                          "refusing to read or copy the rest")
    check_budget(model, declared, "loading the TF.js weights")
    return total


# ------------------------------------------------------------------------------------------ zip archives
#: a zip's members may unpack to at most this many times the archive's size in all (real weights barely
#: compress); small archives get a floor, so a config-heavy model is never refused
MAX_TOTAL_RATIO = 50
RATIO_FLOOR = 64 << 20


def check_zip_budget(p: str | Path, zf: zipfile.ZipFile, what: str = "archive") -> int:
    """Refuse a zip (a .keras, an npz, a package) whose members would unpack to more than the memory budget,
    or to far more than it holds (a decompression bomb of many small members as well as of one large one),
    from its directory, before a byte is inflated. Returns the declared unpacked size."""
    total = 0
    for info in zf.infolist():
        total += info.file_size
    size = max(1, Path(p).stat().st_size) if Path(p).exists() else sum(i.compress_size for i in zf.infolist())
    if total > max(RATIO_FLOOR, MAX_TOTAL_RATIO * size):
        raise UsageError(p, f"{what} would unpack to {human(total)} from {human(size)} "
                            f"({total // max(size, 1):,}x): refusing a possible decompression bomb")
    check_budget(p, total, f"unpacking the {what}")
    return total


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, path: str | Path) -> bytes:
    """A member's bytes, never more than ``limit`` inflated (headers can lie about sizes)."""
    if info.file_size > limit:
        raise UsageError(path, f"archive member {display(info.filename)} would unpack to {human(info.file_size)}, "
                               f"over {human(limit)}")
    with zf.open(info) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise UsageError(path, f"archive member {display(info.filename)} unpacks to more than it declares")
    return data


# ------------------------------------------------------------------------------------------------ YAML
MAX_YAML_BYTES = 1 << 20
MAX_YAML_ALIASES = 100
MAX_YAML_NODES = 100_000


def load_yaml(path: str | Path, what: str = "YAML file") -> object:
    """A YAML (or JSON) document from a regular file of at most 1 MB, with safe tags only, few aliases and a
    bounded expanded size (an alias bomb is refused, never expanded)."""
    import yaml

    text = read_regular(path, what, MAX_YAML_BYTES).decode("utf-8", "replace")

    class _Loader(yaml.SafeLoader):
        aliases = 0

        def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
            if self.check_event(yaml.events.AliasEvent):
                _Loader.aliases += 1
                if _Loader.aliases > MAX_YAML_ALIASES:
                    raise UsageError(path, f"the {what} uses over {MAX_YAML_ALIASES} aliases: refusing a possible "
                                           "alias bomb")
            return super().compose_node(parent, index)

    try:
        doc = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - the parser's own message, one line
        raise UsageError(path, f"not a valid {what}: {' '.join(str(exc).split())[:200]}") from None
    seen = 0
    stack = [doc]
    while stack:
        node = stack.pop()
        seen += 1
        if seen > MAX_YAML_NODES:
            raise UsageError(path, f"the {what} expands to over {MAX_YAML_NODES:,} values: refused")
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
    return doc


# ---------------------------------------------------------------------------------------- numpy files
def _npy_declared(fh, size: int, path: str | Path, key: str) -> int:  # type: ignore[no-untyped-def]
    """Bytes an .npy stream's header declares; refused when the stream cannot hold them or they hold objects."""
    import numpy as np

    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        shape, _, dtype = (fmt.read_array_header_1_0(fh) if version == (1, 0) else
                           fmt.read_array_header_2_0(fh) if version == (2, 0) else fmt._read_array_header(fh, version))
    except Exception as exc:  # noqa: BLE001 - numpy's own message, one line
        raise UsageError(path, f"cannot read array {key!r}: not a valid .npy ({' '.join(str(exc).split())[:120]})") from None
    if dtype.hasobject:
        raise UsageError(path, f"array {key!r} holds Python objects (it would need unpickling): refused")
    n = 1
    for d in shape:
        n *= int(d)
    need = n * dtype.itemsize
    if need > size:
        raise UsageError(path, f"array {key!r} declares {human(need)} of data but holds {human(size)}")
    return need


def load_arrays(path: str | Path, what: str = "data file") -> dict[str, object] | object:
    """The arrays of an ``.npy`` (one array) or ``.npz`` (a dict), read only after the file was checked: a regular
    file, no Python objects, every array's declared size within what the file holds and within the memory
    budget, an archive that does not inflate far past its size."""
    import numpy as np

    p = regular_file(path, what)
    size = p.stat().st_size
    with open(p, "rb") as fh:
        magic = fh.read(4)
        fh.seek(0)
        if magic != b"PK\x03\x04":
            need = _npy_declared(fh, size, p, p.name)
            check_budget(p, need, f"the {what}")
            fh.seek(0)
            try:
                return np.load(fh, allow_pickle=False)
            except (ValueError, OSError, EOFError) as exc:
                raise UsageError(p, f"cannot read as .npy ({' '.join(str(exc).split())[:160]})") from None
    try:
        zf = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UsageError(p, f"cannot read as .npz ({' '.join(str(exc).split())[:160]})") from None
    with zf:
        check_zip_budget(p, zf, what)
        total = 0
        for info in zf.infolist():
            with zf.open(info) as fh:
                total += _npy_declared(fh, info.file_size, p, info.filename.removesuffix(".npy"))
        check_budget(p, total, f"the {what}")
    try:
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise UsageError(p, f"cannot read as .npz ({' '.join(str(exc).split())[:160]})") from None


def npz_names(path: str | Path) -> list[str]:
    """The array names of an .npz, from its directory (nothing inflated); [] for anything else."""
    try:
        p = regular_file(path)
        with zipfile.ZipFile(p) as zf:
            return [n.removesuffix(".npy") for n in zf.namelist()]
    except (UsageError, zipfile.BadZipFile, OSError):
        return []


# ------------------------------------------------------------------------------------------------ pickles
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


# ---------------------------------------------------------------------------------- TensorFlow graph ops
#: ops that reach the file system, run Python, or open readers of paths the graph names; a model that holds
#: one runs only when the user trusts it
DANGEROUS_TF_OPS = frozenset({
    "ReadFile", "WriteFile", "MatchingFiles", "PyFunc", "PyFuncStateless", "EagerPyFunc", "ImmutableConst",
    "WholeFileReader", "WholeFileReaderV2", "TextLineReader", "TextLineReaderV2", "FixedLengthRecordReader",
    "FixedLengthRecordReaderV2", "TFRecordReader", "TFRecordReaderV2", "LMDBReader", "IdentityReader",
    "IdentityReaderV2", "TFRecordDataset", "TFRecordDatasetV2", "TextLineDataset", "FixedLengthRecordDataset",
    "FixedLengthRecordDatasetV2", "LMDBDataset", "CSVDataset", "CSVDatasetV2", "SqlDataset", "SnapshotDataset",
    "SnapshotDatasetV2", "SaveDataset", "SaveDatasetV2", "LoadDataset", "DatasetToTFRecord", "MatchingFilesDataset",
    "CreateSummaryFileWriter", "CreateSummaryDbWriter", "WriteSummary", "WriteScalarSummary", "WriteAudioSummary",
    "WriteImageSummary", "WriteHistogramSummary", "WriteGraphSummary", "WriteRawProtoSummary", "ImportEvent",
    "FlushSummaryWriter", "InitializeTableFromTextFile", "InitializeTableFromTextFileV2", "LoadAndRemapMatrix",
    "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "DebugNanCount", "DebugNumericSummary",
    "DebugNumericSummaryV2", "DebugGradientIdentity", "Copy", "CopyHost",
    "CacheDataset", "CacheDatasetV2", "ExperimentalCSVDataset", "ExperimentalLMDBDataset", "ExperimentalSqlDataset",
    "ExperimentalMatchingFilesDataset", "ExperimentalSaveDataset", "DistributedSave", "SnapshotDatasetReader",
    "SnapshotNestedDatasetReader", "SnapshotChunkDataset", "ListSnapshotChunksDataset", "FileSystemSetConfiguration",
    "DecodeProtoV2", "EncodeProto", "GenerateVocabRemapping", "DataServiceDataset", "DataServiceDatasetV2",
    "DataServiceDatasetV3", "DataServiceDatasetV4", "RegisterDataset", "RegisterDatasetV2", "Rpc", "TryRpc",
    "RpcClient", "RpcCall", "RpcCheckStatus", "RpcServer", "RpcServerStart", "RpcServerRegister",
})
#: checkpoint writers: every SavedModel's own save functions hold them; anywhere else they write where the
#: graph says
_SAVER_OPS = frozenset({"SaveV2", "Save", "SaveSlices", "MergeV2Checkpoints", "RestoreV2", "Restore", "RestoreSlice"})


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, bytes | int]]:
    """(field, wire type, value) of one protobuf message; length-delimited values as bytes."""
    i, n = 0, len(buf)
    while i < n:
        tag, i = _varint(buf, i)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, i = _varint(buf, i)
            yield field, wire, value
        elif wire == 2:
            length, i = _varint(buf, i)
            if i + length > n:
                raise ValueError("truncated field")
            yield field, wire, buf[i:i + length]
            i += length
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"wire type {wire}")


def _node_ops(node: bytes) -> tuple[str, str, bytes]:
    name = op = ""
    for f, w, v in _fields(node):
        if w == 2 and f == 1:
            name = bytes(v).decode("utf-8", "replace")  # type: ignore[arg-type]
        elif w == 2 and f == 2:
            op = bytes(v).decode("utf-8", "replace")  # type: ignore[arg-type]
    return name, op, node


def _graph_nodes(graph: bytes) -> Iterator[tuple[str, str, str, bytes]]:
    """(function, node name, op, node bytes) of a GraphDef and of every function in its library."""
    for f, w, v in _fields(graph):
        if w != 2:
            continue
        if f == 1:  # GraphDef.node
            yield ("", *_node_ops(v))  # type: ignore[arg-type]
        elif f == 2:  # GraphDef.library
            for lf, lw, fn in _fields(v):  # type: ignore[arg-type]
                if lf != 1 or lw != 2:
                    continue
                fname = ""
                nodes = []
                for ff, fw, fv in _fields(fn):  # type: ignore[arg-type]
                    if ff == 1 and fw == 2:  # FunctionDef.signature (OpDef): its name is field 1
                        for sf, sw, sv in _fields(fv):  # type: ignore[arg-type]
                            if sf == 1 and sw == 2:
                                fname = bytes(sv).decode("utf-8", "replace")  # type: ignore[arg-type]
                    elif ff == 3 and fw == 2:  # FunctionDef.node_def
                        nodes.append(_node_ops(fv))  # type: ignore[arg-type]
                for n in nodes:
                    yield (fname, *n)


def _verdicts(nodes: Iterable[tuple[str, str, str, bytes]], saver_ok: Callable[[str, str], bool] | None = None
              ) -> list[str]:
    """The dangerous ops among ``nodes``; checkpoint ops pass only where ``saver_ok(function, node)`` says they
    belong to the model's own saver (never, without it)."""
    bad: list[str] = []
    for fname, name, op, raw in nodes:
        where = f"{name}{' in ' + fname if fname else ''}"
        if op in DANGEROUS_TF_OPS:
            bad.append(f"{op} ({where})")
        elif op == "PrintV2" and b"file://" in raw:
            bad.append(f"PrintV2 to a file ({where})")
        elif op in _SAVER_OPS and not (saver_ok is not None and saver_ok(fname, name)):
            bad.append(f"{op} ({where})")
    return bad


_TOKEN = re.compile(rb"[A-Za-z0-9_.\-/]{3,}")


def _node_inputs(raw: bytes) -> list[str]:
    return [bytes(v).decode("utf-8", "replace").lstrip("^").split(":")[0]  # type: ignore[arg-type]
            for f, w, v in _fields(raw) if f == 3 and w == 2]


def _saver_scope(nodes: list[tuple[str, str, str, bytes]], roots: set[str],
                 served: set[str] | None = None) -> Callable[[str, str], bool]:
    """Where checkpoint ops belong to the model's saver: top-level nodes that feed the saver's own nodes (the
    SaverDef names them), and functions only the saver calls. A checkpoint op anywhere the model's signatures
    reach (or in a function nothing reaches) writes where the graph says, and is flagged."""
    functions = {f for f, *_ in nodes if f}
    calls: dict[str, set[str]] = {}  # caller (node "name" at top level, or a function) -> functions it calls
    top: dict[str, bytes] = {}
    for fname, name, _op, raw in nodes:
        called = {t.decode() for t in _TOKEN.findall(raw)} & functions
        key = fname or f"node:{name}"
        calls.setdefault(key, set()).update(called - {fname})
        if not fname:
            top[name] = raw

    def reach(starts: Iterable[str]) -> set[str]:
        seen: set[str] = set()
        todo = list(starts)
        while todo:
            k = todo.pop()
            for f in calls.get(k, ()):
                if f not in seen:
                    seen.add(f)
                    todo.append(f)
        return seen

    def ancestors(starts: Iterable[str]) -> set[str]:
        seen: set[str] = set()
        todo = [r for r in starts if r in top]
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo += [i for i in _node_inputs(top[n]) if i in top]
        return seen

    saver_nodes = ancestors(roots)
    # what the signatures compute is the model's, whatever the SaverDef claims (a forged one may name the
    # serving node as the saver's)
    model_nodes = ancestors(served or ()) | (set(top) - saver_nodes)
    saver_fns = reach(f"node:{n}" for n in saver_nodes)
    model_fns = reach(f"node:{n}" for n in model_nodes)

    def ok(fname: str, name: str) -> bool:
        if not fname:
            return name in saver_nodes and name not in model_nodes
        return fname in saver_fns and fname not in model_fns

    return ok


def _saver_roots(meta: bytes) -> set[str]:
    """The node names a MetaGraphDef's SaverDef (field 3) names: its save tensor and its restore op."""
    roots: set[str] = set()
    for f, w, v in _fields(meta):
        if f == 3 and w == 2:
            for sf, sw, sv in _fields(v):  # type: ignore[arg-type]
                if sf in (1, 2, 3) and sw == 2:
                    roots.add(bytes(sv).decode("utf-8", "replace").lstrip("^").split(":")[0])  # type: ignore[arg-type]
    return roots


def _served_nodes(meta: bytes) -> set[str]:
    """The nodes a MetaGraphDef's signatures (field 5: name -> SignatureDef) read their inputs from and their
    outputs of: TensorInfo names in SignatureDef.inputs (1) and .outputs (2)."""
    out: set[str] = set()
    for f, w, entry in _fields(meta):
        if f != 5 or w != 2:
            continue
        for ef, ew, sig in _fields(entry):  # type: ignore[arg-type]
            if ef != 2 or ew != 2:
                continue
            for sf, sw, tmap in _fields(sig):  # type: ignore[arg-type]
                if sf in (1, 2) and sw == 2:
                    for mf, mw, info in _fields(tmap):  # type: ignore[arg-type]
                        if mf == 2 and mw == 2:
                            for tf_, tw, tv in _fields(info):  # type: ignore[arg-type]
                                if tf_ == 1 and tw == 2:
                                    out.add(bytes(tv).decode("utf-8", "replace").split(":")[0])  # type: ignore[arg-type]
    return out


def _saved_model_bytes(folder: Path) -> bytes | None:
    pb = folder / "saved_model.pb"
    if pb.is_file():
        return pb.read_bytes()
    text = folder / "saved_model.pbtxt"
    if not text.is_file():
        return None
    try:  # a text SavedModel (rare): TensorFlow's own protos parse it, then the same walk as the binary one
        from google.protobuf import text_format
        from tensorflow.core.protobuf import saved_model_pb2
    except ImportError:
        raise UntrustedModelError(folder, "a text SavedModel (saved_model.pbtxt) cannot be checked without "
                                          "TensorFlow", hint="--trust-model runs it unchecked") from None
    try:
        proto = text_format.Parse(read_regular(text, "SavedModel graph", 256 << 20).decode("utf-8", "replace"),
                                  saved_model_pb2.SavedModel())
    except text_format.ParseError as exc:
        raise ModelFormatError(folder, f"corrupt saved_model.pbtxt ({' '.join(str(exc).split())[:160]})") from None
    return bytes(proto.SerializeToString())


def saved_model_dangerous_ops(folder: Path) -> list[str]:
    """File-system, network and Python ops of a SavedModel's graphs (checkpoint ops of its own saver aside)."""
    data = _saved_model_bytes(folder)
    if data is None:
        return []
    out: list[str] = []
    try:
        for f, w, meta in _fields(data):
            if f == 2 and w == 2:  # SavedModel.meta_graphs
                for mf, mw, graph in _fields(meta):  # type: ignore[arg-type]
                    if mf == 2 and mw == 2:  # MetaGraphDef.graph_def
                        nodes = list(_graph_nodes(graph))  # type: ignore[arg-type]
                        scope = _saver_scope(nodes, _saver_roots(meta), _served_nodes(meta))  # type: ignore[arg-type]
                        out += _verdicts(nodes, scope)
    except ValueError as exc:
        raise ModelFormatError(folder, f"corrupt saved_model.pb ({exc})") from None
    return out


def tfjs_dangerous_ops(doc: dict) -> list[str]:  # type: ignore[type-arg]
    topo = doc.get("modelTopology") if isinstance(doc, dict) else None
    if not isinstance(topo, dict):
        return []
    nodes: list[tuple[str, str, str, bytes]] = []

    def add(fname: str, items: object) -> None:
        for n in items if isinstance(items, list) else []:
            if isinstance(n, dict):
                attrs = str(n.get("attr", ""))
                nodes.append((fname, str(n.get("name", "")), str(n.get("op", "")), attrs.encode()))

    add("", topo.get("node"))
    lib = topo.get("library")
    for fn in (lib.get("function") if isinstance(lib, dict) else None) or []:
        if isinstance(fn, dict):
            sig = fn.get("signature")
            add(str(sig.get("name", "")) if isinstance(sig, dict) else "", fn.get("nodeDef"))
    return _verdicts(nodes)  # a TF.js graph has no saver: a checkpoint op there is the graph's own


# ---------------------------------------------------------------------------------------------- trust
TRUST_ENV = "EDGESTUDIO_TRUST_MODELS"


def graph_digest(path: str | Path) -> str | None:
    """What trust is given to: the SHA-256 of a SavedModel's saved_model.pb or a TF.js model.json (so a copy of
    a trusted model, in a workspace or a package, stays trusted, and a changed graph does not)."""
    import hashlib

    p = Path(path)
    for f in (p / "saved_model.pb", p / "model.json", p):
        if f.is_file():
            h = hashlib.sha256()
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            return h.hexdigest()
    return None


def _trust_file() -> Path:
    env = os.environ.get("EDGESTUDIO_TRUST_FILE")
    if env:
        return Path(env)
    import platformdirs

    return platformdirs.user_data_path("edgestudio", appauthor=False) / "trusted-models.txt"


def _remembered() -> set[str]:
    try:
        return {line.split()[0] for line in _trust_file().read_text().splitlines() if line.strip()}
    except (OSError, IndexError):
        return set()


def trust(path: str | Path, *, remember: bool = False) -> None:
    """Let the model at ``path`` run its file-system / Python ops: for this process and the workers and
    environments it starts (``--trust-model``), or for good (``remember``: the studio asked and the user said
    yes; kept in the user's trusted-models file, which every worker reads)."""
    digest = graph_digest(path)
    if digest is None:
        return
    known = [d for d in os.environ.get(TRUST_ENV, "").split(",") if d]
    if digest not in known:
        os.environ[TRUST_ENV] = ",".join([*known, digest])
    if remember and digest not in _remembered():
        f = _trust_file()
        f.parent.mkdir(parents=True, exist_ok=True)
        with open(f, "a") as fh:
            fh.write(f"{digest} {display(str(path))}\n")


def trusted(path: str | Path) -> bool:
    digest = graph_digest(path)
    return digest is not None and (digest in os.environ.get(TRUST_ENV, "").split(",") or digest in _remembered())


def check_graph_ops(path: str | Path, found: list[str], kind: str) -> None:
    if found and not trusted(path):
        raise UntrustedModelError(path, f"the {kind} graph holds ops that reach the file system or run Python: "
                                     f"{', '.join(found[:3])}{f' and {len(found) - 3} more' if len(found) > 3 else ''}",
                               hint="EdgeStudio runs it only if you trust it: --trust-model")
