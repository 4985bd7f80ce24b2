"""Typed job results: what each job kind returns, as dataclasses, parsed strictly from the JSON a job sends back.

A job's result travels and is stored as JSON (a worker's pipe, an environment's stdout, a device agent's socket,
the workspace). :func:`typed_result` turns it back into its kind's type: a key the type does not declare, at any
depth it types, is refused, as a misspelt option is refused in a request (:mod:`edgestudio.core.requests`).

- ``inspect``: :class:`~edgestudio.core.modelinfo.ModelInfo`; ``bench``: :class:`~edgestudio.bench.latency.BenchResult`;
  ``eval``: :class:`EvalJobResult`; ``convert``: :class:`ConvertResult`; ``optimize`` with a method:
  :class:`OptimizeResult`. Auto-optimize, packages and CALL jobs return tables whose shape is their function's: they
  stay mappings.
- What the executors add (where the job ran, the workspace's ids, the artifacts to register) is the
  :class:`Envelope`, the same for every kind.

The job runner checks every result against its type (:func:`check_result`): with ``EDGESTUDIO_STRICT_RESULTS=1``
(the tests) a result that does not match fails its job; otherwise the mismatch is said in the job's log.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from edgestudio.bench.accuracy import EvalResult
from edgestudio.bench.latency import BenchResult
from edgestudio.core.jobs import JobKind, JobSpec
from edgestudio.core.modelinfo import ModelInfo


class ResultError(ValueError):
    """A result that does not match its kind's type."""


@dataclass
class Envelope:
    """What the executors add to any result."""

    executed_by: dict[str, Any] | None = None  # a Python environment's interpreter: python, prefix
    executed_on: dict[str, Any] | None = None  # a Ray node: node, pid, ray_node, started, finished
    env: str | None = None  # the environment it was sent to
    agent: dict[str, Any] | None = None  # the device agent that ran it: device, host, port, transfer_s, path
    model_ids: list[int] | None = None  # the workspace's ids of the artifacts it made
    artifacts: list[dict[str, Any]] | None = None  # the artifacts to register, with their lineage


ENVELOPE_KEYS = frozenset(f.name for f in dataclasses.fields(Envelope))


@dataclass
class EvalJobResult(EvalResult):
    dataset: str | None = None  # which data (a recipe replays it)


@dataclass
class ConvertStep:
    """One hop: ``from`` -> ``to`` with ``converter``, its parity check against its parent."""

    source: str = field(metadata={"key": "from"})
    target: str = field(metadata={"key": "to"})
    converter: str
    output: str | None
    seconds: float
    parity: dict[str, Any] | None
    versions: dict[str, str] = field(default_factory=dict)
    route: str | None = None


@dataclass
class ConvertResult:
    output: str
    steps: list[ConvertStep]
    seconds: float
    verdict: str
    warnings: list[str] = field(default_factory=list)
    unavailable_converters: dict[str, list[str]] = field(default_factory=dict)
    source: str | None = None  # a conversion across environments: the model it started from


@dataclass
class SizeBytes:
    before: int
    after: int


@dataclass
class OptimizeResult:
    output: str
    method: str
    runtime: str
    size_bytes: SizeBytes
    seconds: float
    source_format: str
    steps: list[dict[str, Any]] = field(default_factory=list)
    accuracy: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    reference: str | None = None


RESULT_TYPES: dict[JobKind, type] = {JobKind.INSPECT: ModelInfo, JobKind.BENCH: BenchResult,
                                     JobKind.EVAL: EvalJobResult, JobKind.CONVERT: ConvertResult,
                                     JobKind.OPTIMIZE: OptimizeResult}


def result_type(spec: JobSpec) -> type | None:
    """The type of ``spec``'s result, or None where its shape is its function's (auto-optimize, packages, calls)."""
    if spec.kind is JobKind.OPTIMIZE and spec.request.auto:
        return None
    return RESULT_TYPES.get(spec.kind)


