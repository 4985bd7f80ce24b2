"""What a model or a data file may make EdgeStudio do: nothing of its own code runs while it is read, and no small
file takes the machine.

- **Pickles** of PyTorch archives are read without unpickling: :mod:`edgestudio.core.pickles`.
- **TensorFlow graphs** that hold file-system or Python ops are refused unless the user trusts that model
  (``--trust-model``; the studio asks): :mod:`edgestudio.core.graph_ops` reads their ops, :func:`trust` here.
- **Budgets**: what a file declares (tensor shapes, unpacked sizes) is checked against the memory budget
  (:func:`memory_budget`) before anything is allocated or inflated.
- **Only regular files** are read as data (a FIFO blocks for ever, ``/dev/zero`` never ends).
"""

from __future__ import annotations

import os
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path

from edgestudio.core.errors import ModelFormatError, UntrustedModelError, UsageError, display

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
