"""What one batch costs, by shape: a small grid measured on the engine at warm-up, and a
predictor for any shape.

Filling every batch to its size limit is not always right: on a CPU the engine may run a padded
batch of 32 slower per text than 32 batches of one. The table records seconds per batch on a grid
of batch sizes x padded lengths, measured on the engine itself (``measure_cost_table``, which
the registry runs on a served runtime's own ``embed_batch`` at warm-up), so the batcher can
choose shapes by their predicted cost instead of by size alone (see ``policy``).

Between grid points the predictor interpolates bilinearly in log space (cost is close to a power
law in each axis, so this is exact for ``a * batch**p * length**q`` and monotone whenever the grid
is). Beyond the grid it extrapolates conservatively: never below the edge, and growing at least in
proportion to the batch size and the length, so an unmeasured shape never looks cheaper per text
than the measured edge. Below the grid it uses the first point (an over-estimate).
"""

from __future__ import annotations

import bisect
import itertools
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

RunBatch = Callable[[int, int], None]
"""Runs the engine once on a synthetic batch of ``batch_size`` sequences of ``length`` tokens."""

_SMALLEST_LENGTH = 8


@dataclass(frozen=True)
class CostTable:
    """Seconds per batch on a grid: ``seconds[i][j]`` is ``batch_sizes[i]`` x ``lengths[j]``.

    ``estimated`` holds the ``(batch_size, length)`` points that were not measured but filled in
    conservatively (see ``measure_cost_table``); they are reported, and predicted like the rest.
    """

    batch_sizes: tuple[int, ...]
    lengths: tuple[int, ...]
    seconds: tuple[tuple[float, ...], ...]
    estimated: frozenset[tuple[int, int]] = frozenset()
    _log_batch: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _log_length: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _log_seconds: tuple[tuple[float, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name, axis in (("batch_sizes", self.batch_sizes), ("lengths", self.lengths)):
            if not axis or axis[0] < 1 or any(b <= a for a, b in itertools.pairwise(axis)):
                raise ValueError(f"CostTable.{name} must be increasing positive ints, got {axis}")
        if len(self.seconds) != len(self.batch_sizes) or any(
            len(row) != len(self.lengths) for row in self.seconds
        ):
            raise ValueError("CostTable.seconds must have one row per batch size, one per length")
        if any(not (math.isfinite(value) and value > 0) for row in self.seconds for value in row):
            raise ValueError("CostTable.seconds must all be finite and positive")
        object.__setattr__(self, "_log_batch", tuple(math.log(b) for b in self.batch_sizes))
        object.__setattr__(self, "_log_length", tuple(math.log(n) for n in self.lengths))
        object.__setattr__(
            self, "_log_seconds", tuple(tuple(math.log(s) for s in row) for row in self.seconds)
        )

    @property
    def max_batch_size(self) -> int:
        """The largest batch size on the grid."""
        return self.batch_sizes[-1]

    def predict(self, batch_size: int, length: int) -> float:
        """Predicted seconds for one batch of ``batch_size`` sequences padded to ``length``."""
        row, row_t, row_beyond = _locate(self._log_batch, math.log(max(batch_size, 1)))
        col, col_t, col_beyond = _locate(self._log_length, math.log(max(length, 1)))
        log_s = self._bilinear(row, row_t, col, col_t)
        if row_beyond > 0:
            edge = [self._bilinear(i, 0.0, col, col_t) for i in (row - 1, row)] if row else None
            log_s += row_beyond * _edge_slope(self._log_batch, edge)
        if col_beyond > 0:
            edge = [self._bilinear(row, row_t, j, 0.0) for j in (col - 1, col)] if col else None
            log_s += col_beyond * _edge_slope(self._log_length, edge)
        return math.exp(log_s)

    def texts_per_second(self, batch_size: int, length: int) -> float:
        """Predicted throughput of one such batch."""
        return batch_size / self.predict(batch_size, length)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (``from_dict`` reads it back)."""
        return {
            "batch_sizes": list(self.batch_sizes),
            "lengths": list(self.lengths),
            "seconds": [list(row) for row in self.seconds],
            "estimated": [list(point) for point in sorted(self.estimated)],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CostTable:
        """Reads what ``to_dict`` wrote."""
        return cls(
            tuple(int(b) for b in data["batch_sizes"]),
            tuple(int(n) for n in data["lengths"]),
            tuple(tuple(float(s) for s in row) for row in data["seconds"]),
            frozenset((int(b), int(n)) for b, n in data.get("estimated", [])),
        )

    def describe(self) -> str:
        """One log line: milliseconds per batch, a row per batch size, ``~`` marking estimates."""
        rows = []
        for batch_size, row in zip(self.batch_sizes, self.seconds, strict=True):
            cells = " ".join(
                f"{seconds * 1000:.3g}{'~' if (batch_size, length) in self.estimated else ''}"
                for length, seconds in zip(self.lengths, row, strict=True)
            )
            rows.append(f"b{batch_size}: {cells}")
        lengths = " ".join(str(length) for length in self.lengths)
        return f"batch ms by length [{lengths}] (~ estimated): " + " | ".join(rows)

    def _bilinear(self, row: int, row_t: float, col: int, col_t: float) -> float:
        """Log seconds interpolated inside the grid cell at (row, col)."""
        grid = self._log_seconds
        row_next = min(row + 1, len(grid) - 1)
        col_next = min(col + 1, len(grid[0]) - 1)
        top = grid[row][col] * (1 - col_t) + grid[row][col_next] * col_t
        bottom = grid[row_next][col] * (1 - col_t) + grid[row_next][col_next] * col_t
        return top * (1 - row_t) + bottom * row_t


def _edge_slope(axis: tuple[float, ...], edge: list[float] | None) -> float:
    """Growth exponent beyond an axis's last point: its last segment's, and at least 1."""
    if edge is None:
        return 1.0
    return max(1.0, (edge[1] - edge[0]) / (axis[-1] - axis[-2]))


def _locate(axis: tuple[float, ...], value: float) -> tuple[int, float, float]:
    """Where ``value`` falls on a log axis: (lower index, fraction to the next, excess beyond).

    Below the axis it clamps to the first point; beyond it, the index is the last point, the
    fraction 0 and the excess ``value - axis[-1]``.
    """
    if value >= axis[-1]:
        return len(axis) - 1, 0.0, value - axis[-1]
    if value <= axis[0]:
        return 0, 0.0, 0.0
    index = bisect.bisect_right(axis, value) - 1
    return index, (value - axis[index]) / (axis[index + 1] - axis[index]), 0.0


def cost_grid(
    max_batch_size: int, max_batch_tokens: int, max_length: int
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The grid worth measuring within a batcher's limits: powers of two plus each limit.

    Batch sizes 1, 2, 4, ... up to ``max_batch_size``; lengths 8, 16, ... up to the model's
    ``max_length`` (and no longer than ``max_batch_tokens``, which a lone sequence must fit).
    """
    longest = max(1, min(max_length, max_batch_tokens))
    sizes = _doublings(1, max(1, max_batch_size))
    return sizes, _doublings(min(_SMALLEST_LENGTH, longest), longest)


def _doublings(start: int, stop: int) -> tuple[int, ...]:
    """``start, 2*start, ...`` below ``stop``, then ``stop``."""
    values = []
    value = start
    while value < stop:
        values.append(value)
        value *= 2
    values.append(stop)
    return tuple(values)


def measure_cost_table(
    run: RunBatch,
    batch_sizes: Sequence[int],
    lengths: Sequence[int],
    *,
    budget_s: float = 3.0,
    repeats: int = 3,
    max_batch_tokens: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> CostTable | None:
    """Times ``run`` on the grid within ``budget_s`` seconds; None if nothing could be measured.

    Points are admitted cheapest first (fewest padded tokens) while the time left covers their
    expected runs, as far as the points admitted so far predict (scaled in proportion to tokens).
    Each admitted point gets an untimed warm-up run and a timed one; then the timed runs go round
    the admitted points until each has ``repeats`` (round by round, so a burst of load from
    elsewhere spreads over many points instead of spoiling one), keeping each point's median. A
    run only starts when its point's last time still fits, so the budget is overrun by at most one
    run slower than that. Points over ``max_batch_tokens`` are never run. Every point not measured
    is estimated from the largest measured point it dominates, in proportion to tokens (no gain
    from batching assumed); then each point is raised to at least its smaller neighbours' cost,
    since a bigger batch cannot run faster and a faster reading is noise.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    sizes, widths = tuple(sorted(set(batch_sizes))), tuple(sorted(set(lengths)))
    points = sorted(
        ((b, n) for b in sizes for n in widths), key=lambda point: (point[0] * point[1], point)
    )
    deadline = clock() + budget_s
    samples: dict[tuple[int, int], list[float]] = {}
    owed_s = 0.0  # the expected time of the admitted points' timed runs still to come
    for batch_size, length in points:
        if max_batch_tokens is not None and batch_size * length > max_batch_tokens:
            continue
        firsts = {point: times[0] for point, times in samples.items()}
        expected = _proportional_estimate(firsts, batch_size, length) or 0.0
        if clock() + owed_s + expected * (1 + repeats) > deadline:
            continue
        warm_up = _timed_run(run, batch_size, length, clock)
        if clock() + warm_up > deadline:
            samples[(batch_size, length)] = [warm_up]  # no time left: a pessimistic reading
            continue
        first = _timed_run(run, batch_size, length, clock)
        samples[(batch_size, length)] = [first]
        owed_s += (repeats - 1) * first
    for _ in range(repeats - 1):
        for (batch_size, length), times in samples.items():
            if clock() + times[-1] <= deadline:
                times.append(_timed_run(run, batch_size, length, clock))
    measured = {
        point: seconds
        for point, times in samples.items()
        if (seconds := statistics.median(times)) > 0
    }
    if (sizes[0], widths[0]) not in measured:
        return None
    return _complete(sizes, widths, measured)


def _timed_run(run: RunBatch, batch_size: int, length: int, clock: Callable[[], float]) -> float:
    """Seconds one ``run`` took."""
    started = clock()
    run(batch_size, length)
    return clock() - started


def _proportional_estimate(
    measured: Mapping[tuple[int, int], float], batch_size: int, length: int
) -> float | None:
    """Seconds scaled in proportion to tokens from the largest measured point dominated."""
    dominated = [
        (b * n, seconds) for (b, n), seconds in measured.items() if b <= batch_size and n <= length
    ]
    if not dominated:
        return None
    tokens, seconds = max(dominated)
    return seconds * batch_size * length / tokens


def _complete(
    sizes: tuple[int, ...], widths: tuple[int, ...], measured: Mapping[tuple[int, int], float]
) -> CostTable:
    """The full grid: measured points, estimates elsewhere, made monotone in both axes."""
    grid: list[list[float]] = []
    estimated: set[tuple[int, int]] = set()
    for i, batch_size in enumerate(sizes):
        row: list[float] = []
        for j, length in enumerate(widths):
            seconds = measured.get((batch_size, length))
            if seconds is None:
                estimated.add((batch_size, length))
                seconds = _proportional_estimate(measured, batch_size, length) or math.inf
            if i > 0:
                seconds = max(seconds, grid[i - 1][j])
            if j > 0:
                seconds = max(seconds, row[j - 1])
            row.append(seconds)
        grid.append(row)
    return CostTable(sizes, widths, tuple(tuple(row) for row in grid), frozenset(estimated))
