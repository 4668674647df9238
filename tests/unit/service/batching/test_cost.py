"""Unit tests of the cost table: its predictor, its serial forms and measuring it on real work."""

from __future__ import annotations

import itertools
import json
import time

import numpy as np
import pytest

from service.batching import CostTable, cost_grid, measure_cost_table

SIZES = (1, 2, 4, 8, 16, 32)
LENGTHS = (8, 16, 32, 64, 128)


def table_of() -> CostTable:
    """A table of ``a + b * batch * length`` seconds (a transformer encoder on a CPU, roughly)."""
    return CostTable(
        SIZES,
        LENGTHS,
        tuple(tuple(0.002 + 1e-5 * b * n for n in LENGTHS) for b in SIZES),
    )


def test_predictor_reproduces_the_grid_points() -> None:
    table = table_of()

    for (i, b), (j, n) in itertools.product(enumerate(SIZES), enumerate(LENGTHS)):
        assert table.predict(b, n) == pytest.approx(table.seconds[i][j], rel=1e-12)


def test_predictor_is_exact_for_a_power_law_between_points() -> None:
    def law(b: float, n: float) -> float:
        return float(1e-4 * b**0.7 * n**1.2)

    table = CostTable(SIZES, LENGTHS, tuple(tuple(law(b, n) for n in LENGTHS) for b in SIZES))

    for b, n in [(3, 12), (5, 100), (24, 40), (2, 9)]:
        assert table.predict(b, n) == pytest.approx(law(b, n), rel=1e-9)


def test_predictor_is_monotone_inside_and_beyond_the_grid() -> None:
    table = table_of()

    for n in range(1, 400, 7):
        costs = [table.predict(b, n) for b in range(1, 80)]
        assert costs == sorted(costs)
    for b in range(1, 80, 3):
        costs = [table.predict(b, n) for n in range(1, 400)]
        assert costs == sorted(costs)


def test_extrapolation_never_predicts_a_gain_beyond_the_grid() -> None:
    table = table_of()
    edge = table.predict(32, 128)

    assert table.predict(64, 128) >= 2 * edge * (1 - 1e-12)
    assert table.predict(32, 512) >= 4 * edge * (1 - 1e-12)
    assert table.texts_per_second(64, 64) <= table.texts_per_second(32, 64) * (1 + 1e-12)
    assert table.predict(1, 4) == table.predict(1, 8)  # below the grid: the first point


def test_table_round_trips_through_json_and_logs_compactly() -> None:
    table = CostTable((1, 4), (8, 32), ((0.001, 0.002), (0.003, 0.0125)), frozenset({(4, 32)}))

    again = CostTable.from_dict(json.loads(json.dumps(table.to_dict())))

    assert again == table
    assert again.predict(2, 16) == table.predict(2, 16)
    assert table.describe() == ("batch ms by length [8 32] (~ estimated): b1: 1 2 | b4: 3 12.5~")


def test_table_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="increasing"):
        CostTable((2, 1), (8,), ((0.1,), (0.2,)))
    with pytest.raises(ValueError, match="one row per batch size"):
        CostTable((1, 2), (8,), ((0.1,),))
    with pytest.raises(ValueError, match="positive"):
        CostTable((1,), (8,), ((0.0,),))


def test_grid_stays_within_the_limits() -> None:
    assert cost_grid(32, 8192, 128) == (SIZES, LENGTHS)
    assert cost_grid(20, 100, 512) == ((1, 2, 4, 8, 16, 20), (8, 16, 32, 64, 100))
    assert cost_grid(1, 8192, 4) == ((1,), (4,))


class TokenWork:
    """Real work in proportion to the padded tokens, on this thread only.

    Element-wise numpy, not a matrix product: a multi-threaded BLAS on a busy machine makes
    timings erratic, which would test the machine rather than the measuring.
    """

    def __init__(self) -> None:
        self.runs: list[tuple[int, int, float]] = []

    def __call__(self, batch_size: int, length: int) -> None:
        started = time.perf_counter()
        hidden = np.full(batch_size * length * 256, 0.5, dtype=np.float32)
        for _ in range(8):
            hidden = np.tanh(hidden * 1.01)
        self.runs.append((batch_size, length, time.perf_counter() - started))


def test_measuring_stays_within_its_budget() -> None:
    work = TokenWork()
    budget_s = 0.25
    started = time.perf_counter()

    table = measure_cost_table(work, SIZES, (*LENGTHS, 256, 512), budget_s=budget_s)

    elapsed = time.perf_counter() - started
    assert table is not None
    slowest_run = max(seconds for _, _, seconds in work.runs)
    assert elapsed <= budget_s + slowest_run + 0.02
    assert (1, 8) not in table.estimated
    assert {(b, n) for b, n, _ in work.runs} == {
        (b, n) for b in SIZES for n in (*LENGTHS, 256, 512)
    } - table.estimated


def test_a_budget_too_small_for_the_grid_leaves_the_costliest_shapes_estimated() -> None:
    """The same on a simulated engine and clock, so how fast this machine is does not matter."""
    now = [0.0]
    lengths = (*LENGTHS, 256, 512)

    def engine(batch_size: int, length: int) -> None:
        now[0] += 1e-4 + 1e-6 * batch_size * length

    table = measure_cost_table(engine, SIZES, lengths, budget_s=0.25, clock=lambda: now[0])

    assert table is not None and table.estimated  # the budget did not cover the whole grid
    assert (1, 8) not in table.estimated and (32, 512) in table.estimated
    assert now[0] <= 0.25 + 1e-4 + 1e-6 * 32 * 512


def test_measured_table_grows_with_tokens_and_skips_shapes_over_the_token_limit() -> None:
    work = TokenWork()

    table = measure_cost_table(
        work, SIZES, LENGTHS, budget_s=20.0, repeats=2, max_batch_tokens=1024
    )

    assert table is not None
    over_limit = {(b, n) for b in SIZES for n in LENGTHS if b * n > 1024}
    assert table.estimated == over_limit
    assert all(b * n <= 1024 for b, n, _ in work.runs)
    assert [len([r for r in work.runs if r[:2] == (1, 8)])] == [3]  # warm-up + 2 timed runs
    for row in table.seconds:
        assert list(row) == sorted(row)
    for column in zip(*table.seconds, strict=True):
        assert list(column) == sorted(column)
    assert table.predict(16, 64) > 4 * table.predict(1, 64)  # heavy work: no free batching


def test_estimates_assume_no_gain_beyond_what_was_measured() -> None:
    now = [0.0]

    def simulated_engine(batch_size: int, length: int) -> None:
        now[0] += 0.001 + 1e-5 * batch_size * length

    table = measure_cost_table(
        simulated_engine, (1, 2, 4), (8, 16), budget_s=0.012, repeats=1, clock=lambda: now[0]
    )

    assert table is not None
    assert now[0] <= 0.012
    assert table.estimated == {(4, 8), (4, 16)}  # the costliest shapes did not fit
    for b, n in [(1, 8), (1, 16), (2, 8), (2, 16)]:
        assert table.predict(b, n) == pytest.approx(0.001 + 1e-5 * b * n)
    # In proportion to tokens from the largest measured shape within: (2, 8) and (2, 16).
    assert table.predict(4, 8) == pytest.approx(2 * (0.001 + 1e-5 * 16))
    assert table.predict(4, 16) == pytest.approx(2 * (0.001 + 1e-5 * 32))


def test_nothing_measured_within_no_budget_gives_no_table() -> None:
    assert measure_cost_table(TokenWork(), SIZES, LENGTHS, budget_s=0.0) is None
