"""The locustfile as Locust loads it, in a process of its own: what it imports, what it defines."""

from __future__ import annotations

import pytest

from tests.loadtest_files import load_locustfile

HEAVY = {"service", "export", "bench", "numpy", "redis", "torch", "transformers", "onnxruntime"}


def test_it_imports_locust_grpc_and_the_stubs_and_nothing_of_the_server() -> None:
    loaded = load_locustfile()
    assert loaded["users"] == ["EmbeddingUser"]
    assert {"locust", "grpc", "proto", "embedload"} <= set(loaded["modules"])
    assert not HEAVY & set(loaded["modules"]), "the Locust process must stay light"


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_the_step_shape_exists_only_with_a_sweep(how: str) -> None:
    assert load_locustfile()["shapes"] == []
    if how == "argument":
        loaded = load_locustfile("--sweep", "1,4", "--step-time", "5s")
    else:
        loaded = load_locustfile(env={"LOCUST_SWEEP": "1,4"})
    assert loaded["shapes"] == ["SweepShape"]
