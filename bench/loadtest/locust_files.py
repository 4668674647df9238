"""Locust's own output, read back: ``<prefix>_stats.csv`` and ``<prefix>_failures.csv``."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

AGGREGATED = "Aggregated"


@dataclass(frozen=True)
class MethodStats:
    name: str
    requests: int
    failures: int


@dataclass(frozen=True)
class Failure:
    name: str
    error: str
    occurrences: int


@dataclass(frozen=True)
class LocustStats:
    methods: list[MethodStats]
    total: MethodStats
    failures: list[Failure]


def read_stats(prefix: Path) -> LocustStats:
    methods: list[MethodStats] = []
    total = MethodStats(AGGREGATED, 0, 0)
    with Path(f"{prefix}_stats.csv").open(newline="") as stats:
        for row in csv.DictReader(stats):
            entry = MethodStats(row["Name"], int(row["Request Count"]), int(row["Failure Count"]))
            if entry.name == AGGREGATED and not row["Type"]:
                total = entry
            else:
                methods.append(entry)
    failures: list[Failure] = []
    failures_file = Path(f"{prefix}_failures.csv")
    if failures_file.exists():
        with failures_file.open(newline="") as rows:
            failures = [
                Failure(row["Name"], row["Error"], int(row["Occurrences"]))
                for row in csv.DictReader(rows)
            ]
    return LocustStats(methods, total, failures)
