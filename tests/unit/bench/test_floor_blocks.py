"""The floor section's paired figure: per block of four alternating windows, the served
server's CPU per request minus the floor's, with a linear drift cancelled."""

from __future__ import annotations

import pytest

from bench.common.paired import abba, block_differences


def test_a_linear_drift_cancels_within_each_block() -> None:
    order = abba(4)  # 0 1, 1 0, 0 1, 1 0: two blocks of four
    served, floor, drift = 700.0, 450.0, 10.0
    values = [(served if index == 0 else floor) + drift * step for step, index in enumerate(order)]
    assert block_differences(order, values) == pytest.approx([250.0, 250.0])


def test_windows_out_of_block_order_are_refused() -> None:
    with pytest.raises(RuntimeError, match="blocks"):
        block_differences([0, 1, 0, 1], [1.0, 2.0, 3.0, 4.0])
