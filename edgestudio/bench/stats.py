"""Latency statistics as the field reports them: mean, std, min, p50, p90, p95, p99, max (ms)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


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
        return {k: round(v, 4) for k, v in asdict(self).items()}
