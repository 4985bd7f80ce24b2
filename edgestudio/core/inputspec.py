"""One input specification for every command: what the model is fed.

``--input FILE`` (an ``.npz`` keyed by input name, or an ``.npy`` for a model with one input), ``--shape
NAME=dims`` (repeatable; an unnamed shape applies to the first input) and ``--value NAME=scalar`` (an input
that must hold a fixed value, e.g. a sample rate). The same :class:`InputSpec` drives bench, parity, drift,
calibration, eval and packaging, so what the user gave is what every check runs on; random data is used only
for inputs nothing was given for, and :class:`Feeds` says so.

An array in the ``--input`` file whose rank is one more than the model input's is a stack of samples
(``(N, *input_shape)``); an array of the input's own rank is one sample. Names the model does not have are
an error that lists the real ones: nothing is silently ignored.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgestudio.core.errors import UsageError
from edgestudio.core.modelinfo import Dim, TensorSpec

#: for numerical checks only (never for a benchmark): the size given to a dynamic non-batch dim that
#: nothing fixed; results say so. 1 is the worst choice (convolutions and pooling shrink it to nothing).
CHECK_DYNAMIC_DIM = 64


@dataclass
class InputSpec:
    """What the user said about a model's data: its inputs, and what its outputs are (``--output-kind``, which
    chooses the task metrics of the checks). JSON-serialisable (jobs, workspace, recipes)."""

    data: str | None = None
    shapes: dict[str, list[int]] = field(default_factory=dict)
    values: dict[str, float | int] = field(default_factory=dict)  # an integer stays an int (token ids, 2**53+)
    outputs: dict[str, str] = field(default_factory=dict)  # output name -> kind (OUTPUT_KINDS)

    @property
    def empty(self) -> bool:
        return not (self.data or self.shapes or self.values)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"data": self.data, "shapes": {k: list(v) for k, v in self.shapes.items()},
                             "values": dict(self.values)}
        if self.outputs:
            d["outputs"] = dict(self.outputs)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any] | InputSpec | None) -> InputSpec:
        if isinstance(d, InputSpec):
            return d
        from edgestudio.core.requests import known_fields

        d = known_fields(cls, d, "an input specification")
        return cls(data=d.get("data") or None, shapes={k: [int(x) for x in v] for k, v in (d.get("shapes") or {}).items()},
                   values={k: _number(v) for k, v in (d.get("values") or {}).items()},
                   outputs=parse_output_kinds(f"{k}={v}" for k, v in (d.get("outputs") or {}).items()))

    @classmethod
    def from_cli(cls, data: str | None = None, shapes: Iterable[str] | None = None,
                 values: Iterable[str] | None = None, outputs: Iterable[str] | None = None) -> InputSpec:
        if data and not Path(data).exists():
            raise UsageError(None, f"{data}: no such file (--input)")
        return cls(data=str(Path(data).resolve()) if data else None, shapes=parse_shapes(shapes),
                   values=parse_values(values), outputs=parse_output_kinds(outputs))

    def merged(self, other: InputSpec | None) -> InputSpec:
        """``other``'s entries over this one's."""
        if other is None:
            return self
        return InputSpec(other.data or self.data, {**self.shapes, **other.shapes}, {**self.values, **other.values},
                         {**self.outputs, **other.outputs})

    def describe(self) -> str:
        parts = []
        if self.data:
            parts.append(f"inputs from {Path(self.data).name}")
        parts += [f"{k or 'input 0'}={'x'.join(map(str, v))}" for k, v in self.shapes.items()]
        parts += [f"{k}={_fmt_value(v)}" for k, v in self.values.items()]
        return ", ".join(parts) or "random inputs"

    # ------------------------------------------------------------------ checks against a model's inputs
    def check_names(self, specs: Sequence[TensorSpec], model: str | Path | None = None) -> None:
        """Every name given must be one of the model's inputs (an unnamed --shape is the first input)."""
        real = [s.name for s in specs]
        for flag, names in (("--shape", self.shapes), ("--value", self.values)):
            for name in names:
                if name and match_name(name, real) is None:
                    raise UsageError(model, f"{flag} names {name!r}, which is not an input of this model "
                                            f"(its inputs: {', '.join(real) or 'none'})")
        by_name = {s.name: s for s in specs}
        for name, v in self.values.items():
            check_value(by_name[match_name(name, real)], v, model)  # type: ignore[index]
        if self.data:
            arrays = self.arrays(specs)  # raises on unknown keys
            del arrays

    def arrays(self, specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
        """The ``--input`` file's arrays, keyed by the model's own input names."""
        if not self.data:
            return {}
        path = Path(self.data)
        real = [s.name for s in specs]
        from edgestudio.core.safety import load_arrays

        loaded = load_arrays(path, "input data")
        if not isinstance(loaded, dict):
            if len(specs) != 1:
                raise UsageError(path, f"a .npy holds one array but the model has {len(specs)} inputs "
                                       f"({', '.join(real)}): give an .npz keyed by input name")
            return {real[0]: loaded}
        out: dict[str, np.ndarray] = {}
        for key in loaded:
            if key == "y":  # labels of a dataset file: not an input
                continue
            name = match_name(key, real)
            if name is None and key == "x" and real and not any(match_name(k, real) == real[0] for k in loaded):
                name = real[0]  # a dataset's "x": the first input
            if name is None:
                raise UsageError(path, f"array {key!r} is not an input of this model "
                                       f"(its inputs: {', '.join(real)})")
            out[name] = loaded[key]
        return out


def npz_keys_are_inputs(path: str | Path, specs: Sequence[TensorSpec]) -> bool:
    """True for an ``.npz`` whose arrays are named after the model's inputs (not a dataset's ``x``/``y``)."""
    p = Path(path)
    if p.suffix != ".npz" or not p.is_file():
        return False
    from edgestudio.core.safety import npz_names

    keys = [k for k in npz_names(p) if k != "y"]
    real = [s.name for s in specs]
    return bool(keys) and "x" not in keys and all(match_name(k, real) for k in keys)


def _fmt_value(v: float | int) -> str:
    if isinstance(v, int):
        return str(v)
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _number(v: Any) -> float | int:
    """A --value as given: an integer stays exact (an int64 input takes 2**53 + 1), anything else a float."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        text = v.strip()
        if text.lower() in ("true", "false"):
            return int(text.lower() == "true")
        try:
            return int(text)
        except ValueError:
            return float(text)
    return float(v)


def check_value(s: TensorSpec, v: float | int, model: str | Path | None = None) -> None:
    """A --value must fit its input's dtype: an integer for an int input (within its range), 0/1 for a bool."""
    dtype = spec_dtype(s)
    if dtype.kind in "iub":
        if isinstance(v, float) and not v.is_integer():
            raise UsageError(model, f"--value {s.name}={_fmt_value(v)}: input {s.name!r} is {dtype.name}, "
                                    f"give an integer" + (" (0 or 1)" if dtype.kind == "b" else ""))
        n = int(v)
        lo, hi = (0, 1) if dtype.kind == "b" else (np.iinfo(dtype).min, np.iinfo(dtype).max)
        if not lo <= n <= hi:
            raise UsageError(model, f"--value {s.name}={_fmt_value(v)}: out of range for input {s.name!r} "
                                    f"({dtype.name}: {lo} to {hi})")


_SUFFIX = re.compile(r":\d+$")


def normalize_name(name: str) -> str:
    """Names as converters mangle them: ``serving_default_x:0`` -> ``x``; case and punctuation ignored."""
    n = _SUFFIX.sub("", name)
    n = n.removeprefix("serving_default_")
    return re.sub(r"[^0-9a-z]", "", n.lower())


def match_name(name: str, real: Sequence[str]) -> str | None:
    """The model input ``name`` refers to: exact, then as converters mangle names."""
    if name in real:
        return name
    norm = normalize_name(name)
    hits = [r for r in real if normalize_name(r) == norm]
    return hits[0] if len(hits) == 1 else None


def parse_shapes(items: Iterable[str] | None) -> dict[str, list[int]]:
    """``["name=1,3,224,224", "1x28x28x1", "sr="]``; an unnamed shape applies to the first input (""); a named
    empty shape (``sr=`` or ``sr=[]``) is a 0-d scalar."""
    out: dict[str, list[int]] = {}
    for item in items or []:
        name, sep, dims = item.rpartition("=")
        dims = dims.strip()
        if dims.startswith(("[", "(")) and dims.endswith(("]", ")")):
            dims = dims[1:-1]
        try:
            shape = [int(x) for x in dims.replace("x", ",").split(",") if x.strip()]
        except ValueError:
            raise UsageError(None, f"bad --shape {item!r}: expected NAME=1,3,224,224 (NAME= for a scalar)") from None
        if not shape and not (sep and name.strip()):
            raise UsageError(None, f"bad --shape {item!r}: expected NAME=1,3,224,224 (NAME= for a scalar)")
        if any(d <= 0 for d in shape):
            raise UsageError(None, f"bad --shape {item!r}: dimensions must be positive integers")
        out[name.strip()] = shape
    return out


def parse_values(items: Iterable[str] | None) -> dict[str, float | int]:
    """``["sr=16000"]``: an input that holds this value (filled to its shape; a 0-d input is that scalar). An
    integer stays an int; ``true``/``false`` are 1/0."""
    out: dict[str, float | int] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(None, f"bad --value {item!r}: expected NAME=number (e.g. sr=16000)")
        try:
            v = _number(value)
        except ValueError:
            raise UsageError(None, f"bad --value {item!r}: {value!r} is not a number") from None
        if isinstance(v, float) and not np.isfinite(v):
            raise UsageError(None, f"bad --value {item!r}: {value!r} is not a finite number")
        out[name.strip()] = v
    return out


# ------------------------------------------------------------------------------------------ shapes
#: what an output is, for the task metrics of the checks (``--output-kind NAME=KIND``)
OUTPUT_KINDS = ("logits", "scores", "boxes", "embedding", "mask", "landmarks", "raw")


def parse_output_kinds(items: Iterable[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or ():
        name, sep, kind = str(item).rpartition("=")
        kind = kind.strip().lower()
        if not sep or not name.strip():
            raise UsageError(None, f"--output-kind {item!r}: expected NAME=KIND (KIND one of {', '.join(OUTPUT_KINDS)})")
        if kind not in OUTPUT_KINDS:
            raise UsageError(None, f"--output-kind {item!r}: unknown kind {kind!r} (one of {', '.join(OUTPUT_KINDS)})")
        out[name.strip()] = kind
    return out


def _is_fixed(d: Dim) -> bool:
    return isinstance(d, int) and d >= 0


def _in_model_layout(shape: list[int], dims: Sequence[Dim]) -> list[int]:
    """A shape written for the model's parent in the other layout (NCHW given to its NHWC conversion: a variant
    inherits its original's input specification), as this model lays it out; any other shape as it is."""
    n = len(dims)
    if n < 3 or _matches(shape, list(dims)):
        return shape
    for perm in ((0, n - 1, *range(1, n - 1)), (0, *range(2, n), 1)):
        moved = [shape[p] for p in perm]
        if _matches(moved, list(dims)):
            return moved
    return shape


def resolve_shapes(specs: Sequence[TensorSpec], spec: InputSpec | None = None, *,
                   dynamic_default: int | None = None, model: str | Path | None = None,
                   given: dict[str, np.ndarray] | None = None) -> dict[str, list[int]]:
    """A concrete shape per input. Dynamic dims come from ``--shape``, from the ``--input`` arrays, from a
    dim of the same name elsewhere, the first (batch) dim from 1; the rest from ``dynamic_default`` when
    given (numerical checks), else a :class:`UsageError` asking for ``--shape``."""
    spec = spec or InputSpec()
    real = [s.name for s in specs]
    overrides: dict[str, list[int]] = {}
    for key, dims in spec.shapes.items():
        name = real[0] if key == "" and real else match_name(key, real)
        if name is None:
            raise UsageError(model, f"--shape names {key!r}, which is not an input of this model "
                                    f"(its inputs: {', '.join(real) or 'none'})")
        overrides[name] = list(dims)
    named: dict[str, int] = {}
    out: dict[str, list[int]] = {}
    for s in specs:  # first pass: what is fixed explicitly, to learn named dims
        shape = overrides.get(s.name)
        if shape is None and given and s.name in given:
            arr = given[s.name]
            shape = list(arr.shape[1:]) if arr.ndim == len(s.shape) + 1 and s.shape != ["?"] else list(arr.shape)
        if shape is None:
            continue
        if s.shape != ["?"] and len(shape) != len(s.shape):
            raise UsageError(model, f"shape {shape} for input {s.name!r} has rank {len(shape)}, the model's input "
                                    f"has rank {len(s.shape)} ({format_dims(s.shape)})")
        if s.name in overrides and s.shape != ["?"]:
            shape = _in_model_layout(shape, s.shape)
        for want, got in zip(s.shape, shape):
            if _is_fixed(want) and want != got:
                raise UsageError(model, f"shape {shape} for input {s.name!r} conflicts with its static shape "
                                        f"{format_dims(s.shape)}")
            if isinstance(want, str) and want not in ("?", "") and not want.lstrip("-").isdigit():
                named.setdefault(want, got)
        out[s.name] = list(shape)
    for s in specs:
        if s.name in out:
            continue
        if s.shape == ["?"] and any(match_name(k, real) == s.name for k in spec.values):
            out[s.name] = []  # a --value for an input of unknown rank (a TorchScript Tensor): a 0-d scalar
            continue
        if s.shape == ["?"]:  # unknown rank
            raise UsageError(model, f"input {s.name!r} has an unknown rank: give --shape {s.name}=...")
        shape = []
        for i, d in enumerate(s.shape):
            if _is_fixed(d):
                shape.append(int(d))
            elif isinstance(d, str) and d in named:
                shape.append(named[d])
            elif i == 0:
                shape.append(1)
                if isinstance(d, str) and d not in ("?", ""):
                    named[d] = 1
            elif dynamic_default is not None:
                shape.append(dynamic_default)
                if isinstance(d, str) and d not in ("?", ""):
                    named[d] = dynamic_default
            else:
                raise UsageError(model, f"input {s.name!r} has dynamic dims {format_dims(s.shape)}: give its shape "
                                        f"with --shape {s.name}=" + ",".join(
                                            str(x) if _is_fixed(x) else ("1" if j == 0 else "N")
                                            for j, x in enumerate(s.shape)) + " (or real data with --input)")
        out[s.name] = shape
    return out


def looks_channels_last(shape: Sequence[Dim]) -> bool | None:
    """For a 4-D input: True if it looks NHWC, False if NCHW, None if it cannot be told."""
    if len(shape) != 4:
        return None
    c1, c3 = shape[1], shape[3]
    first = isinstance(c1, int) and c1 in (1, 2, 3, 4)
    last = isinstance(c3, int) and c3 in (1, 2, 3, 4)
    if last and not first:
        return True
    if first and not last:
        return False
    if first and last:  # e.g. [N, 3, 8, 1]: the side with the larger spatial dims wins
        return None
    return None


def format_dims(shape: Sequence[Dim]) -> str:
    return "[" + ", ".join(short_dim(d) for d in shape) + "]"


def short_dim(d: Dim) -> str:
    """One short string for a dim: ``3``, ``batch``, ``?`` (long symbolic expressions become ``?``)."""
    if isinstance(d, int):
        return "?" if d < 0 else str(d)
    text = " ".join(str(d).split())
    if not text or len(text) > 24 or not re.fullmatch(r"[\w.:/-]+", text):
        return "?"
    return text


# ------------------------------------------------------------------------------------------ layout
def _matches(shape: list[int], spec: list[Dim]) -> bool:
    return len(shape) == len(spec) and all(not isinstance(s, int) or s < 0 or s == d for d, s in zip(shape, spec))


def layout_perm(shape: list[int], spec: list[Dim]) -> tuple[int, ...] | None:
    """The permutation that makes ``shape`` fit ``spec`` (None: as it is), or ValueError."""
    if _matches(shape, spec):
        return None
    n = len(shape)
    if n < 3 or n != len(spec):
        raise ValueError(f"input shape {shape} does not fit {format_dims(spec)}")
    channels_last_to_first = (0, n - 1, *range(1, n - 1))
    channels_first_to_last = (0, *range(2, n), 1)
    for perm in (channels_last_to_first, channels_first_to_last, *itertools.permutations(range(n))):
        if _matches([shape[p] for p in perm], spec):
            return tuple(perm)
    raise ValueError(f"input shape {shape} does not fit {format_dims(spec)} in any layout")


# ------------------------------------------------------------------------------------------- feeds
@dataclass
class Feeds:
    """Samples to run a model on (each a full feed dict) and where they came from."""

    samples: list[dict[str, np.ndarray]]
    sources: dict[str, str]  # input name -> "your --input", "--value", "dataset", "random"
    notes: list[str] = field(default_factory=list)

    @property
    def random(self) -> bool:
        """True when every input is random (no real data at all)."""
        return all(v == "random" for v in self.sources.values())

    @property
    def partly_random(self) -> bool:
        return any(v == "random" for v in self.sources.values())

    def to_dict(self) -> dict[str, Any]:
        return {"samples": len(self.samples), "sources": dict(self.sources), "random": self.random,
                "shapes": {k: list(v.shape) for k, v in (self.samples[0] if self.samples else {}).items()},
                "notes": list(self.notes)}


def _random_array(shape: list[int], dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    if dtype.kind == "f":
        return rng.random(shape, dtype=np.float32).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.kind in "iu":
        lo, hi = (0, 2) if dtype.kind == "u" or dtype.itemsize > 1 else (-2, 2)
        return rng.integers(lo, hi, shape).astype(dtype)
    raise UsageError(None, f"cannot generate data of dtype {dtype}")


def _samples(n: int) -> str:
    return f"{n} sample{'s' if n != 1 else ''}"


def _contiguous(arr: np.ndarray, dtype: np.dtype, s: TensorSpec, where: str | Path | None, *,
                check: bool = True) -> np.ndarray:
    """``arr`` as the input takes it: its dtype, C-contiguous, a 0-d array kept 0-d (``np.ascontiguousarray``
    makes it 1-d), a scalar given for an input of shape [1] or [1, 1] reshaped to it. Integers for an integer
    input must be whole numbers: 3.7 is never silently truncated to a token id."""
    arr = np.asarray(arr)
    if arr.ndim == 0 and s.shape not in (["?"], []) and all(d == 1 for d in s.shape):
        arr = arr.reshape([1] * len(s.shape))
    if check and dtype.kind in "iub" and arr.dtype.kind == "f" and arr.size and \
            not np.all(np.isfinite(arr) & (arr == np.round(arr))):
        raise UsageError(where, f"input {s.name!r} is {dtype.name} but its data holds non-integer values "
                                f"(e.g. {arr.flat[int(np.argmax(arr != np.round(arr)))]:g})")
    return np.require(arr.astype(dtype, copy=False), requirements="C")


def spec_dtype(s: TensorSpec) -> np.dtype:
    return np.dtype(s.dtype) if s.dtype not in ("unknown", "str") else np.dtype("float32")


def _check_feed_budget(specs: Sequence[TensorSpec], shapes: dict[str, list[int]], sources: dict[str, str],
                       per_input: dict[str, Any], n: int, where: str | Path | None) -> None:
    """The feeds a job will make (random or --value arrays of the resolved shapes, n samples), and the runtime's
    copies of them, must fit the memory budget: a model declaring a 3 GB input is refused before allocation."""
    from edgestudio.core.safety import check_budget

    total = 0
    for s in specs:
        if sources.get(s.name) in ("random", "--value") and s.name in shapes:
            count = 1
            for d in shapes[s.name]:
                count *= max(int(d), 1)
            total += count * max(spec_dtype(s).itemsize, 1)
    check_budget(where, 4 * total * max(n, 1), f"the inputs ({', '.join(f'{k} {v}' for k, v in shapes.items())}"
                                              f"{f' x {n} samples' if n > 1 else ''}) and the runtime's copies")


def make_feeds(specs: Sequence[TensorSpec], spec: InputSpec | None = None, *, count: int | None = 1, seed: int = 0,
               dynamic_default: int | None = None, data: dict[str, list[np.ndarray]] | None = None,
               data_source: str = "dataset", model: str | Path | None = None) -> Feeds:
    """``count`` feed dicts for ``specs`` (``None``: as many as the user's data holds; fewer when it holds fewer).

    Per input, in order: the user's ``--input`` arrays; ``--value``; ``data`` (samples from a calibration or
    evaluation set, per input name); random data of the resolved shape (``resolve_shapes``).
    """
    spec = spec or InputSpec()
    spec.check_names(specs, model)
    real = [s.name for s in specs]
    ranked = {(real[0] if k == "" and real else match_name(k, real)): v for k, v in spec.shapes.items()}
    # an input of unknown rank (TorchScript) has the rank --shape gives it: an --input array of one more is N samples
    specs = [TensorSpec(s.name, list(ranked[s.name]), s.dtype) if s.shape == ["?"] and s.name in ranked else s
             for s in specs]
    given = spec.arrays(specs)
    notes: list[str] = []
    for s in specs:  # a batch of N given to a model whose batch is fixed at 1: N samples of batch 1
        arr = given.get(s.name)
        if (arr is not None and s.shape != ["?"] and len(s.shape) > 1 and arr.ndim == len(s.shape)
                and s.shape[0] == 1 and arr.shape[0] > 1):
            given[s.name] = arr[:, None]
            notes.append(f"{s.name}: {arr.shape[0]} samples of batch 1 (the model's batch is fixed at 1)")
    for s in specs:  # samples written for the model's parent in the other layout (NCHW for an NHWC conversion)
        arr = given.get(s.name)
        if arr is None or s.shape == ["?"] or len(s.shape) < 3 or arr.ndim not in (len(s.shape), len(s.shape) + 1):
            continue
        one = list(arr.shape[1:]) if arr.ndim == len(s.shape) + 1 else list(arr.shape)
        try:
            perm = layout_perm(one, s.shape)
        except ValueError:
            continue
        n = len(s.shape)
        if perm in ((0, n - 1, *range(1, n - 1)), (0, *range(2, n), 1)):
            stacked = arr.ndim == n + 1
            given[s.name] = arr.transpose((0, *(p + 1 for p in perm)) if stacked else perm)
            notes.append(f"{s.name}: the data's {format_dims(one)} taken as {format_dims(s.shape)} "
                         f"({'NCHW -> NHWC' if perm[-1] == 1 else 'NHWC -> NCHW'}, as this model lays it out)")
    if count != 1:  # a dynamic batch's rows are samples: [8, 32] is 8 sentences, never one repeated
        rows = {s.name: given[s.name].shape[0] for s in specs if s.name in given and s.shape != ["?"]
                and len(s.shape) > 1 and given[s.name].ndim == len(s.shape) and not _is_fixed(s.shape[0])
                and given[s.name].shape[0] > 1}
        if rows and len(set(rows.values())) == 1:
            for name, n_rows in rows.items():
                given[name] = given[name][:, None]
            notes.append(f"{', '.join(rows)}: {next(iter(rows.values()))} rows taken as {next(iter(rows.values()))} "
                         "samples of batch 1 (the batch dimension is dynamic)")
    values = {match_name(k, real): v for k, v in spec.values.items()}
    shapes = resolve_shapes(specs, spec, dynamic_default=dynamic_default, model=model, given=given)
    per_input: dict[str, list[np.ndarray] | np.ndarray] = {}
    sources: dict[str, str] = {}
    stacked_n: set[int] = set()
    for s in specs:
        dtype = spec_dtype(s)
        if s.name in given:
            arr = given[s.name]
            if s.shape != ["?"] and arr.ndim == len(s.shape) + 1:
                per_input[s.name] = [_contiguous(a, dtype, s, spec.data) for a in arr]
                stacked_n.add(len(arr))
            else:  # one sample (a 0-d array: that scalar), the same in every sample
                per_input[s.name] = _contiguous(arr, dtype, s, spec.data)
            sources[s.name] = "your --input"
        elif s.name in values:
            per_input[s.name] = np.full(shapes[s.name], values[s.name], dtype=dtype)
            sources[s.name] = "--value"
        elif data and s.name in data and data[s.name]:
            per_input[s.name] = [_contiguous(np.asarray(a), dtype, s, model, check=False) for a in data[s.name]]
            stacked_n.add(len(data[s.name]))
            sources[s.name] = data_source
        else:
            sources[s.name] = "random"
    if len(stacked_n) > 1:
        raise UsageError(spec.data or model, f"the inputs hold different numbers of samples ({sorted(stacked_n)})")
    if stacked_n:
        n = min(stacked_n) if count is None else min(min(stacked_n), count)
        if count is not None and n < count:
            notes.append(f"{_samples(n)} in the data, fewer than the {count} asked for: all {n} used, none repeated"
                         if n > 1 else f"1 sample in the data, fewer than the {count} asked for: used once, "
                                       "not repeated")
    elif all(v != "random" for v in sources.values()):
        n = 1  # every input fixed by the user: one distinct sample, never repeated to reach a count
        if count is not None and count > 1 and sources:
            notes.append(f"1 distinct sample (every input is fixed by your --input / --value), fewer than the "
                         f"{count} asked for: used once, not repeated")
    else:
        n = count or 1
    _check_feed_budget(specs, shapes, sources, per_input, n, spec.data or model)
    rng_shapes = {k: v for k, v in shapes.items() if sources[k] == "random"}
    if rng_shapes and dynamic_default is not None:
        dyn = [s.name for s in specs if sources[s.name] == "random" and not s.is_static
               and any(not _is_fixed(d) for d in s.shape[1:])
               and s.name not in {match_name(k, real) if k else real[0] for k in spec.shapes}]
        if dyn:
            notes.append(f"dynamic dims of {', '.join(dyn)} set to {dynamic_default} for this check "
                         f"(fix them with --shape)")
    samples: list[dict[str, np.ndarray]] = []
    for i in range(max(n, 1)):
        rng = np.random.default_rng(seed + i)
        feed: dict[str, np.ndarray] = {}
        for s in specs:
            v = per_input.get(s.name)
            if isinstance(v, list):
                feed[s.name] = v[i % len(v)]
            elif v is not None:
                feed[s.name] = v
            else:
                feed[s.name] = _random_array(rng_shapes[s.name], spec_dtype(s), rng)
        samples.append(feed)
    if any(v == "random" for v in sources.values()) and not all(v == "random" for v in sources.values()):
        notes.append("random data for " + ", ".join(k for k, v in sources.items() if v == "random"))
    return Feeds(samples, sources, notes)
