"""The commands that span architectures: ``evaluate``, ``evaluate --compare`` and ``defaults``.

Each looks the model's architecture up in the registry; none knows one architecture from another.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from export.configure import add_config_command
from export.console import console
from export.corpus import load_or_generate
from export.progress import ProgressReport, observing
from export.registry import architecture
from export.requests import Commands, Workspace, add_workspace_options
from modelrepo import ModelRepository, read_spec
from modelrepo.building import BuildQueue, Planned, queue_builds
from modelrepo.rebuild import BUILDING, DEFAULT_MODELS

MEASURED_BUILD_S = {"word2vec": 60.0, "bert": 17 * 60.0, "elmo": 9 * 60.0}
"""Each default's whole build (training, export, validation) as measured on a loaded 2-core
machine: what a queued model's wait is estimated from until the build before it has measured
its own training rate."""


@dataclass(frozen=True)
class EvaluateRequest:
    """Evaluate one model version (``None``: the newest) on the held-out sentences."""

    workspace: Workspace
    name: str
    version: int | None = None
    json: Path | None = None


@dataclass(frozen=True)
class CompareRequest:
    """Evaluate several models (newest versions; none given: the default models present)."""

    workspace: Workspace
    names: tuple[str, ...] = ()
    json: Path | None = None


@dataclass(frozen=True)
class DefaultsRequest:
    """Build every default model that is missing."""

    workspace: Workspace


def add_commands(commands: Commands) -> None:
    evaluate = commands.add_parser(
        "evaluate", allow_abbrev=False, help="quality of an exported model on held-out sentences"
    )
    evaluate.add_argument("name", nargs="?", help="model name (or use --compare)")
    evaluate.add_argument("--version", type=int, help="version (default: newest)")
    evaluate.add_argument(
        "--compare",
        nargs="*",
        metavar="NAME",
        help="evaluate several models (newest versions; default: every default model present) "
        "and print their polysemy gaps side by side",
    )
    evaluate.add_argument("--json", type=Path, help="also write the results to this file")
    add_workspace_options(evaluate)
    evaluate.set_defaults(build=evaluation_request, func=run_evaluation)

    defaults = commands.add_parser(
        "defaults", allow_abbrev=False, help="build every default model that is missing"
    )
    add_workspace_options(defaults)
    defaults.set_defaults(build=defaults_request, func=build_defaults)
    add_config_command(commands)


def evaluation_request(
    args: argparse.Namespace, workspace: Workspace
) -> EvaluateRequest | CompareRequest:
    if args.compare is not None:
        if args.name is not None or args.version is not None:
            raise SystemExit("--compare takes model names (newest versions); drop NAME/--version")
        return CompareRequest(workspace, tuple(args.compare), args.json)
    if args.name is None:
        raise SystemExit("evaluate needs a model name, or --compare [NAME ...]")
    return EvaluateRequest(workspace, args.name, args.version, args.json)


def defaults_request(args: argparse.Namespace, workspace: Workspace) -> DefaultsRequest:
    return DefaultsRequest(workspace)


def run_evaluation(request: EvaluateRequest | CompareRequest) -> object:
    if isinstance(request, CompareRequest):
        return compare(request)
    return evaluate(request)


def evaluate(request: EvaluateRequest) -> dict[str, object]:
    """One model's evaluation, printed (and written to ``--json``)."""
    workspace = request.workspace
    repository = ModelRepository(workspace.models_dir)
    version = request.version or repository.newest(request.name)
    if version is None:
        raise SystemExit(f"no model {request.name!r} in {workspace.models_dir}")
    directory = repository.path(request.name, version)
    spec = read_spec(directory)
    corpus = load_or_generate(workspace.corpus_dir, workspace.corpus_config)
    results: dict[str, object] = {
        "model": f"{request.name}/{version}",
        "architecture": spec.architecture,
        **architecture(spec.architecture).evaluator(directory, corpus),
    }
    _print_evaluation(results)
    if request.json:
        request.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