@dataclass
class TypedResult:
    """A job's result: its kind's type (``body``; a mapping for untyped kinds) and what the executors added."""

    body: Any
    envelope: Envelope


def typed_result(spec: JobSpec, result: dict[str, Any]) -> TypedResult:
    """``result`` (a job's JSON result) as its kind's type; ResultError naming the first key that does not fit."""
    return _split(spec.kind, result_type(spec), result)


def parse_result(kind: JobKind, result: dict[str, Any], *, besides: tuple[str, ...] = ()) -> TypedResult:
    """``result`` as ``kind``'s type (a typed kind: inspect, bench, eval, convert, a method's optimize); ``besides``:
    keys a caller added to it itself (left out, read by that caller)."""
    return _split(kind, RESULT_TYPES[kind], result, besides)


def _split(kind: JobKind, cls: type | None, result: Any, besides: tuple[str, ...] = ()) -> TypedResult:
    """The envelope and the body (as ``cls``; left a mapping when None) of ``result``."""
    if not isinstance(result, dict):
        raise ResultError(f"a {kind.value} result must be a mapping, not {type(result).__name__}")
    envelope = parse(Envelope, {k: v for k, v in result.items() if k in ENVELOPE_KEYS}, "result")
    body = {k: v for k, v in result.items() if k not in ENVELOPE_KEYS and k not in besides}
    return TypedResult(body if cls is None else parse(cls, body, f"{kind.value} result"), envelope)


def check_result(spec: JobSpec, result: dict[str, Any]) -> str | None:
    """None when ``result`` fits its kind's type, else why not (one line)."""
    try:
        typed_result(spec, result)
    except ResultError as exc:
        return str(exc)
    return None


# --------------------------------------------------------------------------------------------- the parser
def _key(f: dataclasses.Field) -> str:  # type: ignore[type-arg]
    return str(f.metadata.get("key", f.name))


def parse(tp: Any, value: Any, where: str) -> Any:
    """``value`` (JSON) as type ``tp``: dataclasses (their fields' own types; a field's JSON key may be renamed with
    ``metadata={"key": ...}``), enums, unions, ``list[X]``, ``dict[str, X]``, ``Any`` and the JSON scalars.
    ResultError names the path of the first value that does not fit."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(tp):
            return None
        errors = []
        for member in typing.get_args(tp):
            if member is type(None):
                continue
            try:
                return parse(member, value, where)
            except ResultError as exc:
                errors.append(str(exc))
        raise ResultError(errors[0] if len(errors) == 1 else f"{where}: {value!r:.60} fits none of {tp}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ResultError(f"{where} must be a list, not {type(value).__name__}")
        (item,) = typing.get_args(tp)[:1] or (Any,)
        return [parse(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ResultError(f"{where} must be a mapping, not {type(value).__name__}")
        _, item = typing.get_args(tp) or (str, Any)
        return {str(k): parse(item, v, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _parse_dataclass(tp, value, where)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            raise ResultError(f"{where}: {value!r:.60} is not a {tp.__name__}") from None
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp in (str, bool):
        if isinstance(value, tp):
            return value
    elif tp is type(None):
        if value is None:
            return None
    else:
        return value  # a type this parser does not check (kept as it is)
    raise ResultError(f"{where} must be {getattr(tp, '__name__', tp)}, not {value!r:.60}")


def _parse_dataclass(cls: type, value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        raise ResultError(f"{where} must be a mapping, not {type(value).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {_key(f): f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise ResultError(f"{where} does not take {', '.join(map(repr, unknown))} (it takes: {', '.join(fields)})")
    kwargs = {}
    for key, f in fields.items():
        if key in value:
            kwargs[f.name] = parse(hints[f.name], value[key], f"{where}.{key}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ResultError(f"{where} lacks {key!r}")
    return cls(**kwargs)
