"""``python -m export``: train or import models, export them to ONNX, validate, evaluate.

python -m export bert --train                     # default BERT on the generated corpus
python -m export bert --from-hf DIR --name NAME   # any local BERT checkpoint
python -m export elmo --train                     # default ELMo on the generated corpus
python -m export elmo --options F --weights F     # a bilm-tf / AllenNLP biLM (options.json, HDF5)
python -m export word2vec --train [--cbow] [--hs]  # default word2vec (gensim) on the corpus
python -m export word2vec --from-file PATH [--binary] --name NAME  # C text / binary vectors
python -m export evaluate NAME                    # quality on held-out sentences
python -m export evaluate --compare [NAME ...]    # polysemy gaps side by side
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

from export.checkpoints import training_checkpoint_dir
from export.corpus import CorpusConfig, load_or_generate
from export.word2vec.cli import add_word2vec_parser
from modelrepo import ModelRepository, read_spec

console = Console(stderr=True)

DEFAULT_MODELS = ("bert", "elmo", "word2vec")


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

    elmo = commands.add_parser(
        "elmo", help="train an ELMo biLM or import bilm-tf / AllenNLP weights, and export it"
    )
    elmo_source = elmo.add_mutually_exclusive_group(required=True)
    elmo_source.add_argument(
        "--train", action="store_true", help="train the default small biLM on the corpus"
    )
    elmo_source.add_argument(
        "--options", type=Path, metavar="FILE", help="the biLM's options.json (needs --weights)"
    )
    elmo.add_argument(
        "--weights", type=Path, metavar="FILE", help="the biLM's HDF5 weights (bilm-tf layout)"
    )
    elmo.add_argument("--name", default="elmo", help="model name in the repository")
    elmo.add_argument("--version", type=int, help="version number (default: next free)")
    elmo.add_argument("--steps", type=int, help="training steps (default: the recipe's)")
    elmo.add_argument(
        "--checkpoint-dir",
        type=Path,
        help="where training writes options.json and the weights (default: build/checkpoints/NAME)",
    )
    elmo.add_argument(
        "--max-sequence-length",
        type=int,
        default=None,
        help="positions per text served, <S> and </S> included (default: 512)",
    )
    _common(elmo)
    add_word2vec_parser(commands, _common)

    evaluate = commands.add_parser(
        "evaluate", help="quality of an exported model on held-out sentences"
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
    _common(evaluate)

    defaults = commands.add_parser("defaults", help="build every default model that is missing")
    _common(defaults)
    return parser


def _corpus_config(args: argparse.Namespace) -> CorpusConfig:
    return CorpusConfig(seed=args.seed)


def _steps(args: argparse.Namespace, recipe_steps: int) -> int:
    """``--steps`` when given, else the recipe's (``defaults`` has no ``--steps``)."""
    steps: int | None = getattr(args, "steps", None)
    return steps or recipe_steps


def train_default_bert(args: argparse.Namespace, name: str, version: int | None) -> Path:
    from export.bert.exporter import import_bert
    from export.bert.train import BertTrainingConfig, train_bert

    corpus = load_or_generate(args.corpus_dir, _corpus_config(args))
    config = BertTrainingConfig(seed=args.seed, steps=_steps(args, BertTrainingConfig.steps))
    checkpoint = training_checkpoint_dir(args, name)
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


def train_default_elmo(args: argparse.Namespace, name: str, version: int | None) -> Path:
    from export.elmo.exporter import import_elmo
    from export.elmo.train import ElmoTrainingConfig, train_elmo

    corpus = load_or_generate(args.corpus_dir, _corpus_config(args))
    config = ElmoTrainingConfig(seed=args.seed, steps=_steps(args, ElmoTrainingConfig.steps))
    checkpoint = training_checkpoint_dir(args, name)
    started = time.perf_counter()
    options, weights = train_elmo(
        corpus.train.sentences, config, checkpoint, show_progress=not args.no_progress
    )
    console.print(f"trained in {time.perf_counter() - started:.0f} s → {checkpoint}")
    return import_elmo(options, weights, args.models_dir, name, version, **_elmo_limits(args))


