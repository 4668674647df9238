"""The SLO gate: p99 latency, error ratio and throughput of the whole run against limits.

The gate reads every call of the run (in a sweep, every level together, ramps included), from
the locustfile's timeline, whose latencies keep three significant digits where Locust's CSV
rounds to whole milliseconds. A missed objective makes the command exit 1; ``summary.md``
says which and by how much.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.loadtest.levels import RunStats


@dataclass(frozen=True)
class Objective:
    name: str
    limit: float
    measured: float | None
    higher_is_better: bool
    unit: str

    @property
    def met(self) -> bool:
        if self.measured is None:
            return False
        if self.higher_is_better:
            return self.measured >= self.limit
        return self.measured <= self.limit

    def verdict(self) -> str:
        """``met`` or how far off, e.g. ``missed by 12.3 ms (4.1x the limit)``."""
        if self.measured is None:
            return "missed: nothing was measured"
        if self.met:
            return "met"
        gap = f"missed by {_value(abs(self.measured - self.limit), self.unit)}"
        return gap + (f" ({self.measured / self.limit:.3g}x the limit)" if self.limit else "")

    def describe(self, value: float | None) -> str:
        return "-" if value is None else _value(value, self.unit)


def _value(value: float, unit: str) -> str:
    if unit == "ratio":
        return f"{value:.2%}"
    return f"{value:.4g} {unit}"


def objectives(
    run: RunStats,
    max_p99_ms: float | None,
    max_error_ratio: float | None,
    min_rps: float | None,
) -> list[Objective]:
    found = []
    if max_p99_ms is not None:
        found.append(Objective("p99 latency", max_p99_ms, run.p99_ms, False, "ms"))
    if max_error_ratio is not None:
        measured = run.failure_ratio if run.requests else None
        found.append(Objective("error ratio", max_error_ratio, measured, False, "ratio"))
    if min_rps is not None:
        found.append(
            Objective("requests/s", min_rps, run.rps if run.requests else None, True, "req/s")
        )
    return found
