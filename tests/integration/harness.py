"""The real server on a free port, in a background thread; tests talk to it over gRPC."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from service.background import BackgroundServer, background_server
from service.config import Settings

ServerThread = BackgroundServer


def settings_for(models_dir: Path, **overrides: Any) -> Settings:
    """Settings for a test server: the cache is off unless a test turns it on, so what the
    other tests send reaches the batcher as sent (identical texts are not merged); metrics are
    served on a free port; batches fill to the limits (no cost grid timed at warm-up, so test
    servers start at once and batch as the batcher's own tests expect)."""
    defaults: dict[str, Any] = {"cache": "off", "metrics_port": 0, "batching_cost_model": "off"}
    return Settings(models_dir=models_dir, host="127.0.0.1", port=0, **(defaults | overrides))


@contextmanager
def running_server(models_dir: Path, **overrides: Any) -> Iterator[BackgroundServer]:
    with background_server(settings_for(models_dir, **overrides)) as server:
        yield server
