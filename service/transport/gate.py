"""What every transport asks before a call reaches the embedder: is the server ready, and is it
shutting down. One gate for gRPC and HTTP alike, so both refuse the same way and the drain at
shutdown hears about refusals from either."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from service.embedder import Embedder
from service.errors import Unavailable


class ServingGate:
    """UNAVAILABLE until the application hands it an embedder, and again once it closes."""

    def __init__(self) -> None:
        self.embedder: Embedder | None = None
        self.closing = False
        """Set on shutdown: new calls get UNAVAILABLE while those in flight finish."""
        self.refused_at = 0.0
        """Event-loop time of the last call refused because of ``closing``."""

    def ready(self) -> Embedder:
        """The embedder, or UNAVAILABLE saying why there is none to use now."""
        if self.closing:
            self.refused_at = asyncio.get_running_loop().time()
            raise Unavailable("the server is shutting down; retry on another replica")
        if self.embedder is None:
            raise Unavailable("models are still loading and warming up; retry in a few seconds")
        return self.embedder

    def known_models(self) -> Collection[str]:
        """The names of the models known now: served, loading, being built or failed (none
        until the embedder exists); metrics label other names ``unknown``."""
        return () if self.embedder is None else self.embedder.known_models()
