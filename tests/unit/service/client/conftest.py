"""The recording server every client test talks to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.service.client.recording import RecordingServicer, recording_server


@pytest.fixture
def server() -> Iterator[tuple[str, RecordingServicer]]:
    with recording_server() as running:
        yield running
