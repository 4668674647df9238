"""Unit tests of batch planning from a cost table, without the batcher around it."""

from __future__ import annotations

import random

import pytest

from service.batching import BatchingConfig, CostTable
from service.batching.policy import ArrivalRate, CostPolicy
from service.batching.selection import LengthBucketQueue, QueuedItem, Selection

SIZES = (1, 2, 4, 8, 16, 32)
LENGTHS = (8, 16, 32, 64, 128)


def affine_table(fixed_s: float, per_token_s: float) -> CostTable:
    """Seconds per batch of ``fixed_s + per_token_s * batch * length``."""
    return CostTable(
        SIZES, LENGTHS, tuple(tuple(fixed_s + per_token_s * b * n for n in LENGTHS) for b in SIZES)
    )


PER_TOKEN = affine_table(0.0, 1e-5)
"""Batching does not pay: the cost is linear in the batch, with no fixed part."""
FIXED = affine_table(0.02, 1e-7)
"""Batching pays: a large fixed cost per batch."""


def limits(max_batch_size: int) -> BatchingConfig:
    return BatchingConfig(max_batch_size=max_batch_size, max_batch_tokens=8192)


def selection_of(*lengths: int, full: bool = False) -> Selection[QueuedItem]:
    return Selection([QueuedItem(length, float(i)) for i, length in enumerate(lengths)], full)


def busy_shaper(table: CostTable, max_batch_size: int = 32) -> CostPolicy:
    """A shaper that has seen one item arrive every millisecond."""
    shaper = CostPolicy(table, limits(max_batch_size))
    for step in range(20):
        shaper.note_arrival(1, step / 1000)
    return shaper


def test_long_item_is_left_out_when_it_would_pad_the_rest() -> None:
    plan = busy_shaper(affine_table(0.001, 1e-5)).plan(
        selection_of(10, 11, 12, 9, 120), now=0.02, wait_left_s=0.0
    )

    assert [entry.length for entry in plan.entries] == [10, 11, 12, 9]
    assert plan.padded_length == 12
    assert plan.predicted_s == pytest.approx(affine_table(0.001, 1e-5).predict(4, 12))
    assert plan.ready  # nothing left to wait for


def test_long_item_rides_along_when_the_fixed_cost_dominates() -> None:
    plan = busy_shaper(FIXED).plan(selection_of(10, 11, 120), now=0.02, wait_left_s=0.0)

    assert len(plan.entries) == 3


def test_per_token_cost_dispatches_at_once_even_with_arrivals_due() -> None:
    plan = busy_shaper(PER_TOKEN).plan(selection_of(16), now=0.02, wait_left_s=0.1)

    assert plan.ready
    assert len(plan.entries) == 1


def test_fixed_cost_waits_while_arrivals_are_due() -> None:
    shaper = busy_shaper(FIXED)

    assert not shaper.plan(selection_of(16, 16), now=0.02, wait_left_s=0.1).ready
    assert shaper.plan(selection_of(16, 16), now=0.02, wait_left_s=0.0).ready
    assert shaper.plan(selection_of(16, 16, full=True), now=0.02, wait_left_s=0.1).ready


def test_fixed_cost_does_not_wait_when_nothing_else_is_arriving() -> None:
    shaper = CostPolicy(FIXED, limits(32))
    shaper.note_arrival(2, now=0.0)

    assert shaper.plan(selection_of(16, 16), now=0.0, wait_left_s=0.1).ready


def test_fixed_cost_does_not_wait_for_more_than_the_size_limit_allows() -> None:
    shaper = busy_shaper(FIXED, max_batch_size=4)

    assert not shaper.plan(selection_of(16, 16, 16), now=0.02, wait_left_s=0.1).ready
    assert shaper.plan(selection_of(16, 16, 16, 16), now=0.02, wait_left_s=0.1).ready


def test_every_plan_starts_with_the_oldest_item() -> None:
    rng = random.Random(7)
    for table in (PER_TOKEN, FIXED, affine_table(0.002, 1e-5)):
        shaper = busy_shaper(table)
        queue: LengthBucketQueue[QueuedItem] = LengthBucketQueue()
        items = [QueuedItem(rng.randint(4, 128), float(i)) for i in range(200)]
        for item in items:
            queue.push(item)
        while len(queue):
            oldest = queue.oldest()
            plan = shaper.plan(queue.select(32, 8192), now=0.02, wait_left_s=0.0)
            assert plan.entries[0] is oldest
            queue.take(plan.entries)


def test_arrival_rate_follows_a_steady_stream_and_decays_when_it_stops() -> None:
    rate = ArrivalRate(remembered=8)
    assert rate.per_second(0.0) == 0.0
    for step in range(100):
        rate.note(2, step / 100)

    assert rate.per_second(0.99) == pytest.approx(200.0)
    assert rate.per_second(1.92) == pytest.approx(14.0)  # 7 calls after the first, over 1 s
