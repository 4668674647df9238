"""Per-second request figures of a run, merged over Locust's worker processes, and its levels.

Locust's own CSVs round latencies to whole milliseconds and give percentiles over a rolling
10 s window, which is too coarse for a fast model and spans two levels of a short sweep. This
keeps, per wall-clock second (the second in which a call ended), its count, its failures and
a histogram of its latencies at three significant digits, from which per-level percentiles and
5 s stability windows are computed afterwards (``bench.loadtest``). Failures the server refused
as INVALID_ARGUMENT are also counted apart: the load's own requests were wrong, which is no
error of the server's. Workers send what they
recorded since their last report along with Locust's own statistics; the master merges it.

Levels are the user counts the run held: one for a plain run, one per step of a sweep, each
with the time it was asked for (``start``), the time every user was running (``ready``) and
the time the next one began or the run stopped (``end``), in seconds since the epoch.

The file (``write``) is JSON::

    {"format": 1,
     "seconds": {"<epoch second>": {"n": count, "f": failures, "ms": {"<ms, 3 digits>": count},
                                    "i": failures refused as invalid (only when there are)}},
     "levels": [{"users": 4, "start": t, "ready": t or null, "end": t or null}]}
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

FORMAT = 1
Second = dict[str, Any]


def latency_key(milliseconds: float) -> str:
    """The latency at three significant digits (``"1.23"``, ``"456"``, ``"1.23e+03"``)."""
    return f"{max(0.0, milliseconds):.3g}"


class Timeline:
    """What this process recorded, and (on the master) what its workers sent."""

    def __init__(self) -> None:
        self.seconds: dict[int, Second] = {}
        self.levels: list[dict[str, Any]] = []
        self._unsent: dict[int, Second] = {}

    def record(self, at: float, milliseconds: float, failed: bool, invalid: bool = False) -> None:
        """One call that ended at ``at`` (epoch seconds); ``invalid``: a failure that the
        server refused as INVALID_ARGUMENT."""
        second = math.floor(at)
        for into in (self.seconds, self._unsent):
            _add(into, second, 1, int(failed), {latency_key(milliseconds): 1}, int(invalid))

    def drain(self) -> dict[str, Any]:
        """What was recorded since the last drain, for a report to the master."""
        unsent, self._unsent = self._unsent, {}
        return {str(second): data for second, data in unsent.items()}

    def merge(self, report: dict[str, Any]) -> None:
        """A worker's ``drain``."""
        for second, data in report.items():
            count, failures, invalid = int(data["n"]), int(data["f"]), int(data.get("i", 0))
            _add(self.seconds, int(second), count, failures, data["ms"], invalid)

    # -- levels -----------------------------------------------------------------------------
    def begin_level(self, users: int, at: float) -> None:
        if self.levels and self.levels[-1]["end"] is None:
            self.levels[-1]["end"] = at
        self.levels.append({"users": users, "start": at, "ready": None, "end": None})

    def level_ready(self, users: int, at: float) -> None:
        """Every user of the current level runs (Locust's ``spawning_complete``)."""
        if self.levels and self.levels[-1]["users"] == users and self.levels[-1]["ready"] is None:
            self.levels[-1]["ready"] = at

    def end(self, at: float) -> None:
        if self.levels and self.levels[-1]["end"] is None:
            self.levels[-1]["end"] = at

    # -- file -------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "seconds": {str(second): self.seconds[second] for second in sorted(self.seconds)},
            "levels": self.levels,
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(path.suffix + ".tmp")
        temporary.write_text(json.dumps(self.to_json()))
        temporary.replace(path)


def _add(
    into: dict[int, Second],
    second: int,
    count: int,
    failures: int,
    latencies: dict[str, int],
    invalid: int = 0,
) -> None:
    data = into.setdefault(second, {"n": 0, "f": 0, "ms": {}})
    data["n"] += count
    data["f"] += failures
    if invalid:
        data["i"] = data.get("i", 0) + invalid
    histogram: dict[str, int] = data["ms"]
    for key, value in latencies.items():
        histogram[key] = histogram.get(key, 0) + int(value)
