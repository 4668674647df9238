"""``grpc.health.v1`` whose Watch streams end once shutdown begins.

An open Watch is an RPC in flight, so with the stock servicer ``server.stop(grace)`` waits the
whole grace period for every watcher (a client-side health check, a mesh sidecar). Here each
stream sends NOT_SERVING and then ends with OK, so the drain waits only for real work.

Besides "" and the service name, each model has a name of its own (``model_service_name``),
so a client or a probe can wait for the one model it needs; shutdown turns them all
NOT_SERVING with the rest.
"""

from __future__ import annotations

import asyncio
from typing import Any

from grpc_health.v1 import health, health_pb2

NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def model_service_name(service: str, model: str) -> str:
    """The health name of one model, ``embedding.v1.EmbeddingService/<model>``: SERVING while
    the model has a ready version (``service`` alone: while any model has)."""
    return f"{service}/{model}"


class _Watch:
    """A Watch call's context that notes what it wrote, to end the stream after NOT_SERVING."""

    def __init__(self, context: Any, servicer: DrainingHealthServicer) -> None:
        self.context = context
        self.servicer = servicer
        self.last_status: int | None = None
        self.ended = asyncio.Event()

    async def write(self, message: health_pb2.HealthCheckResponse) -> None:
        await self.context.write(message)
        self.last_status = message.status
        if self.servicer.draining and message.status == NOT_SERVING:
            self.ended.set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.context, name)


class DrainingHealthServicer(health.aio.HealthServicer):  # type: ignore[misc]
    """The stock asyncio servicer, with Watch streams that end on graceful shutdown."""

    def __init__(self) -> None:
        super().__init__()
        self.draining = False
        self._watches: set[_Watch] = set()

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: Any) -> None:
        watch = _Watch(context, self)
        self._watches.add(watch)
        streaming = asyncio.ensure_future(super().Watch(request, watch))
        ended = asyncio.ensure_future(watch.ended.wait())
        try:
            await asyncio.wait({streaming, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            streaming.cancel()
            ended.cancel()
            self._watches.discard(watch)
        if streaming.done() and not streaming.cancelled():
            streaming.result()  # the stock Watch ended by itself: pass on its error, if any

    async def enter_graceful_shutdown(self) -> None:
        """NOT_SERVING for good; each Watch stream sends it, then ends."""
        self.draining = True
        for watch in self._watches:
            if watch.last_status == NOT_SERVING:  # it already said so: nothing more will come
                watch.ended.set()
        await super().enter_graceful_shutdown()
        await asyncio.sleep(0)  # let each stream write its NOT_SERVING first
        for watch in list(self._watches):  # a service never registered never hears NOT_SERVING
            watch.ended.set()
