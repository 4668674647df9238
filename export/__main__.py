"""``python -m export``: train or import models, export them to ONNX, validate, evaluate.

python -m export bert --train                     # default BERT on the generated corpus
python -m export bert --from-hf DIR --name NAME   # any local BERT checkpoint
python -m export evaluate NAME                    # quality on held-out sentences
python -m export defaults                         # build every missing default model
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from export.corpus import CorpusConfig, load_or_generate
from modelrepo import ModelRepository, read_spec

console = Console(stderr=True)

DEFAULT_MODELS = ("bert",)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models-dir", type=Path, default=Path("models"), help="repository root")
    parser.add_argument(
        "--corpus-dir", type=Path, default=Path("build/corpus"), help="generated corpus cache"
    )
    parser.add_argument("--seed", type=int, default=13, help="seed of the corpus and of training")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    bert = commands.add_parser("bert", help="train or import a BERT masked LM and export it")
    source = bert.add_mutually_exclusive_group(required=True)
    source.add_argument("--train", action="store_true", help="train the default small BERT")
    source.add_argument(
        "--from-hf", type=Path, metavar="DIR", help="a local Hugging Face BERT checkpoint"
    )
    bert.add_argument("--name", default="bert", help="model name in the repository")
    bert.add_argument("--version", type=int, help="version number (default: next free)")
    bert.add_argument("--steps", type=int, help="training steps (default: the recipe's)")
    bert.add_argument(
        "--checkpoint-dir",
        type=Path,
        help="where training saves the PyTorch checkpoint (default: build/checkpoints/NAME)",
    )
    _common(bert)

    evaluate = commands.add_parser(
        "evaluate", help="quality of an exported model on held-out sentences"
    )
    evaluate.add_argument("name", help="model name")
    evaluate.add_argument("--version", type=int, help="version (default: newest)")
    evaluate.add_argument("--json", type=Path, help="also write the results to this file")
    _common(evaluate)

    defaults = commands.add_parser("defaults", help="build every default model that is missing")
    _common(defaults)
    return parser


def _corpus_config(args: argparse.Namespace) -> CorpusConfig:
    return CorpusConfig(seed=args.seed)


def train_default_bert(args: argparse.Namespace, name: str, version: int | None) -> Path:
    from dataclasses import replace

    from export.bert.exporter import import_bert
    from export.bert.train import BertTrainingConfig, train_bert

    corpus = load_or_generate(args.corpus_dir, _corpus_config(args))
    config = BertTrainingConfig(seed=args.seed)
    if getattr(args, "steps", None):
        config = replace(config, steps=args.steps)
    checkpoint = getattr(args, "checkpoint_dir", None) or Path("build/checkpoints") / name
    started = time.perf_counter()
    train_bert(corpus.train.sentences, config, checkpoint, show_progress=not args.no_progress)
    console.print(f"trained in {time.perf_counter() - started:.0f} s → {checkpoint}")
    return import_bert(checkpoint, args.models_dir, name, version)


def command_bert(args: argparse.Namespace) -> Path:
    from export.bert.exporter import import_bert

    started = time.perf_counter()
    if args.train:
        target = train_default_bert(args, args.name, args.version)
    else:
        target = import_bert(args.from_hf, args.models_dir, args.name, args.version)
    console.print(f"exported {target} in {time.perf_counter() - started:.0f} s")
    _print_validation(target)
    return target


def _print_validation(target: Path) -> None:
    report = json.loads((target / "validation.json").read_text())
    table = Table(title=f"validation of {target}")
    for column in ("graph", "optimized", "output", "max |diff| unoptimized", "max |diff| served"):
        table.add_column(column)
    for role, graph in report["graphs"].items():
        served = graph["optimized_report"] if graph["optimized"] else graph["unoptimized"]
        for output, diff in graph["unoptimized"]["max_abs_diff"].items():
            table.add_row(
                role,
                str(graph["optimized"]),
                output,
                f"{diff:.2e}",
                f"{served['max_abs_diff'][output]:.2e}",
            )
    console.print(table)


def command_evaluate(args: argparse.Namespace) -> dict[str, object]:
    from export.evaluate import fill_mask_accuracy, polysemy_gap

    repository = ModelRepository(args.models_dir)
    version = args.version or repository.newest(args.name)
    if version is None:
        raise SystemExit(f"no model {args.name!r} in {args.models_dir}")
    directory = repository.path(args.name, version)
    spec = read_spec(directory)
    corpus = load_or_generate(args.corpus_dir, _corpus_config(args))
    results: dict[str, object] = {
        "model": f"{args.name}/{version}",
        "architecture": spec.architecture,
    }
    if spec.architecture == "bert":
        from export.bert.inference import OnnxBert

        bert = OnnxBert(directory)
        if bert.fill_mask is not None:
            report = fill_mask_accuracy(
                corpus, bert.mask_logits, bert.single_token_id, spec.special_tokens["mask"]
            )
            results["fill_mask"] = report.to_dict()
        results["polysemy"] = polysemy_gap(corpus.heldout, bert.word_vectors).to_dict()
        results["polysemy_layer0"] = polysemy_gap(
            corpus.heldout, lambda s, p: bert.word_vectors(s, p, layer=0)
        ).to_dict()
    _print_evaluation(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


def _print_evaluation(results: dict[str, object]) -> None:
    console.print(f"[bold]evaluation of {results['model']}[/bold]")
    fill = results.get("fill_mask")
    if isinstance(fill, dict):
        console.print(
            f"fill-mask on {fill['evaluated']} held-out sentences: top-1 {fill['top1']:.3f}, "
            f"top-5 {fill['top5']:.3f} ({fill['skipped_multi_piece']} skipped: multi-piece word)"
        )
    for key, title in (
        ("polysemy", "default layer"),
        ("polysemy_layer0", "layer 0 (context-free)"),
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


def command_defaults(args: argparse.Namespace) -> None:
    repository = ModelRepository(args.models_dir)
    for name in DEFAULT_MODELS:
        if repository.newest(name) is not None:
            console.print(f"{name}: present ({args.models_dir / name}/{repository.newest(name)})")
            continue
        console.print(f"{name}: missing, building it")
        if name == "bert":
            train_default_bert(args, name, None)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    if args.command == "bert":
        command_bert(args)
    elif args.command == "evaluate":
        command_evaluate(args)
    elif args.command == "defaults":
        command_defaults(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
