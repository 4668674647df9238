"""The real server, on a free port, in its own event-loop thread; tests talk to it over gRPC."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from service.app import Application
from service.config import Settings

T = TypeVar("T")


class ServerThread:
    """Runs an ``Application`` on a private event loop; ``call`` runs coroutines there."""

    def __init__(self, settings: Settings) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.app: Application = self.call(self._create(settings))

    @staticmethod
    async def _create(settings: Settings) -> Application:
        return Application(settings)

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 300) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.app.port}"

    def close(self) -> None:
        self.call(self.app.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


def settings_for(models_dir: Path, **overrides: Any) -> Settings:
    return Settings(models_dir=models_dir, host="127.0.0.1", port=0, **overrides)


@contextmanager
def running_server(models_dir: Path, **overrides: Any) -> Iterator[ServerThread]:
    """A started (loaded, warm, SERVING) server; stopped gracefully on exit."""
    server = ServerThread(settings_for(models_dir, **overrides))
    try:
        server.call(server.app.start())
        yield server
    finally:
        server.close()
