"""Open one model version directory as the runtime of its architecture, after its checks."""

from __future__ import annotations

from pathlib import Path

from modelrepo import SpecError, load_checked
from service.runtime.base import Runtime
from service.runtime.registry import RUNTIMES
from service.runtime.session import SessionOptions


def load_runtime(directory: Path, options: SessionOptions) -> Runtime:
    """Check one version directory against its spec and checksums and open its runtime."""
    spec = load_checked(directory)
    factory = RUNTIMES.get(spec.architecture)
    if factory is None:
        raise SpecError(
            f"{directory}: architecture {spec.architecture!r} has no runtime in this build "
            f"(available: {sorted(RUNTIMES)})"
        )
    return factory(directory, spec, options)
