"""Load model versions from the repository into runtimes, refusing any that fail their checks."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from modelrepo import ModelRepository, ModelSpec, SpecError, load_checked
from modelrepo.model_config import ALL_VERSIONS, VersionPolicy, read_model_config
from service.runtime.base import Runtime
from service.runtime.bert import BertRuntime
from service.runtime.elmo import ElmoRuntime
from service.runtime.session import SessionOptions, check_single_onnxruntime
from service.runtime.word2vec import Word2VecRuntime

log = logging.getLogger(__name__)

RuntimeFactory = Callable[[Path, ModelSpec, SessionOptions], Runtime]

RUNTIMES: dict[str, RuntimeFactory] = {
    "bert": BertRuntime,
    "elmo": ElmoRuntime,
    "word2vec": Word2VecRuntime,
}


def load_runtime(directory: Path, options: SessionOptions) -> Runtime:
    """Check one version directory against its spec and open its runtime."""
    spec = load_checked(directory)
    factory = RUNTIMES.get(spec.architecture)
    if factory is None:
        raise SpecError(
            f"{directory}: architecture {spec.architecture!r} has no runtime in this build "
            f"(available: {sorted(RUNTIMES)})"
        )
    return factory(directory, spec, options)


def version_policy(root: Path, name: str, default: VersionPolicy) -> VersionPolicy:
    """The model's policy from its ``config.json``, else ``default``; ``SpecError`` when the
    file is malformed."""
    config = read_model_config(root / name)
    if config is None or config.version_policy is None:
        return default
    return config.version_policy


def load_repository(
    root: Path,
    names: Sequence[str],
    options: SessionOptions,
    seconds: dict[tuple[str, int], float] | None = None,
    default_policy: VersionPolicy = ALL_VERSIONS,
) -> dict[str, dict[int, Runtime]]:
    """The versions each model's policy selects (``config.json``, else ``default_policy``:
    every version) of every model in ``root``, or of ``names`` only, each of which must exist.

    ``seconds``, when given, receives how long each ``(name, version)`` took to check and open.
    """
    check_single_onnxruntime()
    repository = ModelRepository(root)
    available = repository.names()
    missing = [name for name in names if name not in available]
    if missing:
        raise SpecError(f"{root}: no model named {missing} (the repository has {available})")
    runtimes: dict[str, dict[int, Runtime]] = {}
    for name in names or available:
        policy = version_policy(root, name, default_policy)
        for version in policy.select(repository.versions(name)):
            started = time.perf_counter()
            runtimes.setdefault(name, {})[version] = load_runtime(
                repository.path(name, version), options
            )
            if seconds is not None:
                seconds[(name, version)] = time.perf_counter() - started
            log.info("loaded %s/%d", name, version)
    return runtimes
