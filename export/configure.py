"""``python -m export config NAME ...``: write a model's ``config.json`` (batching limits,
version policy) beside its versions; what is not given keeps its current value.

    python -m export config bert --max-batch-size 16 --max-queue-delay-ms 1
    python -m export config elmo --cost-model off
    python -m export config bert --latest 2          # or --specific 3 5, or --all-versions
    python -m export config bert --reset             # back to the server's settings

A server polling the repository applies a new version policy within its poll interval; the
batching limits of a version are read when it is loaded.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from export.console import console
from export.requests import Commands, Workspace, add_workspace_options
from modelrepo import ModelRepository
from modelrepo.model_config import (
    ModelConfig,
    VersionPolicy,
    config_path,
    read_model_config,
    write_model_config,
)
from modelrepo.repository import problems_of


@dataclass(frozen=True)
class ConfigRequest:
    """What to change in one model's ``config.json`` (None: keep what is there)."""

    workspace: Workspace
    name: str
    max_batch_size: int | None = None
    max_batch_tokens: int | None = None
    max_queue_delay_ms: float | None = None
    cost_model: Literal["on", "off"] | None = None
    version_policy: VersionPolicy | None = None
    reset: bool = False


def add_config_command(commands: Commands) -> None:
    parser = commands.add_parser(
        "config",
        allow_abbrev=False,
        help="set a model's own batching limits or version policy (config.json)",
    )
    parser.add_argument("name", help="model name in the repository")
    parser.add_argument("--max-batch-size", type=int, help="sequences per batch")
    parser.add_argument("--max-batch-tokens", type=int, help="padded tokens per batch")
    parser.add_argument(
        "--max-queue-delay-ms", type=float, help="how long the oldest text may wait for a batch"
    )
    parser.add_argument(
        "--cost-model", choices=("on", "off"), help="choose batch shapes by the measured cost"
    )
    policy = parser.add_mutually_exclusive_group()
    policy.add_argument("--latest", type=int, metavar="N", help="serve the newest N versions")
    policy.add_argument(
        "--specific", type=int, nargs="+", metavar="V", help="serve exactly these versions"
    )
    policy.add_argument("--all-versions", action="store_true", help="serve every version")
    parser.add_argument(
        "--reset", action="store_true", help="remove config.json: the server's settings apply"
    )
    add_workspace_options(parser)
    parser.set_defaults(build=config_request, func=write_config)


def config_request(args: argparse.Namespace, workspace: Workspace) -> ConfigRequest:
    try:
        return _config_request(args, workspace)
    except ValidationError as error:
        raise SystemExit(f"config {args.name}: {problems_of(error, 'config')}") from None


def _config_request(args: argparse.Namespace, workspace: Workspace) -> ConfigRequest:
    policy = None
    if args.latest is not None:
        policy = VersionPolicy(latest=args.latest)
    elif args.specific is not None:
        policy = VersionPolicy(specific=tuple(args.specific))
    elif args.all_versions:
        policy = VersionPolicy(all=True)
    request = ConfigRequest(
        workspace,
        args.name,
        args.max_batch_size,
        args.max_batch_tokens,
        args.max_queue_delay_ms,
        args.cost_model,
        policy,
        args.reset,
    )
    if request.reset and _changes(request):
        raise SystemExit("--reset removes config.json; give it alone")
    return request


def _changes(request: ConfigRequest) -> dict[str, Any]:
    batching = {
        key: value
        for key, value in (
            ("max_batch_size", request.max_batch_size),
            ("max_batch_tokens", request.max_batch_tokens),
            ("max_queue_delay_ms", request.max_queue_delay_ms),
            ("cost_model", request.cost_model),
        )
        if value is not None
    }
    changes: dict[str, Any] = {"batching": batching} if batching else {}
    if request.version_policy is not None:
        changes["version_policy"] = request.version_policy
    return changes


def write_config(request: ConfigRequest) -> ModelConfig | None:
    """Merge the request into the model's config.json (or remove it); the result."""
    models_dir = request.workspace.models_dir
    if not ModelRepository(models_dir).versions(request.name):
        raise SystemExit(f"no model {request.name!r} in {models_dir}")
    directory = models_dir / request.name
    path = config_path(directory)
    if request.reset:
        path.unlink(missing_ok=True)
        console.print(f"removed {path}: {request.name} follows the server's settings")
        return None
    changes = _changes(request)
    if not changes:
        raise SystemExit("nothing to set: give a limit, --cost-model or a version policy")
    current = read_model_config(directory) or ModelConfig()
    merged: dict[str, Any] = current.model_dump(exclude_none=True)
    if "batching" in changes:
        merged["batching"] = {**merged.get("batching", {}), **changes["batching"]}
    if "version_policy" in changes:
        merged["version_policy"] = changes["version_policy"].model_dump(exclude_defaults=True)
    try:
        updated = ModelConfig.model_validate(merged)
    except ValidationError as error:
        raise SystemExit(f"config {request.name}: {problems_of(error, 'config')}") from None
    write_model_config(directory, updated)
    console.print(f"wrote {path}: {updated.model_dump_json(exclude_none=True)}")
    return updated
