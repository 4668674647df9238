"""Model control by polling: keep the served versions in line with the repository, live.

Every ``repository_poll_s`` the poller reads the repository (off the event loop): the versions
on disk, each model's version policy (``config.json``, default: the newest version) and the
markers of models being built. A version the policy selects that is not served yet is checked
against its spec and checksums, loaded and warmed up on a thread of its own, one version at a
time, and only then added to the embedder. A version that fails is refused with one log line
naming the file and the reason, once (until its files change), and is left out of the policy's
choice, so the versions already served stay. A served version the policy no longer selects (or
whose directory is gone) stops taking requests at once, finishes those it has, then closes.

Exports publish a version by renaming a complete directory into place (``export.publish``), so
a version directory that exists is whole: the poller never sees half a model.
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
from modelrepo.model_config import NEWEST_ONLY, VersionPolicy, config_path, read_model_config
from service.embedder import Embedder, ServedModel
from service.metrics import Metrics
from service.model_states import ModelState
from service.runtime.base import Runtime
from service.runtime.loader import load_runtime
from service.runtime.session import SessionOptions

log = logging.getLogger(__name__)

T = TypeVar("T")
OnChange = Callable[[], Awaitable[None]]
# What identifies the files of a version directory or a config.json: changed files, new try.
Signature = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class Plan:
    """One read of the repository: what is on disk and what each model's policy selects."""

    on_disk: dict[str, list[int]]
    policies: dict[str, VersionPolicy]
    wanted: dict[str, list[int]]
    """Per model, what its policy selects of the versions on disk that were not refused."""
    building: dict[str, str]


@dataclass(frozen=True)
class _Refusal:
    signature: Signature
    reason: str


