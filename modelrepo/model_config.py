"""A model's own settings: ``<root>/<name>/config.json``, beside its version directories.

Optional. Today it holds the version policy (which versions the server serves); it is one
frozen object with a section per concern, so later settings (batching limits, say) are new
sections of the same file. Unknown keys are refused rather than ignored, so a typo never
silently falls back to a default. Only pydantic and the standard library, like the rest of
``modelrepo``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from modelrepo.repository import SpecError, problems_of

CONFIG_FILE = "config.json"

log = logging.getLogger(__name__)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class VersionPolicy(_Frozen):
    """Which of a model's versions to serve: the newest ``latest``, the ``specific`` ones, or
    ``all`` of them. Give exactly one."""

    latest: int | None = Field(None, ge=1, description="serve the newest N versions")
    specific: tuple[int, ...] | None = Field(None, description="serve exactly these versions")
    all: bool = Field(False, description="serve every version in the repository")

    @model_validator(mode="after")
    def _exactly_one(self) -> VersionPolicy:
        chosen = [
            key
            for key, given in (
                ("latest", self.latest is not None),
                ("specific", self.specific is not None),
                ("all", self.all),
            )
            if given
        ]
        if len(chosen) != 1:
            raise ValueError(
                f"give exactly one of latest, specific or all (got {chosen or 'none'})"
            )
        if self.specific is not None and (not self.specific or min(self.specific) < 1):
            raise ValueError("specific lists version numbers of 1 or more, at least one")
        return self

    def select(self, versions: Sequence[int]) -> list[int]:
        """The versions of ``versions`` this policy serves, oldest first."""
        ordered = sorted(set(versions))
        if self.all:
            return ordered
        if self.specific is not None:
            return [version for version in ordered if version in self.specific]
        assert self.latest is not None  # the validator guarantees one choice
        return ordered[-self.latest :]

    def describe(self) -> str:
        if self.all:
            return "all versions"
        if self.specific is not None:
            return f"versions {list(self.specific)}"
        return f"the newest {self.latest}"


NEWEST_ONLY = VersionPolicy(latest=1)
ALL_VERSIONS = VersionPolicy(all=True)


class BatchingLimits(_Frozen):
    """The model's own batching limits; each one left out is the server's setting."""

    max_batch_size: int | None = Field(None, ge=1, description="sequences per batch")
    max_batch_tokens: int | None = Field(None, ge=1, description="padded tokens per batch")
    max_queue_delay_ms: float | None = Field(
        None, ge=0, description="how long the oldest text may wait for others to join it"
    )
    cost_model: Literal["on", "off"] | None = Field(
        None, description="choose batch shapes by the cost measured at warm-up"
    )

    def describe(self) -> str:
        given = self.model_dump(exclude_none=True)
        return ", ".join(f"{key} {value}" for key, value in given.items()) or "the server's"


class ModelConfig(_Frozen):
    """Everything ``config.json`` may say about one model; each section is optional."""

    version_policy: VersionPolicy | None = None
    batching: BatchingLimits | None = None

    def describe(self, default_policy: VersionPolicy) -> str:
        policy = (self.version_policy or default_policy).describe()
        batching = self.batching.describe() if self.batching is not None else "the server's"
        return f"version policy {policy}; batching {batching}"


def config_path(model_dir: Path) -> Path:
    return model_dir / CONFIG_FILE


def read_model_config(model_dir: Path) -> ModelConfig | None:
    """The model's ``config.json``, None when there is none, or ``SpecError`` naming the file
    and what is wrong with it."""
    path = config_path(model_dir)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(f"{path}: cannot be read ({error})") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise SpecError(f"{path}: not valid JSON ({error})") from None
    try:
        return ModelConfig.model_validate(raw)
    except ValidationError as error:
        raise SpecError(f"{path}: {problems_of(error, 'config')}") from None


def write_model_config(model_dir: Path, config: ModelConfig) -> Path:
    """Write ``config.json`` atomically (a reader sees the old file or the new, never half)."""
    path = config_path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{CONFIG_FILE}.writing")
    staging.write_text(config.model_dump_json(indent=2, exclude_defaults=True) + "\n")
    staging.replace(path)
    return path


Signature = tuple[int, int] | None
"""Size and modification time of a file, or None when there is none."""


def _signature(path: Path) -> Signature:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


class ModelConfigReader:
    """The one reader of a repository's ``config.json`` files for a running server.

    A file is parsed again only when its size or modification time changes. A malformed file
    is refused with one log line (until it changes again), and what the model had before it is
    kept: the version policy in force, the batching limits. Thread-safe enough for its use: one
    loading thread reads while the event loop may ask for limits of a version being added.
    """

    def __init__(self, root: Path | None, default_policy: VersionPolicy = NEWEST_ONLY) -> None:
        self.root = root
        self.default_policy = default_policy
        """What ``describe`` names when a file has no policy (the server's default)."""
        self._read: dict[str, tuple[Signature, ModelConfig]] = {}

    def read(self, name: str, strict: bool = False) -> ModelConfig:
        """The model's configuration (empty sections: the server's) as its file says now;
        ``strict``: a malformed file raises ``SpecError`` instead (a start that fails fast)."""
        if self.root is None:
            return ModelConfig()
        path = config_path(self.root / name)
        signature = _signature(path)
        known = self._read.get(name)
        if known is not None and known[0] == signature:
            return known[1]
        previous = known[1] if known is not None else ModelConfig()
        try:
            config = read_model_config(self.root / name) or ModelConfig()
        except SpecError as error:
            if strict:
                raise
            log.error(
                "refused %s; %s keeps %s", error, name, previous.describe(self.default_policy)
            )
            config = previous
        else:
            if known is not None and config != previous:
                log.info(
                    "%s: %s now says %s", name, CONFIG_FILE, config.describe(self.default_policy)
                )
        self._read[name] = (signature, config)
        return config
