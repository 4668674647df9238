"""Figures per concurrency level from the locustfile's timeline, and whether each was stable.

The timeline (``deploy/loadtest/embedload/timeline.py`` writes it) has, for each wall-clock
second, the calls that ended in it and their latencies at three significant digits, and the
levels the run held. A level is measured over the whole seconds between the moment all of its
users ran and the moment the next level began (or the run stopped): the ramp and the partial
seconds at both ends are left out.

Stability follows perf_analyzer: the measured seconds are cut into 5 s windows, and a level is
stable when its last three windows agree within 10 % (max/min ≤ 1.10) both in requests per
second and in mean latency. A level too short for three windows is unstable by definition.
Instability is reported, never an error.

Calls the server refused as INVALID_ARGUMENT (``invalid``) are the load's own mistakes: they
are counted among the failures but left out of the failure ratio, which is the server's.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bench.common.stats import percentile as percentile  # noqa: PLC0414 - levels' own API

WINDOW_S = 5
WINDOWS = 3
TOLERANCE = 0.10


@dataclass(frozen=True)
class Second:
    at: int
    count: int
    failures: int
    latencies: Counter[float]
    """Latency in ms → calls."""
    invalid: int = 0
    """Failures the server refused as INVALID_ARGUMENT (the load's requests were wrong)."""


@dataclass(frozen=True)
class Level:
    users: int
    start: float
    ready: float | None
    end: float | None


@dataclass(frozen=True)
class Timeline:
    seconds: dict[int, Second]
    levels: list[Level]

    @property
    def first(self) -> int | None:
        return min(self.seconds) if self.seconds else None


def read_timeline(path: Path) -> Timeline:
    data = json.loads(path.read_text())
    if data.get("format") != 1:
        raise ValueError(f"{path}: unknown timeline format {data.get('format')!r}")
    seconds = {
        int(at): Second(
            int(at),
            int(entry["n"]),
            int(entry["f"]),
            Counter({float(ms): int(count) for ms, count in entry["ms"].items()}),
            int(entry.get("i", 0)),
        )
        for at, entry in data["seconds"].items()
    }
    levels = [
        Level(int(level["users"]), float(level["start"]), level.get("ready"), level.get("end"))
        for level in data["levels"]
    ]
    return Timeline(seconds, levels)


def mean_latency(latencies: Counter[float]) -> float | None:
    total = sum(latencies.values())
    return sum(value * count for value, count in latencies.items()) / total if total else None


def merged(seconds: Iterable[Second]) -> Counter[float]:
    result: Counter[float] = Counter()
    for second in seconds:
        result.update(second.latencies)
    return result


@dataclass(frozen=True)
class Stability:
    stable: bool
    note: str


@dataclass(frozen=True)
class LevelStats:
    users: int
    start: float
    end: float
    measured_s: int
    requests: int
    failures: int
    rps: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    stability: Stability
    invalid: int = 0

    @property
    def failure_ratio(self) -> float:
        return failure_ratio(self.requests, self.failures, self.invalid)


def failure_ratio(requests: int, failures: int, invalid: int) -> float:
    """The server's failures over the calls it could serve: those refused as invalid are in
    neither (the load's mistake must not count as the server's error, nor dilute one)."""
    valid = requests - invalid
    return (failures - invalid) / valid if valid > 0 else 0.0


def measured_span(level: Level, run_end: float) -> tuple[int, int]:
    """The whole seconds [first, last) of a level, after its ramp."""
    begin = level.ready if level.ready is not None else level.start
    end = level.end if level.end is not None else run_end
    return math.ceil(begin), math.floor(end)


def stability(seconds: list[Second]) -> Stability:
    windows = [seconds[i : i + WINDOW_S] for i in range(0, len(seconds), WINDOW_S)]
    windows = [window for window in windows if len(window) == WINDOW_S]
    if len(windows) < WINDOWS:
        return Stability(
            False,
            f"{len(seconds)} s measured: {WINDOWS} windows of {WINDOW_S} s need "
            f"{WINDOWS * WINDOW_S} s",
        )
    last = windows[-WINDOWS:]
    rates = [sum(second.count for second in window) / WINDOW_S for window in last]
    means = [mean_latency(merged(window)) or 0.0 for window in last]
    if min(rates) <= 0 or min(means) <= 0:
        return Stability(False, "a window without answered calls")
    spreads = {
        "requests/s": max(rates) / min(rates) - 1,
        "mean latency": max(means) / min(means) - 1,
    }
    worst = max(spreads, key=lambda name: spreads[name])
    if spreads[worst] > TOLERANCE:
        return Stability(
            False, f"{worst} varied {spreads[worst]:.0%} over the last {WINDOWS} windows"
        )
    return Stability(True, f"within {max(spreads.values()):.0%} over the last {WINDOWS} windows")


def level_stats(timeline: Timeline, level: Level, run_end: float) -> LevelStats:
    first, last = measured_span(level, run_end)
    seconds = [timeline.seconds.get(at, Second(at, 0, 0, Counter())) for at in range(first, last)]
    if not seconds:
        # Shorter than a whole second after the ramp: every second it touched.
        end = level.end if level.end is not None else run_end
        touched = range(math.floor(level.start), math.floor(end) + 1)
        seconds = [timeline.seconds[at] for at in touched if at in timeline.seconds]
    latencies = merged(seconds)
    requests = sum(second.count for second in seconds)
    duration = max(1, len(seconds))
    return LevelStats(
        users=level.users,
        start=float(first),
        end=float(max(first, last)),
        measured_s=len(seconds),
        requests=requests,
        failures=sum(second.failures for second in seconds),
        rps=requests / duration,
        p50_ms=percentile(latencies, 0.50),
        p95_ms=percentile(latencies, 0.95),
        p99_ms=percentile(latencies, 0.99),
        stability=stability(seconds),
        invalid=sum(second.invalid for second in seconds),
    )


@dataclass(frozen=True)
class RunStats:
    """Every call of the run, ramps included: what the SLO gate reads."""

    requests: int
    failures: int
    duration_s: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    invalid: int = 0
    """Of the failures, those the server refused as INVALID_ARGUMENT."""

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def failure_ratio(self) -> float:
        """The server's failure ratio: calls refused as invalid are left out."""
        return failure_ratio(self.requests, self.failures, self.invalid)


def run_end(timeline: Timeline) -> float:
    ends = [level.end for level in timeline.levels if level.end is not None]
    if ends:
        return max(ends)
    return float(max(timeline.seconds) + 1) if timeline.seconds else 0.0


def run_stats(timeline: Timeline) -> RunStats:
    latencies = merged(timeline.seconds.values())
    start = timeline.levels[0].start if timeline.levels else float(timeline.first or 0)
    return RunStats(
        requests=sum(second.count for second in timeline.seconds.values()),
        failures=sum(second.failures for second in timeline.seconds.values()),
        duration_s=max(0.0, run_end(timeline) - start),
        p50_ms=percentile(latencies, 0.50),
        p95_ms=percentile(latencies, 0.95),
        p99_ms=percentile(latencies, 0.99),
        invalid=sum(second.invalid for second in timeline.seconds.values()),
    )


def all_levels(timeline: Timeline) -> list[LevelStats]:
    end = run_end(timeline)
    return [level_stats(timeline, level, end) for level in timeline.levels]