class RepositoryPoller:
    """Loads and unloads model versions while the server runs (``model_control=poll``)."""

    def __init__(
        self,
        root: Path,
        names: Sequence[str],
        embedder: Embedder,
        options: SessionOptions,
        interval_s: float,
        on_change: OnChange,
        metrics: Metrics | None = None,
        default_policy: VersionPolicy = NEWEST_ONLY,
        grace_s: float = 10.0,
    ) -> None:
        self.root = root
        self.names = frozenset(names)
        """Serve only these models (empty: every model in the repository)."""
        self.embedder = embedder
        self.states = embedder.states
        self.options = options
        self.interval_s = interval_s
        self.on_change = on_change
        self.metrics = metrics
        self.default_policy = default_policy
        self.grace_s = grace_s
        self._loader = ThreadPoolExecutor(1, thread_name_prefix="load-model")
        self._refused: dict[tuple[str, int], _Refusal] = {}
        self._policies: dict[str, tuple[Signature, VersionPolicy]] = {}
        self._task: asyncio.Task[None] | None = None
        self._unloading: set[asyncio.Task[None]] = set()

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Poll every ``interval_s`` until ``halt``."""
        self._task = asyncio.create_task(self._poll(), name="repository-poller")

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.reconcile_logged()

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
    async def reconcile(self) -> None:
        """Read the repository once; load what its policies add, then retire what they drop."""
        plan = await self._off_loop(self._plan)
        self.states.set_building(plan.building)
        load = [
            (name, version)
            for name, versions in plan.wanted.items()
            for version in versions
            if version not in self.embedder.models.get(name, {})
        ]
        for name, version in load:
            self.states.set(name, version, ModelState.LOADING)
        self._forget_vanished(plan.on_disk, set(load))
        await self.on_change()
        for name, version in load:
            await self._load(name, version)
            await self.on_change()
        self._retire_unwanted(plan)
        await self.on_change()

    def _retire_unwanted(self, plan: Plan) -> None:
        """Retire served versions whose directory is gone, and those the policy drops once a
        version it chooses is ready. The choice is made among ready versions, so one that was
        refused, or is not loaded yet, never displaces a served one, and a policy that chooses
        no ready version (all refused, or absent) leaves the served ones in place."""
        for name in sorted(self.embedder.models):
            served = self.embedder.models.get(name, {})
            on_disk = plan.on_disk.get(name, [])
            ready = [version for version in on_disk if version in served]
            chosen_ready = any(version in served for version in plan.wanted.get(name, []))
            keep = plan.policies.get(name, self.default_policy).select(ready)
            for version in sorted(served):
                if version not in on_disk or (chosen_ready and version not in keep):
                    self._retire(name, version)

    def _plan(self) -> Plan:
        """What the repository holds and what to serve of it (reads files: run off the loop).

        A root that goes away while models are served (a volume being remounted, a directory
        being swapped) is an error to retry, not an empty repository: what is served stays."""
        if not self.root.is_dir() and self.embedder.models:
            raise FileNotFoundError(f"{self.root} is not a directory now; keeping what is served")
        repository = ModelRepository(self.root)
        on_disk = {
            name: repository.versions(name) for name in repository.names() if self._watched(name)
        }
        policies = {name: self._policy(name) for name in on_disk}
        wanted = {
            name: policies[name].select(
                [version for version in versions if not self._still_refused(name, version)]
            )
            for name, versions in on_disk.items()
        }
        markers = {name: what for name, what in building(self.root).items() if self._watched(name)}
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

    # -- policy ------------------------------------------------------------------------------
    def _policy(self, name: str) -> VersionPolicy:
        """The model's version policy; a malformed ``config.json`` is refused with one log line
        (until it changes) and the policy in force before is kept."""
        path = config_path(self.root / name)
        signature = _signature([path])
        cached = self._policies.get(name)
        if cached is not None and cached[0] == signature:
            return cached[1]
        previous = cached[1] if cached is not None else self.default_policy
        try:
            config = read_model_config(self.root / name)
            policy = self.default_policy
            if config is not None and config.version_policy is not None:
                policy = config.version_policy
        except SpecError as error:
            log.error("refused %s; keeping the version policy: %s", error, previous.describe())
            policy = previous
        else:
            if cached is not None and policy != previous:
                log.info("%s: version policy now %s", name, policy.describe())
        self._policies[name] = (signature, policy)
        return policy

    def _still_refused(self, name: str, version: int) -> bool:
        refusal = self._refused.get((name, version))
        if refusal is None:
            return False
        if refusal.signature == _directory_signature(self.root / name / str(version)):
            return True
        del self._refused[(name, version)]  # its files changed: try it again
        return False

    # -- loading and unloading -------------------------------------------------------------
    async def _load(self, name: str, version: int) -> None:
        directory = self.root / name / str(version)
        started = time.perf_counter()
        try:
            runtime = await self._off_loop(lambda: _load_and_warm(directory, self.options))
        except Exception as error:  # noqa: BLE001 - any fault refuses this version alone
            self._refuse(name, version, directory, error)
            return
        try:
            table = await self._off_loop(lambda: self.embedder.cost_table_for(runtime))
        except asyncio.CancelledError:  # shutdown: close it once its timing is done
            self._loader.submit(runtime.close)
            raise
        except Exception as error:  # noqa: BLE001 - timing failed: the engine did
            await asyncio.to_thread(runtime.close)
            self._refuse(name, version, directory, error)
            return
        seconds = time.perf_counter() - started
        try:
            await self.embedder.add(runtime, table)
        except Exception as error:  # noqa: BLE001 - as above; the runtime is not served
            await asyncio.to_thread(runtime.close)
            self._refuse(name, version, directory, error)
            return
        self.states.set(name, version, ModelState.READY)
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
        served = sorted(self.embedder.models.get(name, {}))
        log.error("refused %s/%d (still serving %s): %s", name, version, served or "none", named)

    def _retire(self, name: str, version: int) -> None:
        served = self.embedder.retire(name, version)
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
            await self.embedder.unload(served, self.grace_s)
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


def _signature(paths: Sequence[Path], relative_to: Path | None = None) -> Signature:
    """Name, size and modification time of each of ``paths`` that exists."""
    found = []
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            continue
        name = path.name if relative_to is None else path.relative_to(relative_to).as_posix()
        found.append((name, stat.st_size, stat.st_mtime_ns))
    return tuple(found)


def _directory_signature(directory: Path) -> Signature:
    """Every file of a version directory: a refused version is tried again once it changes."""
    try:
        files = sorted(path for path in directory.rglob("*") if path.is_file())
    except OSError:
        return ()
    return _signature(files, relative_to=directory)
