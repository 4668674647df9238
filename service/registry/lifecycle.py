"""The one lifecycle of model versions: keep the served versions in line with the repository.

One pass (``reconcile``) reads the repository off the event loop: the versions on disk, each
model's version policy (``config.json`` through the server's one reader; without one, the
server's default) and the markers of models being built. A version the policy selects that is
not served yet is checked against its spec and checksums, loaded and warmed up on a thread of its
own, its cost table timed, one version at a time, and only then added to the registry. A served
version the policy no longer selects (or whose directory is gone) stops taking requests at once,
finishes those it has, then closes.

With ``model_control=none`` there is one pass at start, and it fails fast: a version that fails
its checks stops the start, as does a model named but missing or an empty repository. With
``poll`` the pass repeats every ``repository_poll_s``, and a version that fails is refused with
one log line naming the file and the reason, once (until its files change), and is left out of
the policy's choice, so the versions already served stay.

Exports publish a version by renaming a complete directory into place (``export.publish``), so
a version directory that exists is whole: a pass never sees half a model.

While polling, the builder's markers (``modelrepo.building``: models queued or being built) are
also read every ``MARKERS_EVERY_S`` between passes, so a model the builder has just queued is
reported loading at once rather than "not found" until the next pass, and its progress stays
fresh. A marker that appears or goes starts a whole pass at once: the version it announced may
have been published.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from modelrepo import ModelRepository, SpecError
from modelrepo.building import building
from modelrepo.model_config import VersionPolicy
from service.batching import ObserverFactory
from service.batching.limits import ModelBatching
from service.metrics import Metrics
from service.registry.probe import measure_costs
from service.registry.registry import ModelRegistry
from service.registry.served import ServedModel, serve
from service.registry.states import ModelState
from service.runtime.base import Runtime
from service.runtime.loader import load_runtime
from service.runtime.session import SessionOptions, check_single_onnxruntime

log = logging.getLogger(__name__)

T = TypeVar("T")
MARKERS_EVERY_S = 1.0
OnChange = Callable[[], Awaitable[None]]
# What identifies the files of a version directory: changed files, new try.
Signature = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class Plan:
    """One read of the repository: what is on disk and what each model's policy selects."""

    on_disk: dict[str, list[int]]
    policies: dict[str, VersionPolicy]
    wanted: dict[str, list[int]]
    """Per model, what its policy selects of the versions on disk that were not refused."""
    building: dict[str, str]
    """Per model queued or being built, why it is not served yet."""


@dataclass(frozen=True)
class _Refusal:
    signature: Signature
    reason: str


