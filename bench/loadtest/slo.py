"""The SLO gate: p99 latency, error ratio and throughput of the whole run against limits.

The gate reads every call of the run (in a sweep, every level together, ramps included), from
the locustfile's timeline, whose latencies keep three significant digits where Locust's CSV
rounds to whole milliseconds. A missed objective makes the command exit 1; ``summary.md``
says which and by how much.

A limit is inclusive: at most 1 % errors allows 1 %. A value that meets its limit with less
than ``AT_LIMIT`` of it to spare (e.g. 1.00 % errors against 1 %) is met "at the limit": still
a pass, but said as such, since the next run may as well miss. A limit of 0 has no margin to
speak of, so it is never met "at" it. The error ratio is the server's: calls refused as
INVALID_ARGUMENT (the load's own mistakes) are left out of it (``levels.failure_ratio``).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.loadtest.levels import RunStats

AT_LIMIT = 0.01
"""A met value within this share of its limit is met at the limit."""


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

    @property
    def at_limit(self) -> bool:
        """Met, but within ``AT_LIMIT`` of a limit that is not 0."""
        if not self.met or self.measured is None or self.limit == 0:
            return False
        return abs(self.measured - self.limit) <= AT_LIMIT * abs(self.limit)

    def verdict(self) -> str:
        """``met``, ``met at the limit`` or how far off, e.g. ``missed by 12.3 ms (4.1x the
        limit)``."""
        if self.measured is None:
            return "missed: nothing was measured"
        if self.at_limit:
            return f"met at the limit (within {AT_LIMIT:.0%} of it: no margin left)"
        if self.met:
            return "met"
        gap = f"missed by {_value(abs(self.measured - self.limit), self.unit)}"
        return gap + (f" ({self.measured / self.limit:.3g}x the limit)" if self.limit else "")

    def describe(self, value: float | None) -> str:
        return "-" if value is None else _value(value, self.unit)


def _value(value: float, unit: str) -> str:
    """A ratio in % to two decimals, or to its first digit when smaller (a miss by 0.005 %
    must not read as one by 0.00 %); anything else to four significant digits."""
    if unit == "ratio":
        text = f"{value:.2%}"
        if value and text.lstrip("-") == "0.00%":
            text = f"{value * 100:.1g}%"
        return text
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
        measured = run.failure_ratio if run.requests > run.invalid else None
        found.append(Objective("error ratio", max_error_ratio, measured, False, "ratio"))
    if min_rps is not None:
        found.append(
            Objective("requests/s", min_rps, run.rps if run.requests else None, True, "req/s")
        )
    return found
