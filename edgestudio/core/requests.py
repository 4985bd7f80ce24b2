"""Typed job requests: what each kind of job takes, one dataclass per kind.

A :class:`~edgestudio.core.jobs.JobSpec` is ``(kind, request)`` plus where it runs; on the wire (pipes, JSON lines,
the workspace) the request travels as its dict, ``JobSpec.options``. :func:`parse_request` turns that dict back
into the kind's dataclass and refuses what the kind does not take (a misspelt option used to be ignored
silently). Task functions read ``spec.request``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from edgestudio.core.errors import UsageError


@dataclass
class InspectRequest:
    shapes: dict[str, Any] = field(default_factory=dict)


@dataclass
class BenchRequest:
    iterations: int = 100
    warmup: int = 10
    duration_s: float | None = None
    threads: int | None = None
    shapes: dict[str, Any] = field(default_factory=dict)
    precision: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)  # an InputSpec as a dict
    keep_samples: bool = True

    def __post_init__(self) -> None:
        _bounded(iterations=self.iterations, warmup=self.warmup, duration=self.duration_s, threads=self.threads)


@dataclass
class ConvertRequest:
    to: str = ""
    via: list[str] = field(default_factory=list)
    simplify: bool = False
    keep_intermediate: bool = False
    convert: dict[str, Any] = field(default_factory=dict)  # ConvertOptions as a dict

    def __post_init__(self) -> None:
        if not self.to:
            raise UsageError(None, "a conversion job needs a target format ('to')")


@dataclass
class OptimizeRequest:
    method: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # OptimizeOptions as a dict
    keep_reference: bool = False
    auto: bool = False
    iterations: int = 200
    bench_device: str | None = None  # auto: measure the candidates on this device (e.g. CPU@agent:pi)

    def __post_init__(self) -> None:
        _bounded(iterations=self.iterations)
        if not self.method and not self.auto:
            raise UsageError(None, "an optimization job needs a method (or auto)")


@dataclass
class EvalRequest:
    dataset: str = ""
    limit: int | None = None
    inputs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _bounded(limit=self.limit)
        if not self.dataset:
            raise UsageError(None, "an evaluation job needs a dataset")


@dataclass
class PackageRequest:
    dataset: str | None = None
    input: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    iterations: int = 100
    tflm: bool = False
    lineage: list[dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        _bounded(iterations=self.iterations)


@dataclass
class CallRequest:
    """Call an importable ``module:function`` with ``kwargs`` (extensions, environment management, tests)."""

    function: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if ":" not in self.function:
            raise UsageError(None, f"a call job needs 'module:function', not {self.function!r}")


def known_fields(cls: type, d: dict[str, Any] | None, what: str) -> dict[str, Any]:
    """``d``'s items, refused with a UsageError naming every key ``cls`` (a dataclass) does not take: a misspelt
    option is an error at every depth (a job's request, its convert/optimize options, its input specification),
    never a silent default."""
    if d is not None and not isinstance(d, dict):
        raise UsageError(None, f"{what} must be a mapping, not {type(d).__name__}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(d or {}) - set(names))
    if unknown:
        raise UsageError(None, f"{what} does not take {', '.join(map(repr, unknown))} (it takes: {', '.join(names)})")
    return dict(d or {})


def _bounded(**values: Any) -> None:
    from edgestudio.core.safety import check_number

    for name, value in values.items():
        check_number(name, value)


# kind value -> request type (kinds are JobKind values; plain strings keep this module free of jobs.py)
REQUEST_TYPES: dict[str, type] = {
    "inspect": InspectRequest, "bench": BenchRequest, "convert": ConvertRequest, "optimize": OptimizeRequest,
    "eval": EvalRequest, "package": PackageRequest, "call": CallRequest,
}


def register_request(kind: str, request_type: type) -> None:
    """A new job kind's request type (with its task in ``edgestudio.jobs.tasks.TASKS``)."""
    REQUEST_TYPES[kind] = request_type


def parse_request(kind: str, options: dict[str, Any] | None) -> Any:
    """The typed request of a job of ``kind`` from its options dict; unknown options are an error."""
    cls = REQUEST_TYPES.get(kind)
    if cls is None:
        raise UsageError(None, f"job kind {kind!r} is not available in this version")
    return cls(**known_fields(cls, options, f"a {kind} job"))


def request_options(request: Any) -> dict[str, Any]:
    """The options dict (wire form) of a typed request."""
    return dataclasses.asdict(request)


def kind_of(request: Any) -> str:
    for kind, cls in REQUEST_TYPES.items():
        if type(request) is cls:
            return kind
    raise TypeError(f"{type(request).__name__} is not a registered job request")
