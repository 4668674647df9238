"""A/B comparisons in alternating windows: their order, the clocks read over each, and the
statistics over blocks of four that cancel a drift in time.

Two servers up side by side get windows in ABBA order (0 1, 1 0, 0 1, ...), so each block of
four (0 1 1 0) is symmetric in time: a linear drift, and the cost of the window just after a
switch of server, fall on both arms alike and cancel within the block.
"""

from __future__ import annotations

import math
import time

Block = tuple[float, float, float, float]
GAP_S = 0.2
"""Untimed load on a server before each of its windows."""


def abba(pairs: int) -> list[int]:
    """Target indices of ``pairs`` pairs of windows: 0 1, 1 0, 0 1, ..."""
    return [index for pair in range(pairs) for index in ((0, 1) if pair % 2 == 0 else (1, 0))]


class WindowClock:
    """The ``on_marker`` of ``run_alternating``: this process's CPU and wall seconds over each
    window, read the moment its start and end markers arrive (the servers run in this process,
    so its CPU over a window is theirs)."""

    def __init__(self) -> None:
        self._open: list[tuple[int, float, float]] = []
        self.windows: list[tuple[int, float, float]] = []
        """Per window in order: (target index, CPU seconds, wall seconds)."""

    def __call__(self, what: str, index: int) -> None:
        cpu, wall = time.process_time(), time.perf_counter()
        if what == "start":
            self._open.append((index, cpu, wall))
            return
        started, cpu_start, wall_start = self._open.pop()
        assert started == index, "window markers out of order"
        self.windows.append((index, cpu - cpu_start, wall - wall_start))


def abba_blocks(order: list[int], values: list[float]) -> list[Block]:
    """``values`` in blocks of four windows, each of targets 0, 1, 1, 0 (else this raises);
    a last, incomplete block is left out."""
    found = []
    for start in range(0, len(values) - 3, 4):
        if order[start : start + 4] != [0, 1, 1, 0]:
            raise RuntimeError("windows did not come in blocks of four (A B B A)")
        first, second, third, last = values[start : start + 4]
        found.append((first, second, third, last))
    return found


def block_differences(order: list[int], values: list[float]) -> list[float]:
    """Per block of four windows (target 0, 1, 1, 0), the mean of its target-0 values minus
    the mean of its target-1 values: a drift linear in time cancels within each block."""
    return [
        (first + last - second - third) / 2
        for first, second, third, last in abba_blocks(order, values)
    ]


def median_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """A distribution-free interval for the median (sign test): the k-th smallest to the k-th
    largest value, with k the largest at which it still covers ``level``; and its coverage.
    Too few values for ``level`` give the full range."""
    n, ordered = len(values), sorted(values)

    def coverage(k: int) -> float:
        return 1 - 2 * sum(math.comb(n, i) for i in range(k)) / (1 << n)

    k = 1
    while k + 1 <= n // 2 and coverage(k + 1) >= level:
        k += 1
    return ordered[k - 1], ordered[n - k], coverage(k)
