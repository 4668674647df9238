"""Publish a model version atomically: build in a staging folder, then rename into place.

A half-written export never looks like a version to the server, and an existing version is
never overwritten.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from modelrepo import (
    ModelRepository,
    ModelSpec,
    ValidationReport,
    load_checked,
    write_spec,
    write_validation,
)

Build = Callable[[Path, int], tuple[ModelSpec, ValidationReport]]


def publish_version(models_dir: Path, name: str, version: int | None, build: Build) -> Path:
    """Run ``build(staging_dir, version)``, write spec and report, check, and move into place."""
    repository = ModelRepository(models_dir)
    number = version if version is not None else repository.next_version(name)
    target = repository.path(name, number)
    if target.exists():
        raise FileExistsError(
            f"{target} already exists; pass another --version or remove that directory first"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{number}-", dir=target.parent))
    try:
        spec, report = build(staging, number)
        write_spec(staging, spec.model_copy(update={"version": number, "name": name}))
        write_validation(staging, report)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    load_checked(target)
    return target
