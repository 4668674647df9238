"""Run the server on a background thread of this process (benchmarks, tests, notebooks)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from service.app import Application
from service.batching import ObserverFactory
from service.config import Settings

T = TypeVar("T")


class BackgroundServer:
    """An ``Application`` on a private event loop; ``call`` runs coroutines on that loop."""

    def __init__(self, settings: Settings, observers: ObserverFactory | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.app: Application = self.call(self._create(settings, observers))

    @staticmethod
    async def _create(settings: Settings, observers: ObserverFactory | None) -> Application:
        return Application(settings, observers)

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 300) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.app.port}"

    def close(self) -> None:
        """Graceful stop, then end the loop thread."""
        self.call(self.app.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


@contextmanager
def background_server(
    settings: Settings, observers: ObserverFactory | None = None
) -> Iterator[BackgroundServer]:
    """A started (loaded, warm, SERVING) server, stopped gracefully on exit."""
    server = BackgroundServer(settings, observers)
    try:
        server.call(server.app.start())
        yield server
    finally:
        server.close()