def compare(request: CompareRequest) -> list[dict[str, object]]:
    """Each model's evaluation, then one table of the polysemy gaps."""
    workspace = request.workspace
    repository = ModelRepository(workspace.models_dir)
    names = list(request.names) or [
        name for name in DEFAULT_MODELS if repository.newest(name) is not None
    ]
    if not names:
        raise SystemExit(f"no default model in {workspace.models_dir}: build them with `defaults`")
    everything = [evaluate(EvaluateRequest(workspace, name)) for name in names]
    _print_comparison(everything)
    if request.json:
        request.json.write_text(json.dumps(everything, indent=2) + "\n")
    return everything


def build_defaults(request: DefaultsRequest) -> list[Path]:
    """Train and publish each missing default model, in ``DEFAULT_MODELS`` order.

    Every missing one is queued (``modelrepo.building``) before the first is built, so a server
    on the repository reports each as on its way from the start; the one being built carries
    its training progress and measured time left. A failure or Ctrl-C removes every marker."""
    workspace = request.workspace
    repository = ModelRepository(workspace.models_dir)
    missing = [name for name in DEFAULT_MODELS if repository.newest(name) is None]
    planned = [Planned(name, BUILDING[name], MEASURED_BUILD_S.get(name)) for name in missing]
    built: list[Path] = []
    with queue_builds(workspace.models_dir, planned) as queue:
        for name in DEFAULT_MODELS:
            if name not in missing:
                newest = repository.newest(name)
                console.print(f"{name}: present ({workspace.models_dir / name}/{newest})")
        if missing:
            console.print(f"queued {', '.join(missing)}: each is served once it is published")
        for name in missing:
            console.print(f"{name}: missing, building it")
            with queue.build(name), observing(_marker_progress(queue, name)):
                built.append(architecture(name).train_default(workspace, name))
            console.print(f"{name}: published {built[-1]}", soft_wrap=True)
    return built


def _marker_progress(queue: BuildQueue, name: str) -> Callable[[ProgressReport], None]:
    """Keeps ``name``'s marker at its training's step and measured time left."""

    def report(progress: ProgressReport) -> None:
        queue.report(name, progress.step, progress.steps, progress.remaining_s)

    return report


def _print_evaluation(results: dict[str, object]) -> None:
    console.print(f"[bold]evaluation of {results['model']}[/bold]")
    fill = results.get("fill_mask")
    if isinstance(fill, dict):
        console.print(
            f"fill-mask on {fill['evaluated']} held-out sentences: top-1 {fill['top1']:.3f}, "
            f"top-5 {fill['top5']:.3f} ({fill['skipped_multi_piece']} skipped: multi-piece word)"
        )
    if results.get("architecture") == "word2vec":
        from export.word2vec.evaluate import print_word2vec_evaluation

        print_word2vec_evaluation(console, results)
    for key, title in (
        ("polysemy", "default layer"),
        ("polysemy_layer0", "layer 0 (context-free)"),
        ("polysemy_layer1", "layer 1"),
        ("polysemy_layer2", "layer 2"),
    ):
        poly = results.get(key)
        if not isinstance(poly, dict):
            continue
        table = Table(title=f"polysemy, {title}: mean gap {poly['mean_gap']:.3f}")
        for column in ("word", "within-sense cos", "cross-sense cos", "gap"):
            table.add_column(column)
        for word, row in poly["per_word"].items():
            table.add_row(word, f"{row['within']:.3f}", f"{row['across']:.3f}", f"{row['gap']:.3f}")
        console.print(table)


def _print_comparison(everything: list[dict[str, object]]) -> None:
    """Mean polysemy gap per model: the served default and layer 0 (context-free)."""

    def gap(results: dict[str, object], key: str) -> str:
        poly = results.get(key)
        return f"{poly['mean_gap']:.3f}" if isinstance(poly, dict) else "—"

    table = Table(title="polysemy gap (within-sense − cross-sense cosine), held-out sentences")
    for column in ("model", "architecture", "default", "layer 0 (context-free)"):
        table.add_column(column)
    for results in everything:
        table.add_row(
            str(results["model"]),
            str(results["architecture"]),
            gap(results, "polysemy"),
            gap(results, "polysemy_layer0"),
        )
    console.print(table)
