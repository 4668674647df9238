"""Step loads: user counts, each held for the same time (``--sweep 1,4,16 --step-time 30s``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SPAN = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?")


def parse_timespan(text: str) -> float:
    """Seconds in ``text``: ``90``, ``30s``, ``2m``, ``1h30m``, as Locust's ``--run-time``."""
    text = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    match = _SPAN.fullmatch(text)
    if not text or match is None:
        raise ValueError(f"not a time span: {text!r} (e.g. 90, 30s, 2m, 1h30m)")
    hours, minutes, seconds = (float(part) if part else 0.0 for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def parse_levels(text: str) -> tuple[int, ...]:
    """``"1,4,16"`` → (1, 4, 16): positive user counts."""
    try:
        levels = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"--sweep takes user counts separated by commas, got {text!r}") from None
    if not levels or min(levels) < 1:
        raise ValueError(f"--sweep takes positive user counts, got {text!r}")
    return levels


@dataclass(frozen=True)
class Sweep:
    levels: tuple[int, ...]
    step_s: float

    def __post_init__(self) -> None:
        if self.step_s <= 0:
            raise ValueError(f"--step-time must be positive, got {self.step_s}")

    @property
    def total_s(self) -> float:
        return len(self.levels) * self.step_s

    def level_at(self, elapsed_s: float) -> int | None:
        """Index of the level held ``elapsed_s`` after the start; ``None`` once all are done."""
        index = int(elapsed_s // self.step_s)
        return index if 0 <= index < len(self.levels) else None
