"""The one percentile and the one latency summary of every bench figure."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np


def percentile(values: Collection[float] | Mapping[float, int], q: float) -> float | None:
    """The ``q`` quantile (0 ≤ q ≤ 1) of ``values``; ``None`` when there are none.

    Raw samples interpolate linearly between the two nearest ranks (numpy's default), as the
    bench's p50 and p99 always have. Counted values (value → how many: the load test's
    latencies, kept at three significant digits) take the nearest rank instead, so the figure is
    a latency some call really had rather than a point between two rounded buckets.
    """
    if isinstance(values, Mapping):
        total = sum(values.values())
        if not total:
            return None
        rank = max(1, math.ceil(q * total))
        seen = 0
        for value in sorted(values):
            seen += values[value]
            if seen >= rank:
                return float(value)
        return float(max(values))
    if not len(values):
        return None
    return float(np.quantile(np.asarray(values, dtype=np.float64), q))


def latency_summary(latencies: list[float], seconds: float, errors: Counter[str]) -> dict[str, Any]:
    """What every load reports of its measured window: texts answered, their rate, p50 and p99
    latency in ms (None when nothing answered) and errors by status."""
    values = np.asarray(latencies) * 1000
    return {
        "seconds": seconds,
        "texts": len(latencies),
        "throughput": len(latencies) / seconds,
        "p50_ms": percentile(values, 0.50),
        "p99_ms": percentile(values, 0.99),
        "errors": dict(errors),
    }
