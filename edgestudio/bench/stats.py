"""Latency statistics as the field reports them: mean, std, min, p50, p90, p95, p99, max (ms)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgestudio.backends.runtimes.base import steady_state  # noqa: F401 - lives with the warm-up that uses it


@dataclass(frozen=True)
class LatencyStats:
    mean: float
    std: float
    min: float
    p50: float
    p90: float
    p95: float
    p99: float
    max: float

    @classmethod
    def from_ms(cls, samples_ms: Any) -> LatencyStats:
        a = np.asarray(samples_ms, dtype=np.float64)
        if a.size == 0:
            raise ValueError("no latency samples")
        p50, p90, p95, p99 = np.percentile(a, [50, 90, 95, 99])
        return cls(float(a.mean()), float(a.std()), float(a.min()), float(p50), float(p90), float(p95),
                   float(p99), float(a.max()))

    def to_dict(self) -> dict[str, float]:
        return {k: round(v, 5) for k, v in asdict(self).items()}  # as the intervals: rounding keeps lo <= p50 <= hi


def bootstrap_ci(samples_ms: Any, percentiles: tuple[float, ...] = (50, 90, 99), *, confidence: float = 0.95,
                 resamples: int = 1000, seed: int = 0) -> dict[str, list[float]]:
    """Percentile bootstrap confidence intervals of latency percentiles: ``{"p50": [lo, hi], ...}`` (ms).

    Resampling is vectorised in chunks (1000 resamples of 10k samples: ~0.2 s). Samples are treated as independent,
    which timing series are not quite (drift): the paired mode is what makes comparisons fair, the interval says
    how well one run pins its own percentile down."""
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size < 2:
        return {f"p{int(q)}": [float(a[0]), float(a[0])] if a.size else [0.0, 0.0] for q in percentiles}
    rng = np.random.default_rng(seed)
    est = np.empty((resamples, len(percentiles)))
    chunk = max(1, min(resamples, 2_000_000 // a.size))
    for start in range(0, resamples, chunk):
        n = min(chunk, resamples - start)
        idx = rng.integers(0, a.size, size=(n, a.size))
        est[start:start + n] = np.percentile(a[idx], percentiles, axis=1).T
    lo, hi = (1 - confidence) / 2 * 100, (1 + confidence) / 2 * 100
    return {f"p{int(q)}": [round(float(np.percentile(est[:, i], lo)), 5), round(float(np.percentile(est[:, i], hi)), 5)]
            for i, q in enumerate(percentiles)}


def overlaps(a: list[float], b: list[float]) -> bool:
    """Whether two intervals overlap: then the two figures are not told apart by this measurement."""
    return a[0] <= b[1] and b[0] <= a[1]