def _elmo_limits(args: argparse.Namespace) -> dict[str, int]:
    length = getattr(args, "max_sequence_length", None)
    return {} if length is None else {"max_sequence_length": length}


def command_elmo(args: argparse.Namespace) -> Path:
    from export.elmo.exporter import import_elmo

    started = time.perf_counter()
    if args.train:
        if args.weights is not None:
            raise SystemExit("--weights goes with --options, not with --train")
        target = train_default_elmo(args, args.name, args.version)
    else:
        if args.weights is None:
            raise SystemExit("--options needs --weights (the biLM's HDF5 weight file)")
        target = import_elmo(
            args.options,
            args.weights,
            args.models_dir,
            args.name,
            args.version,
            **_elmo_limits(args),
        )
    console.print(f"exported {target} in {time.perf_counter() - started:.0f} s")
    _print_elmo_validation(target)
    return target


def _print_elmo_validation(target: Path) -> None:
    report = json.loads((target / "validation.json").read_text())
    table = Table(title=f"validation of {target} (tolerance {report['tolerance']:g})")
    for column in ("graph", "initial state", "output", "max |diff|"):
        table.add_column(column)
    for role, graph in report["graphs"].items():
        for state, state_report in graph["initial_state"].items():
            for output, diff in state_report["max_abs_diff"].items():
                table.add_row(role, state, output, f"{diff:.2e}")
    console.print(table)


def train_default_word2vec(args: argparse.Namespace, name: str, version: int | None) -> Path:
    from export.word2vec.cli import train_and_import

    corpus = load_or_generate(args.corpus_dir, _corpus_config(args))
    return train_and_import(args, corpus.train.sentences, name, version, console)


def command_word2vec(args: argparse.Namespace) -> Path:
    from export.word2vec.cli import check_arguments, import_from_file

    check_arguments(args)
    started = time.perf_counter()
    if args.train:
        target = train_default_word2vec(args, args.name, args.version)
    else:
        target = import_from_file(args)
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

    if args.name is None:
        raise SystemExit("evaluate needs a model name, or --compare [NAME ...]")
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
    elif spec.architecture == "word2vec":
        from export.word2vec.evaluate import evaluate_word2vec
        from export.word2vec.inference import OnnxWord2Vec

        results.update(evaluate_word2vec(OnnxWord2Vec(directory), corpus.heldout))
    elif spec.architecture == "elmo":
        from export.elmo.evaluate import evaluate_elmo
        from export.elmo.inference import OnnxElmo

        results.update(evaluate_elmo(OnnxElmo(directory), corpus.heldout))
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


def command_compare(args: argparse.Namespace) -> list[dict[str, object]]:
    """``evaluate --compare [NAME ...]``: each model's evaluation, then one table of the gaps."""
    if args.name is not None or args.version is not None:
        raise SystemExit("--compare takes model names (newest versions); drop NAME/--version")
    repository = ModelRepository(args.models_dir)
    names = list(args.compare) or [n for n in DEFAULT_MODELS if repository.newest(n) is not None]
    if not names:
        raise SystemExit(f"no default model in {args.models_dir}: build them with `defaults`")
    everything = [
        command_evaluate(argparse.Namespace(**{**vars(args), "name": name, "json": None}))
        for name in names
    ]
    _print_comparison(everything)
    if args.json:
        args.json.write_text(json.dumps(everything, indent=2) + "\n")
    return everything


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


def command_defaults(args: argparse.Namespace) -> None:
    repository = ModelRepository(args.models_dir)
    for name in DEFAULT_MODELS:
        if repository.newest(name) is not None:
            console.print(f"{name}: present ({args.models_dir / name}/{repository.newest(name)})")
            continue
        console.print(f"{name}: missing, building it")
        if name == "bert":
            train_default_bert(args, name, None)
        elif name == "elmo":
            train_default_elmo(args, name, None)
        elif name == "word2vec":
            train_default_word2vec(args, name, None)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    if args.command == "bert":
        command_bert(args)
    elif args.command == "elmo":
        command_elmo(args)
    elif args.command == "word2vec":
        command_word2vec(args)
    elif args.command == "evaluate" and args.compare is not None:
        command_compare(args)
    elif args.command == "evaluate":
        command_evaluate(args)
    elif args.command == "defaults":
        command_defaults(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
