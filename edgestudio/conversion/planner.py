"""Plan a conversion: the converters form a graph over formats; the best path has the fewest hops, then
the lowest summed preference. Converters whose packages are missing are reported, not silently skipped."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from edgestudio.backends.converters.base import CONVERTERS, ConversionError, Converter
from edgestudio.core.formats import ModelFormat


@dataclass(frozen=True)
class Hop:
    source: ModelFormat
    target: ModelFormat
    converter: str

    def to_dict(self) -> dict[str, str]:
        return {"from": self.source.value, "to": self.target.value, "converter": self.converter}


@dataclass
class ConversionPlan:
    hops: list[Hop]
    unavailable: dict[str, list[str]] = field(default_factory=dict)  # converter -> missing packages

    def describe(self) -> str:
        if not self.hops:
            return "(nothing to do)"
        chain = [self.hops[0].source.value] + [f"--{h.converter}--> {h.target.value}" for h in self.hops]
        return " ".join(chain)

    def to_dict(self) -> dict[str, object]:
        return {"hops": [h.to_dict() for h in self.hops], "unavailable": self.unavailable}


def _edges(exclude: frozenset[str]) -> tuple[list[type[Converter]], dict[str, list[str]]]:
    usable, unavailable = [], {}
    for name, cls in sorted(CONVERTERS.all().items()):
        if name in exclude:
            continue
        missing = cls.missing_packages()
        if missing:
            unavailable[name] = missing
        else:
            usable.append(cls)
    return usable, unavailable


def _shortest(source: ModelFormat, target: ModelFormat, convs: list[type[Converter]],
              simplify: bool) -> list[Hop] | None:
    """Dijkstra over (hops, preference). ONNX->ONNX (simplification) is only taken when asked for."""
    heap: list[tuple[int, int, int, ModelFormat, list[Hop]]] = [(0, 0, 0, source, [])]
    seen: set[ModelFormat] = set()
    tie = 0
    while heap:
        hops, pref, _, fmt, path = heapq.heappop(heap)
        if fmt is target and path:
            return path
        if fmt in seen:
            continue
        seen.add(fmt)
        for cls in convs:
            if fmt in cls.sources and cls.target is not fmt and cls.target not in seen:
                tie += 1
                heapq.heappush(heap, (hops + 1, pref + cls.preference, tie, cls.target,
                                      path + [Hop(fmt, cls.target, cls.name)]))
    return None


def plan_conversion(source: ModelFormat, target: ModelFormat, *, via: list[ModelFormat] | None = None,
                    simplify: bool = False, exclude: frozenset[str] = frozenset()) -> ConversionPlan:
    """The best path from ``source`` to ``target`` passing through each format in ``via`` in order.

    ``simplify`` inserts the ONNX simplifier after the first hop that produces ONNX (or converts ONNX
    to itself when source and target are both ONNX).
    """
    convs, unavailable = _edges(exclude)
    waypoints = [source, *(via or []), target]
    hops: list[Hop] = []
    for a, b in zip(waypoints, waypoints[1:]):
        if a is b:
            continue
        leg = _shortest(a, b, convs, simplify)
        if leg is None:
            missing = [f"{k} (needs {' '.join(v)})" for k, v in unavailable.items()]
            why = f"; unavailable converters: {', '.join(missing)}" if missing else ""
            raise ConversionError(None, f"no conversion path from {a.label} to {b.label}{why}")
        hops += leg
    if simplify:
        simplifier = next((c for c in convs if c.sources == {ModelFormat.ONNX} and c.target is ModelFormat.ONNX), None)
        if simplifier is None:
            raise ConversionError(None, "no ONNX simplifier installed (onnxslim)")
        idx = next((i for i, h in enumerate(hops) if h.target is ModelFormat.ONNX), None)
        if idx is not None:
            hops.insert(idx + 1, Hop(ModelFormat.ONNX, ModelFormat.ONNX, simplifier.name))
        elif source is ModelFormat.ONNX:
            hops.insert(0, Hop(ModelFormat.ONNX, ModelFormat.ONNX, simplifier.name))
        else:
            raise ConversionError(None, "--simplify needs a path through ONNX (add --via onnx)")
    if not hops:
        raise ConversionError(None, f"the model is already {target.label}; nothing to convert "
                                    "(use --via to go round-trip, or --simplify for ONNX)")
    return ConversionPlan(hops, unavailable)


QUICK_MODEL_BYTES = 64 * 2**20


def is_quick(source: ModelFormat, target: ModelFormat, *, simplify: bool = False, model_bytes: int = 0) -> bool:
    """A conversion of a model this size that takes seconds: every hop's converter is quick from its source
    (ONNX to OpenVINO IR, to ORT format, simplification) and the model is small. False when unsure."""
    if model_bytes > QUICK_MODEL_BYTES:
        return False
    try:
        plan = plan_conversion(source, target, simplify=simplify)
    except ConversionError:
        return False
    convs = CONVERTERS.all()
    return all(h.source in convs[h.converter].quick_from for h in plan.hops)


def reachable_targets(source: ModelFormat) -> list[ModelFormat]:
    convs, _ = _edges(frozenset())
    return [f for f in ModelFormat if f is not source and _shortest(source, f, convs, False)]
