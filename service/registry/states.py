"""Where each model version stands on this server: loading, ready, draining or failed.

The embedder's ``models`` holds what answers requests; this record also holds what does not
(yet, or any more), so ``ListModels``, ``GetModel``, health and errors can say why a model is
not ready. Models the defaults builder has queued or is building (``modelrepo.building``) count
as loading, with the builder's reason ("queued: waits for bert (about 12 minutes)", "being built:
..., step 300 of 2000, about 10 minutes of training left"): a call for one is UNAVAILABLE,
never NOT_FOUND.
Every change is reported to the metrics (``embed_model_state``, ``embed_model_ready``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from service.metrics import Metrics


class ModelState(enum.Enum):
    LOADING = "loading"
    READY = "ready"
    DRAINING = "draining"
    FAILED = "failed"


@dataclass(frozen=True)
class VersionState:
    state: ModelState
    reason: str = ""


@dataclass(frozen=True)
class ModelSummary:
    """One model's state as a whole: ready while any version is; else loading while one loads
    or the model is queued or being built; else draining; else failed. ``reason`` says why."""

    state: ModelState
    reason: str


class ModelStates:
    """The state of every known model version, and the models on their way (queued or being
    built)."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        self._versions: dict[str, dict[int, VersionState]] = {}
        self._building: dict[str, str] = {}
        self.known: set[str] = set()
        """Every model name with a version in some state or being built."""

    def set(self, name: str, version: int, state: ModelState, reason: str = "") -> None:
        self._versions.setdefault(name, {})[version] = VersionState(state, reason)
        self.known.add(name)
        if self.metrics is not None:
            self.metrics.model_state_changed(name, version, state.value)

    def forget(self, name: str, version: int) -> None:
        """The version is gone (unloaded, or its directory removed)."""
        versions = self._versions.get(name, {})
        if versions.pop(version, None) is not None and self.metrics is not None:
            self.metrics.model_stopped(name, version)
        if not versions:
            self._versions.pop(name, None)
        self._update_known()

    def set_building(self, building: Mapping[str, str]) -> None:
        """Model name -> why it is not served yet ("queued: ...", "being built: ..."), as the
        builder's markers say now."""
        self._building = dict(building)
        self._update_known()

    def _update_known(self) -> None:
        self.known = set(self._versions) | set(self._building)

    def versions(self, name: str) -> dict[int, VersionState]:
        return dict(self._versions.get(name, {}))

    def version(self, name: str, version: int) -> VersionState | None:
        return self._versions.get(name, {}).get(version)

    def building(self, name: str) -> str | None:
        return self._building.get(name)

    def building_names(self) -> frozenset[str]:
        """The models on their way (queued or being built)."""
        return frozenset(self._building)

    def names(self) -> list[str]:
        return sorted(self.known)

    def summary(self, name: str) -> ModelSummary | None:
        """The model's state as a whole, or None for a model this server does not know."""
        versions = self._versions.get(name, {})
        by_state: dict[ModelState, list[int]] = {}
        for number, version in sorted(versions.items()):
            by_state.setdefault(version.state, []).append(number)
        failed = "; ".join(
            f"version {number} refused: {versions[number].reason}"
            for number in by_state.get(ModelState.FAILED, [])
        )
        loading = [f"loading version {number}" for number in by_state.get(ModelState.LOADING, [])]
        if (on_its_way := self._building.get(name)) is not None:
            loading.insert(0, on_its_way)
        if ModelState.READY in by_state:
            return ModelSummary(ModelState.READY, "; ".join(filter(None, [*loading, failed])))
        if loading:
            return ModelSummary(ModelState.LOADING, "; ".join(loading))
        if ModelState.DRAINING in by_state:
            numbers = by_state[ModelState.DRAINING]
            return ModelSummary(
                ModelState.DRAINING, f"unloading versions {numbers} after their requests finish"
            )
        if failed:
            return ModelSummary(ModelState.FAILED, failed)
        return None
