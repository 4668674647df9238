"""The ``python -m export bert`` command: its arguments, training, import and evaluation.

python -m export bert --train [--steps N] [--quantize int8 | --fp16]
python -m export bert --from-hf DIR --name NAME [--version N] [--quantize int8 | --fp16]

``--quantize int8`` (for CPU) and ``--fp16`` (for CUDA) publish graphs made from the validated fp32
export, checked against it by cosine on the generated corpus's held-out sentences.

torch and transformers are imported only when a command runs, so building the parser stays cheap.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from export.checkpoints import training_checkpoint_dir
from export.console import console, report_export
from export.corpus import Corpus, load_or_generate
from export.requests import Commands, Target, TargetOptions, Workspace, add_workspace_options
from export.spec import ExportSpec
from modelrepo import read_spec

if TYPE_CHECKING:
    from export.bert.precision import PrecisionPlan

TARGET = TargetOptions("bert", "saves the PyTorch checkpoint")
Precision = Literal["fp32", "fp16", "int8"]


@dataclass(frozen=True)
class BertTrainRequest:
    """Train the default small BERT on the generated corpus, then import it."""

    workspace: Workspace
    target: Target
    precision: Precision = "fp32"


@dataclass(frozen=True)
class BertImportRequest:
    """Import a local Hugging Face BERT checkpoint directory."""

    workspace: Workspace
    target: Target
    checkpoint: Path
    precision: Precision = "fp32"


BertRequest = BertTrainRequest | BertImportRequest


def add_command(commands: Commands) -> None:
    parser = commands.add_parser(
        "bert",
        allow_abbrev=False,
        help="train a BERT masked LM, or import a BERT-family checkpoint (BERT, RoBERTa, XLM-R, "
        "DistilBERT, ELECTRA; plain or a sentence-transformers folder), and export it",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--train", action="store_true", help="train the default small BERT")
    source.add_argument(
        "--from-hf",
        type=Path,
        metavar="DIR",
        help="a local Hugging Face checkpoint of the BERT family, or a sentence-transformers "
        "folder (served with its pooling, Dense layers, normalisation, prompts and length)",
    )
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument(
        "--quantize",
        choices=["int8"],
        help="publish dynamically quantized graphs (int8 weights; faster on CPU)",
    )
    precision.add_argument(
        "--fp16", action="store_true", help="publish half-precision graphs (for CUDA)"
    )
    TARGET.add(parser)
    add_workspace_options(parser)
    parser.set_defaults(build=request_from, func=run)


def request_from(args: argparse.Namespace, workspace: Workspace) -> BertRequest:
    target = TARGET.read(args)
    precision: Precision = "fp16" if args.fp16 else "int8" if args.quantize == "int8" else "fp32"
    if args.train:
        return BertTrainRequest(workspace, target, precision)
    return BertImportRequest(workspace, target, args.from_hf, precision)


def run(request: BertRequest) -> Path:
    started = time.perf_counter()
    if isinstance(request, BertTrainRequest):
        return report_export(train(request), started)
    return report_export(import_checkpoint(request), started)


def default_training(workspace: Workspace, name: str) -> BertTrainRequest:
    return BertTrainRequest(workspace, Target(name))


def train(request: BertTrainRequest) -> Path:
    """Train the recipe (``--steps`` overrides its steps), save the checkpoint, import it."""
    from export.bert.exporter import import_bert
    from export.bert.train import BertTrainingConfig, train_bert

    workspace, target = request.workspace, request.target
    corpus = load_or_generate(workspace.corpus_dir, workspace.corpus_config)
    config = BertTrainingConfig(seed=workspace.seed, steps=target.steps or BertTrainingConfig.steps)
    checkpoint = training_checkpoint_dir(target)
    started = time.perf_counter()
    train_bert(
        corpus.train.sentences,
        config,
        checkpoint,
        show_progress=workspace.show_progress,
        progress_interval_s=workspace.progress_interval_s,
    )
    console.print(f"trained in {time.perf_counter() - started:.0f} s → {checkpoint}")
    plan = precision_plan(request.precision, corpus)
    return import_bert(checkpoint, workspace.models_dir, target.name, target.version, plan)


def import_checkpoint(request: BertImportRequest) -> Path:
    from export.bert.exporter import import_bert

    workspace, target = request.workspace, request.target
    plan = None
    if request.precision != "fp32":
        plan = precision_plan(
            request.precision, load_or_generate(workspace.corpus_dir, workspace.corpus_config)
        )
    return import_bert(request.checkpoint, workspace.models_dir, target.name, target.version, plan)


def precision_plan(precision: Precision, corpus: Corpus) -> PrecisionPlan | None:
    """What a reduced-precision export is checked on: the corpus's first held-out sentences."""
    from export.bert.precision import DEFAULT_TEXTS, PrecisionPlan

    if precision == "fp32":
        return None
    texts = tuple(corpus.heldout.sentences[: DEFAULT_TEXTS[precision]])
    return PrecisionPlan(precision, texts)


def evaluate(directory: Path, corpus: Corpus) -> dict[str, object]:
    """Fill-mask accuracy (when the model has the head) and the polysemy gap, served and layer 0."""
    from export.bert.inference import OnnxBert
    from export.evaluate import fill_mask_accuracy, polysemy_gap

    spec = read_spec(directory)
    bert = OnnxBert(directory)
    results: dict[str, object] = {}
    if spec.supports("fill_mask"):
        report = fill_mask_accuracy(
            corpus, bert.mask_logits, bert.single_token_id, spec.special_tokens["mask"]
        )
        results["fill_mask"] = report.to_dict()
    results["polysemy"] = polysemy_gap(corpus.heldout, bert.word_vectors).to_dict()
    results["polysemy_layer0"] = polysemy_gap(
        corpus.heldout, lambda s, p: bert.word_vectors(s, p, layer=0)
    ).to_dict()
    return results


def export_spec_factory() -> Callable[..., ExportSpec]:
    from export.bert.graphs import bert_export_spec

    return bert_export_spec
