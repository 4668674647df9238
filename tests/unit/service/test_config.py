"""The settings' cross-field rules: each listener's port is its own, and each batching default
is declared once (``BatchingConfig``'s fields, taken by ``Settings``)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.config import BatchingConfig, Settings


def test_each_listener_needs_a_port_of_its_own() -> None:
    assert Settings().http_port is None  # the HTTP API is off unless asked for
    assert Settings(http_port=8080).http_port == 8080
    defaults = Settings()
    for taken, named in ((defaults.port, "port"), (defaults.metrics_port, "metrics-port")):
        with pytest.raises(ValidationError, match=f"http-port {taken} is also the {named}"):
            Settings(http_port=taken)
    with pytest.raises(ValidationError, match="metrics-port 9000 is also the port"):
        Settings(port=9000, metrics_port=9000)
    # Metrics off: their port is free for another listener.
    assert Settings(metrics=False, http_port=defaults.metrics_port).http_port == 9464
    assert Settings(http_port=0, port=0, metrics_port=0).http_port == 0  # free ports, each


def test_the_batching_defaults_are_declared_once() -> None:
    settings, config = Settings(), BatchingConfig()
    shared = ("max_batch_size", "max_batch_tokens", "max_queue_delay_ms", "max_concurrent_batches")
    assert {name: getattr(settings, name) for name in shared} == {
        name: getattr(config, name) for name in shared
    }
    assert settings.batching() == config  # no queue bound of the batchers' own in the server
    assert Settings(max_queue_delay_ms=7.5).batching().max_queue_delay_ms == 7.5