class ModelLifecycle:
    """Loads and unloads model versions: once at start, or repeatedly while the server runs."""

    def __init__(
        self,
        root: Path,
        names: Sequence[str],
        registry: ModelRegistry,
        batching: ModelBatching,
        options: SessionOptions,
        default_policy: VersionPolicy,
        on_change: OnChange,
        observers: ObserverFactory | None = None,
        metrics: Metrics | None = None,
        interval_s: float = 5.0,
        grace_s: float = 10.0,
    ) -> None:
        self.root = root
        self.names = frozenset(names)
        """Serve only these models (empty: every model in the repository)."""
        self.registry = registry
        self.states = registry.states
        self.batching = batching
        self.options = options
        self.default_policy = default_policy
        self.on_change = on_change
        self.observers = observers
        self.metrics = metrics
        self.interval_s = interval_s
        self.grace_s = grace_s
        self._loader = ThreadPoolExecutor(1, thread_name_prefix="load-model")
        self._refused: dict[tuple[str, int], _Refusal] = {}
        self._task: asyncio.Task[None] | None = None
        self._unloading: set[asyncio.Task[None]] = set()

    # -- start and stop -------------------------------------------------------------------
    async def start(self, poll: bool) -> None:
        """The first pass, then (``poll``) one every ``interval_s`` until ``halt``. Without
        polling the pass fails fast: its error stops the start."""
        check_single_onnxruntime()
        if not poll:
            await self.reconcile(fail_fast=True)
            return
        await self.reconcile_logged()
        self._task = asyncio.create_task(self._poll(), name="repository-poller")

    async def _poll(self) -> None:
        next_pass = time.monotonic() + self.interval_s
        while True:
            await asyncio.sleep(min(MARKERS_EVERY_S, max(0.0, next_pass - time.monotonic())))
            if time.monotonic() < next_pass and await self._refresh_markers():
                continue
            await self.reconcile_logged()
            next_pass = time.monotonic() + self.interval_s

    async def _refresh_markers(self) -> bool:
        """Update the reasons of the models on their way; False (a whole pass is due) when a
        marker appeared or went, or the markers could not be read."""
        try:
            markers = await asyncio.to_thread(self._markers)
        except Exception as error:  # noqa: BLE001 - a bad marker must never stop the polling
            log.warning("could not read the build markers: %s", error)
            return False
        if markers.keys() != self.states.building_names():
            return False
        self.states.set_building(markers)
        return True

    def _markers(self) -> dict[str, str]:
        """Why each watched model is not served yet, from the builder's markers."""
        return {name: why for name, why in building(self.root).items() if self._watched(name)}

    async def reconcile_logged(self) -> None:
        """``reconcile``; an error reading the repository is logged and retried next poll."""
        try:
            await self.reconcile()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("reading the model repository %s failed; retrying", self.root)

    async def halt(self) -> None:
        """Stop polling; a version being loaded is closed once its thread is done."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})
            self._task = None

    async def finish(self, timeout: float | None) -> None:
        """Wait (at most ``timeout``) for retired versions to finish their requests and close."""
        if self._unloading:
            await asyncio.wait(set(self._unloading), timeout=timeout)
        self._loader.shutdown(wait=False)

    # -- one pass ---------------------------------------------------------------------------
    async def reconcile(self, fail_fast: bool = False) -> None:
        """Read the repository once; load what its policies add, then retire what they drop.
        ``fail_fast``: the first failure raises, and changes are announced once, at the end."""
        plan = await self._off_loop(lambda: self._plan(fail_fast))
        self.states.set_building(plan.building)
        load = [
            (name, version)
            for name, versions in plan.wanted.items()
            for version in versions
            if version not in self.registry.versions(name)
        ]
        for name, version in load:
            self.states.set(name, version, ModelState.LOADING)
        self._forget_vanished(plan.on_disk, set(load))
        if not fail_fast:
            await self.on_change()
        for name, version in load:
            await self._load(name, version, fail_fast)
            if not fail_fast:
                await self.on_change()
        self._retire_unwanted(plan)
        await self.on_change()

    def _retire_unwanted(self, plan: Plan) -> None:
        """Retire served versions whose directory is gone, and those the policy drops once a
        version it chooses is ready. The choice is made among ready versions, so one that was
        refused, or is not loaded yet, never displaces a served one, and a policy that chooses
        no ready version (all refused, or absent) leaves the served ones in place."""
        for name in sorted(self.registry.ready_names()):
            served = self.registry.versions(name)
            on_disk = plan.on_disk.get(name, [])
            ready = [version for version in on_disk if version in served]
            chosen_ready = any(version in served for version in plan.wanted.get(name, []))
            keep = plan.policies.get(name, self.default_policy).select(ready)
            for version in served:
                if version not in on_disk or (chosen_ready and version not in keep):
                    self._retire(name, version)

    def _plan(self, fail_fast: bool) -> Plan:
        """What the repository holds and what to serve of it (reads files: run off the loop).

        A root that goes away while models are served (a volume being remounted, a directory
        being swapped) is an error to retry, not an empty repository: what is served stays.
        Failing fast, a model named but missing, a malformed ``config.json`` and a repository
        with nothing to serve are errors, and the builder's markers are not read (nothing would
        load them later)."""
        if not self.root.is_dir() and self.registry.ready_names():
            raise FileNotFoundError(f"{self.root} is not a directory now; keeping what is served")
        # Markers first: a builder publishes before it removes the marker, so a model whose
        # marker is gone by now is on disk below, never neither.
        markers = {} if fail_fast else self._markers()
        repository = ModelRepository(self.root)
        available = repository.names()
        if fail_fast:
            missing = sorted(self.names - set(available))
            if missing:
                raise SpecError(
                    f"{self.root}: no model named {missing} (the repository has {available})"
                )
        on_disk = {name: repository.versions(name) for name in available if self._watched(name)}
        configs = self.batching.configs
        policies = {
            name: configs.read(name, strict=fail_fast).version_policy or self.default_policy
            for name in on_disk
        }
        wanted = {
            name: policies[name].select(
                [version for version in versions if not self._still_refused(name, version)]
            )
            for name, versions in on_disk.items()
        }
        if fail_fast and not any(wanted.values()):
            raise RuntimeError(
                f"{self.root} holds no models; build the defaults with "
                "`python -m export defaults` or import one with `python -m export bert --from-hf`"
            )
        return Plan(on_disk, policies, wanted, markers)

    def _watched(self, name: str) -> bool:
        return not self.names or name in self.names

    def _forget_vanished(
        self, on_disk: dict[str, list[int]], loading: set[tuple[str, int]]
    ) -> None:
        """Drop loading and failed states of versions whose directories are gone."""
        for name in self.states.names():
            for version, state in self.states.versions(name).items():
                gone = version not in on_disk.get(name, []) and (name, version) not in loading
                if gone and state.state in (ModelState.LOADING, ModelState.FAILED):
                    self.states.forget(name, version)
                    self._refused.pop((name, version), None)

    def _still_refused(self, name: str, version: int) -> bool:
        refusal = self._refused.get((name, version))
        if refusal is None:
            return False
        if refusal.signature == _directory_signature(self.root / name / str(version)):
            return True
        del self._refused[(name, version)]  # its files changed: try it again
        return False

    # -- loading and unloading -------------------------------------------------------------
    async def _load(self, name: str, version: int, fail_fast: bool) -> None:
        """Check, load and warm up a version, time its costs, then serve it."""
        directory = self.root / name / str(version)
        started = time.perf_counter()
        runtime: Runtime | None = None
        served: ServedModel | None = None
        try:
            runtime = await self._off_loop(lambda: _load_and_warm(directory, self.options))
            loaded = runtime
            table = await self._off_loop(lambda: measure_costs(loaded, self.batching))
            served = serve(runtime, self.batching, table, self.observers)
            await self.registry.add(served)
        except asyncio.CancelledError:  # shutdown: close it once its thread is done with it
            if runtime is not None:
                self._loader.submit(served.close if served is not None else runtime.close)
            raise
        except Exception as error:
            if runtime is not None:  # the version is not served
                await asyncio.to_thread(served.close if served is not None else runtime.close)
            if fail_fast:
                raise
            self._refuse(name, version, directory, error)
            return
        seconds = time.perf_counter() - started
        if self.metrics is not None:
            self.metrics.model_loaded(name, version, seconds)
        log.info(
            "serving %s/%d (%s): checked, loaded and warmed up in %.2f s",
            name,
            version,
            runtime.device,
            seconds,
        )

    def _refuse(self, name: str, version: int, directory: Path, error: Exception) -> None:
        reason = str(error) if isinstance(error, SpecError) else f"{type(error).__name__}: {error}"
        if isinstance(error, SpecError) or str(directory) in reason:
            named = reason
        else:
            named = f"{directory}: {reason}"
        self._refused[(name, version)] = _Refusal(_directory_signature(directory), named)
        self.states.set(name, version, ModelState.FAILED, named)
        served = self.registry.versions(name)
        log.error("refused %s/%d (still serving %s): %s", name, version, served or "none", named)

    def _retire(self, name: str, version: int) -> None:
        served = self.registry.retire(name, version)
        if served is None:
            return
        self.states.set(
            name, version, ModelState.DRAINING, "left the version policy; finishing its requests"
        )
        task = asyncio.create_task(self._unload(served), name=f"unload {name}/{version}")
        self._unloading.add(task)
        task.add_done_callback(self._unloading.discard)
        log.info("retiring %s/%d: %d requests in flight", name, version, served.active)

    async def _unload(self, served: ServedModel) -> None:
        name, version = served.spec.name, served.spec.version
        try:
            await self.registry.unload(served, self.grace_s)
            log.info("unloaded %s/%d after %d requests", name, version, served.answered)
        except Exception:  # a failed close must not leave the version draining for ever
            log.exception("closing %s/%d failed; it serves no requests", name, version)
        finally:
            state = self.states.version(name, version)
            if state is not None and state.state is ModelState.DRAINING:  # not loaded again
                self.states.forget(name, version)

    async def _off_loop(self, function: Callable[[], T]) -> T:
        """Run on the loading thread. If the caller is cancelled meanwhile (shutdown), the
        thread finishes alone and a runtime it opened is closed."""
        future: Future[T] = self._loader.submit(function)
        try:
            return await asyncio.shield(asyncio.wrap_future(future))
        except asyncio.CancelledError:
            future.add_done_callback(_close_orphan)
            raise


def _load_and_warm(directory: Path, options: SessionOptions) -> Runtime:
    """Check a version against its spec and checksums, open it and warm it up."""
    runtime = load_runtime(directory, options)
    try:
        runtime.warmup()
    except BaseException:
        runtime.close()
        raise
    return runtime


def _close_orphan(future: Future[T]) -> None:
    """A runtime loaded for a caller that is gone: close it."""
    if future.cancelled() or future.exception() is not None:
        return
    close = getattr(future.result(), "close", None)
    if callable(close):
        close()


def _directory_signature(directory: Path) -> Signature:
    """Every file of a version directory (name, size, modification time): a refused version
    is tried again once it changes."""
    try:
        files = sorted(path for path in directory.rglob("*") if path.is_file())
    except OSError:
        return ()
    found = []
    for path in files:
        try:
            stat = path.stat()
        except OSError:
            continue
        found.append((path.relative_to(directory).as_posix(), stat.st_size, stat.st_mtime_ns))
    return tuple(found)
