"""The model versions that answer requests, and the state of every version this server knows.

Requests resolve here, on the event loop: the newest ready version, or the one pinned, or a
status that says why there is none (UNAVAILABLE while it loads or is being built, NOT_FOUND with
what exists). ``ModelLifecycle`` alone adds, retires and unloads versions; everything else reads.
A retired version takes no new requests, finishes those it has (``using`` counts them), then its
batchers stop and its sessions close.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

from service.batching import DynamicBatcher
from service.domain import parse_version
from service.errors import InvalidArgument, NotFound, Unavailable
from service.metrics import Metrics
from service.registry.served import EMBED, FILL_MASK, ServedModel
from service.registry.states import ModelState, ModelStates
from service.runtime.base import Runtime

UNLOAD_POLL_S = 0.01  # how often a retired version checks whether its last request is done


@dataclass(frozen=True)
class ModelView:
    """One model as ``ListModels`` and ``GetModel`` describe it: a served version with its
    runtime, or a model (or one of its versions) that is not ready, by its state."""

    name: str
    served_versions: tuple[int, ...]
    state: ModelState
    reason: str
    runtime: Runtime | None = None
    """The served version described; None when it is not ready."""
    version: int | None = None
    """The version described when it is not ready; None for the model as a whole."""
    loaded_at: float = 0.0
    """When the described served version was loaded (Unix seconds; 0 when not ready)."""


class ModelRegistry:
    """Every served version by name and number, the versions retired and still draining, and
    the state record of every known version."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        self.states = ModelStates(metrics)
        """Every known version's state, served or not (loading, draining, failed)."""
        self._served: dict[str, dict[int, ServedModel]] = {}
        self._retired: list[ServedModel] = []

    # -- reading ----------------------------------------------------------------------------
    def served(self) -> list[ServedModel]:
        return [served for versions in self._served.values() for served in versions.values()]

    def versions(self, name: str) -> list[int]:
        """The served versions of ``name``, oldest first."""
        return sorted(self._served.get(name, {}))

    def ready_names(self) -> set[str]:
        """Models with a version that answers requests."""
        return set(self._served)

    def resolve(self, name: str, version: str) -> ServedModel:
        """The named model at ``version`` (empty: the newest ready one), UNAVAILABLE while it
        is loading or being built, or NOT_FOUND saying what exists."""
        if not name:
            raise InvalidArgument(f"model is empty; choose one of {sorted(self._served)}")
        versions = self._served.get(name)
        if versions is None:
            self._not_served(name)
        number = parse_version(version)
        if number is None:
            return versions[max(versions)]
        served = versions.get(number)
        if served is None:
            known = self.states.version(name, number)
            if known is not None and known.state is ModelState.LOADING:
                raise Unavailable(
                    f"{name} version {version} is still loading and warming up; retry in a few "
                    f"seconds (served versions: {sorted(versions)})"
                )
            refused = f" (refused: {known.reason})" if known and known.reason else ""
            raise NotFound(
                f"{name} has no version {version}{refused}; served versions: {sorted(versions)}"
            )
        return served

    def _not_served(self, name: str) -> NoReturn:
        """Why ``name`` has no ready version: UNAVAILABLE while it loads or is being built."""
        summary = self.states.summary(name)
        if summary is not None and summary.state is ModelState.LOADING:
            raise Unavailable(f"model {name!r} is not ready yet ({summary.reason}); retry later")
        why = f" ({summary.reason})" if summary is not None and summary.reason else ""
        raise NotFound(f"model {name!r} is not served{why}; served models: {sorted(self._served)}")

    @contextmanager
    def using(self, served: ServedModel) -> Iterator[None]:
        """Counts a request on its version from the moment it resolves (with no ``await``
        in between), so a retired version unloads only after its last request."""
        served.active += 1
        try:
            yield
        finally:
            served.active -= 1
            served.answered += 1

    # -- describing -------------------------------------------------------------------------
    def listing(self) -> list[ModelView]:
        """Every served version, and each known model with no ready version by its state."""
        listed = [self._view(served.spec.name, served) for served in self.served()]
        listed += [
            self._view(name, None) for name in self.states.names() if name not in self._served
        ]
        return [view for view in listed if view is not None]

    def describe(self, name: str, version: str) -> ModelView:
        """The version asked for (empty: the newest ready one); a model or version that is
        known but not ready is described by its state instead of NOT_FOUND."""
        unready = self._unready_view(name, version)
        if unready is not None:
            return unready
        view = self._view(name, self.resolve(name, version))
        assert view is not None  # a served version is always described
        return view

    def _view(self, name: str, served: ServedModel | None) -> ModelView | None:
        """A served version (its state the model's, e.g. ready with a newer version refused),
        or a model with no ready version by its state alone (None: unknown)."""
        summary = self.states.summary(name)
        versions = tuple(self.versions(name))
        if served is not None:
            reason = summary.reason if summary is not None else ""
            return ModelView(
                name,
                versions,
                ModelState.READY,
                reason,
                runtime=served.runtime,
                loaded_at=served.loaded_at,
            )
        if summary is None:
            return None
        return ModelView(name, versions, summary.state, summary.reason)

    def _unready_view(self, name: str, version: str) -> ModelView | None:
        """The state of a known model without a ready version, or of a version that is
        loading, draining or failed; None when ``resolve`` decides."""
        served = self._served.get(name)
        if not version:
            return None if served else self._view(name, None)
        try:
            number = parse_version(version)
        except InvalidArgument:
            return None  # resolve says what is wrong, after the name
        assert number is not None
        known = self.states.version(name, number)
        if (served and number in served) or known is None:
            return None
        versions = tuple(self.versions(name))
        return ModelView(name, versions, known.state, known.reason, version=number)

    # -- changes (ModelLifecycle) -----------------------------------------------------------
    async def add(self, served: ServedModel) -> None:
        """Start a loaded version's batchers, then let requests in."""
        await served.start()
        name = served.spec.name
        self._served.setdefault(name, {})[served.spec.version] = served
        self.states.set(name, served.spec.version, ModelState.READY)
        if self.metrics is not None:
            if served.cost_table is not None:
                self.metrics.cost_table(name, served.spec.version, served.cost_table)
            self._watch_queues(name)

    def retire(self, name: str, version: int) -> ServedModel | None:
        """Stop resolving requests to the version; those it has go on (see ``unload``)."""
        versions = self._served.get(name, {})
        served = versions.pop(version, None)
        if not versions:
            self._served.pop(name, None)
        if served is not None:
            self._retired.append(served)
            if self.metrics is not None:
                self._watch_queues(name, leaving=True)
        return served

    async def unload(self, served: ServedModel, grace: float | None) -> None:
        """Once a retired version's requests are answered, stop its batchers, then close its
        inference thread and sessions (``stop`` closes those still draining at shutdown)."""
        while served.active:
            await asyncio.sleep(UNLOAD_POLL_S)
        if not any(retired is served for retired in self._retired):  # ``stop`` closed it
            return
        self._retired = [retired for retired in self._retired if retired is not served]
        await served.stop(grace)
        await asyncio.to_thread(served.close)

    async def stop(self, grace: float | None) -> None:
        """Finish queued work (within ``grace``), then release threads and sessions, of the
        served versions and of retired ones still draining."""
        closing = [*self.served(), *self._retired]
        self._retired.clear()
        await asyncio.gather(*(served.stop(grace) for served in closing))
        for served in closing:
            served.close()

    def _watch_queues(self, name: str, leaving: bool = False) -> None:
        """Queue depth per model and operation, summed over the model's served versions (0
        once a version leaves and none with that operation is left)."""
        assert self.metrics is not None
        versions = list(self._served.get(name, {}).values())
        for operation in (EMBED, FILL_MASK):
            batchers = [b for s in versions if (b := s.batcher(operation)) is not None]
            if batchers or leaving:
                self.metrics.watch_queue(name, operation, _total_queue(batchers))


def _total_queue(batchers: list[DynamicBatcher[Any, Any]]) -> Callable[[], int]:
    return lambda: sum(batcher.queue_size for batcher in batchers)
