"""Import a local Hugging Face checkpoint of the BERT family (BERT, RoBERTa, XLM-R, DistilBERT,
ELECTRA), plain or a sentence-transformers folder, into the model repository as validated ONNX.

A sentence-transformers folder is served as its authors' pipeline says (``sentence``): its
pooling, Dense layers (weights written beside the graphs), normalisation, prompts, lower-casing
and maximum length are recorded in ``spec.json``.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForMaskedLM, PretrainedConfig, PreTrainedModel
from transformers.utils import logging as hf_logging

from export.bert.family import FamilyMember, HeadAtMasks, family_member
from export.bert.graphs import (
    MASK_POSITIONS,
    BertEncoderGraph,
    BertFillMaskGraph,
    bert_export_spec,
)
from export.bert.precision import PrecisionPlan, check_precision, convert_graph
from export.bert.sentence import WEIGHT_FILES, SentencePipeline, read_sentence_pipeline
from export.bert.tokenizer import TokenizerInfo, load_checkpoint_tokenizer
from export.optimize import optimize_transformer
from export.publish import publish_version
from export.spec import ExportSpec, GraphExportSpec
from export.validate import Arrays, raise_unless_passed, validate_graph
from modelrepo import (
    DenseLayer,
    GraphValidation,
    ModelSpec,
    SentenceHead,
    ValidationReport,
    VariantReport,
    sha256_of_files,
)
from modelrepo.validation import OPTIMIZED, UNOPTIMIZED

log = logging.getLogger(__name__)


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report: a missing MLM head is expected, and we report it."""
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)


@dataclass
class LoadedBert:
    """A checkpoint in PyTorch, ready to export: encoder, optional MLM head, tokenizer, and the
    sentence-transformers pipeline when the folder has one."""

    config: PretrainedConfig
    member: FamilyMember
    encoder: PreTrainedModel
    mlm: PreTrainedModel | None
    tokenizer: TokenizerInfo
    source_checksum: str
    sentence: SentencePipeline | None = None

    @property
    def max_sequence_length(self) -> int:
        """Tokens per text: the sentence-transformers setting where the folder has one (it
        overrides the tokenizer's), else the tokenizer's, within the position table."""
        limits = [self.member.max_positions(self.config)]
        if self.sentence is not None and self.sentence.max_seq_length is not None:
            limits.append(self.sentence.max_seq_length)
        elif self.tokenizer.model_max_length is not None:
            limits.append(self.tokenizer.model_max_length)
        return min(limits)


def load_checkpoint(directory: Path) -> LoadedBert:
    """Load a checkpoint directory of the BERT family, or a sentence-transformers folder around
    one; a checkpoint without masked-LM weights gets no fill-mask."""
    sentence = read_sentence_pipeline(directory)
    checkpoint = sentence.transformer_dir if sentence is not None else directory
    if not (checkpoint / "config.json").is_file():
        raise FileNotFoundError(f"{checkpoint}: no config.json; is this a Hugging Face checkpoint?")
    config = AutoConfig.from_pretrained(checkpoint)
    member = family_member(str(config.model_type), str(checkpoint))
    weights = [checkpoint / name for name in WEIGHT_FILES if (checkpoint / name).is_file()]
    if not weights:
        raise FileNotFoundError(f"{checkpoint}: no {' or '.join(WEIGHT_FILES)}")
    with warnings.catch_warnings(), quiet_transformers():
        warnings.simplefilter("ignore")
        mlm, info = cast(
            tuple[PreTrainedModel, dict[str, list[str]]],
            AutoModelForMaskedLM.from_pretrained(
                checkpoint, attn_implementation="eager", output_loading_info=True
            ),
        )
    missing = list(info["missing_keys"])
    head_missing = [key for key in missing if key.startswith(member.head_prefixes)]
    encoder_missing = [key for key in missing if key not in head_missing]
    if encoder_missing:
        raise ValueError(
            f"{checkpoint}: the checkpoint lacks encoder weights {encoder_missing[:5]}"
        )
    mlm.eval()
    encoder = cast(PreTrainedModel, getattr(mlm, mlm.base_model_prefix))
    files = [checkpoint / "config.json", *weights]
    if sentence is not None:  # the pipeline's configuration and Dense weights count too
        files += sentence.files
    options = sentence.tokenizer_options if sentence is not None else {}
    lowercase = sentence is not None and sentence.lowercase
    return LoadedBert(
        config=config,
        member=member,
        encoder=encoder,
        mlm=None if head_missing else mlm,
        tokenizer=load_checkpoint_tokenizer(checkpoint, options, lowercase),
        source_checksum=sha256_of_files(list(dict.fromkeys(files))),
        sentence=sentence,
    )


class BertInputs:
    """Seeded random token batches with padding, for export examples and validation: ordinary
    tokens between the model's own opening and closing tokens, and token types where the
    encoder takes them."""

    def __init__(self, loaded: LoadedBert, seed: int = 0) -> None:
        self.special = loaded.tokenizer.special_token_ids
        specials = set(self.special.values()) | {
            token_id
            for token_id, token in loaded.tokenizer.tokenizer.get_added_tokens_decoder().items()
            if token.special
        }
        vocab_size = min(loaded.config.vocab_size, loaded.tokenizer.tokenizer.get_vocab_size())
        self.ordinary = np.setdiff1d(np.arange(vocab_size), np.fromiter(specials, np.int64))
        self.token_types = loaded.member.token_types
        self.seed = seed

    def __call__(self, batch: int, sequence: int) -> Arrays:
        rng = np.random.default_rng([self.seed, batch, sequence])
        ids = rng.choice(self.ordinary, size=(batch, sequence)).astype(np.int64)
        mask = np.zeros((batch, sequence), dtype=np.int64)
        lengths = [sequence] + [
            int(rng.integers(min(3, sequence), sequence + 1)) for _ in range(batch - 1)
        ]
        for row, length in enumerate(lengths):
            ids[row, 0] = self.special["cls"]
            ids[row, length - 1] = self.special["sep"]
            ids[row, length:] = self.special["pad"]
            mask[row, :length] = 1
        arrays = {"input_ids": ids, "attention_mask": mask}
        if self.token_types:
            arrays["token_type_ids"] = np.zeros_like(ids)
        return arrays

    def with_masks(self, batch: int, sequence: int) -> Arrays:
        arrays = self(batch, sequence)
        rng = np.random.default_rng([self.seed + 1, batch, sequence])
        positions = []
        for row in range(batch):
            length = int(arrays["attention_mask"][row].sum())
            if length < 3:
                continue
            count = 1 if length < 6 else 2
            for column in sorted(rng.choice(np.arange(1, length - 1), size=count, replace=False)):
                positions.append((row, int(column)))
                arrays["input_ids"][row, column] = self.special["mask"]
        arrays["mask_positions"] = np.asarray(positions, dtype=np.int64).reshape(-1, 2)
        return arrays


def _torch_run(module: torch.nn.Module, names: list[str], inputs: Arrays) -> Arrays:
    with torch.no_grad():
        outputs = module(*(torch.from_numpy(value) for value in inputs.values()))
    if isinstance(outputs, torch.Tensor):
        outputs = (outputs,)
    return {name: output.numpy() for name, output in zip(names, outputs, strict=True)}


def _export(
    module: torch.nn.Module, graph: GraphExportSpec, example: Arrays, path: Path, opset: int
) -> None:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            tuple(torch.from_numpy(example[name]) for name in graph.input_names),
            str(path),
            input_names=graph.input_names,
            output_names=graph.output_names,
            dynamic_axes=graph.dynamic_axes(),
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
        )


def _top5_identical(_: Arrays, actual: Arrays, expected: Arrays) -> list[tuple[str, bool, str]]:
    got = np.argsort(-actual["logits"], axis=-1)[:, :5]
    want = np.argsort(-expected["logits"], axis=-1)[:, :5]
    same = bool(np.array_equal(got, want))
    return [("top5_identical", same, f"{int((got == want).all(axis=1).sum())}/{len(got)} masks")]


def _valid_tokens(name: str, inputs: Arrays) -> np.ndarray | None:
    """Hidden states are compared at real tokens only (padded positions carry no meaning)."""
    if name.startswith("hidden_state_"):
        mask: np.ndarray = inputs["attention_mask"].astype(bool)
        return mask
    return None


def export_bert(
    loaded: LoadedBert,
    models_dir: Path,
    name: str,
    version: int | None,
    source: str,
    precision: PrecisionPlan | None = None,
) -> Path:
    """Export, optimize where parity holds, validate and publish ``models/<name>/<version>``.

    With a ``precision`` plan the fp32 graphs are validated as always, then converted (int8 or
    fp16) and published only if the converted graphs pass the plan's cosine check.
    """
    config = loaded.config
    spec = bert_export_spec(
        config.num_hidden_layers,
        config.hidden_size,
        config.vocab_size,
        loaded.mlm is not None,
        token_types=loaded.member.token_types,
    )
    inputs = BertInputs(loaded)
    shapes = [(b, min(s, loaded.max_sequence_length)) for b, s in spec.validation_shapes]
    modules: dict[str, tuple[torch.nn.Module, Any]] = {
        "encoder": (BertEncoderGraph(loaded.encoder).eval(), inputs)
    }
    if loaded.mlm is not None:
        head = HeadAtMasks(loaded.mlm, loaded.member)
        fill_mask = BertFillMaskGraph(loaded.encoder, head).eval()
        modules["fill_mask"] = (fill_mask, inputs.with_masks)

    def build(staging: Path, number: int) -> tuple[ModelSpec, ValidationReport]:
        # a reduced version keeps its fp32 graphs aside only until they have been compared
        fp32_dir = staging if precision is None else staging / "fp32"
        fp32_dir.mkdir(exist_ok=True)
        reports: dict[str, GraphValidation] = {}
        for graph in spec.graphs:
            module, make_inputs = modules[graph.role]
            reports[graph.role] = _export_graph(
                module, graph, make_inputs, shapes, fp32_dir, spec, config
            )
        model_spec = _model_spec(loaded, spec, name, number, source)
        for directory in {staging, fp32_dir}:
            loaded.tokenizer.tokenizer.save(str(directory / "tokenizer.json"))
            _write_dense(loaded, model_spec.sentence, directory)
        if precision is not None:
            reports = _reduce(fp32_dir, model_spec, staging, reports, precision)
            model_spec = model_spec.model_copy(update={"precision": precision.precision})
        return model_spec, ValidationReport(passed=True, tolerance=spec.tolerance, graphs=reports)

    return publish_version(models_dir, name, version, build)


def _export_graph(
    module: torch.nn.Module,
    graph: GraphExportSpec,
    make_inputs: Any,
    shapes: list[tuple[int, int]],
    staging: Path,
    spec: ExportSpec,
    config: PretrainedConfig,
) -> GraphValidation:
    """Export one graph, validate it, then keep ORT's optimized form only if it keeps parity."""
    plain = staging / f"{graph.role}.unoptimized.onnx"
    _export(module, graph, make_inputs(2, 16), plain, spec.opset)

    def reference(arrays: Arrays) -> Arrays:
        return _torch_run(module, graph.output_names, {n: arrays[n] for n in graph.input_names})

    extra = _top5_identical if graph.role == "fill_mask" else None

    def check(path: Path) -> VariantReport:
        return validate_graph(
            path, graph, make_inputs, reference, spec.tolerance, shapes, _valid_tokens, extra
        )

    unoptimized = check(plain)
    raise_unless_passed(unoptimized)
    optimized_path = staging / f"{graph.role}.optimized.onnx"
    optimized: VariantReport | None = None
    try:
        optimize_transformer(plain, optimized_path, config.num_attention_heads, config.hidden_size)
        optimized = check(optimized_path)
    except Exception as error:  # noqa: BLE001 - the optimizer is best effort; parity decides
        log.warning("ONNX Runtime optimizer failed on %s: %s", graph.role, error)
    chosen = optimized_path if optimized is not None and optimized.passed else plain
    chosen.rename(staging / graph.file)
    for leftover in (plain, optimized_path):
        leftover.unlink(missing_ok=True)
    variants = {UNOPTIMIZED: unoptimized}
    if optimized is not None:
        variants[OPTIMIZED] = optimized
    served = optimized if optimized is not None and chosen == optimized_path else unoptimized
    return GraphValidation(
        file=graph.file,
        passed=True,
        tolerance=spec.tolerance,
        optimized=served is optimized,
        max_abs_diff=served.max_abs_diff,
        variants=variants,
    )


def _reduce(
    fp32_dir: Path,
    fp32_spec: ModelSpec,
    staging: Path,
    reports: dict[str, GraphValidation],
    plan: PrecisionPlan,
) -> dict[str, GraphValidation]:
    """Convert every validated fp32 graph, check the result against them, drop the fp32 ones."""
    for graph in fp32_spec.graphs.values():
        convert_graph(fp32_dir / graph.file, staging / graph.file, plan.precision)
    checks = check_precision(fp32_dir, fp32_spec, staging, plan)
    shutil.rmtree(fp32_dir)
    return {
        role: report.model_copy(update={"precision": checks[role]})
        for role, report in reports.items()
    }


def _sentence_head(loaded: LoadedBert) -> SentenceHead:
    """The folder's sentence-transformers pipeline beyond pooling, as served; none for a plain
    checkpoint."""
    pipeline = loaded.sentence
    if pipeline is None:
        return SentenceHead()
    layers = tuple(
        DenseLayer(
            file=f"dense_{index}.npz",
            in_features=dense.weight.shape[1],
            out_features=dense.weight.shape[0],
            activation=dense.activation,
        )
        for index, dense in enumerate(pipeline.dense)
    )
    return SentenceHead(
        normalize=pipeline.normalize,
        dense=layers,
        prompts=pipeline.prompts,
        default_prompt_name=pipeline.default_prompt_name,
        include_prompt=pipeline.include_prompt,
        similarity=pipeline.similarity,
    )


def _write_dense(loaded: LoadedBert, head: SentenceHead, directory: Path) -> None:
    """Each Dense layer's weights beside the graphs, under the name the spec gives it."""
    if loaded.sentence is None:
        return
    for layer, dense in zip(head.dense, loaded.sentence.dense, strict=True):
        np.savez(
            directory / layer.file,
            weight=dense.weight.astype(np.float32),
            bias=dense.bias.astype(np.float32),
        )


def _model_spec(
    loaded: LoadedBert, spec: ExportSpec, name: str, version: int, source: str
) -> ModelSpec:
    config = loaded.config
    capabilities: tuple[Any, ...] = ("embed", "fill_mask") if loaded.mlm is not None else ("embed",)
    pooling = loaded.sentence.pooling if loaded.sentence is not None else "mean"
    return ModelSpec(
        name=name,
        version=version,
        architecture="bert",
        capabilities=capabilities,
        graphs={graph.role: graph.to_graph_spec() for graph in spec.graphs},
        hidden_size=config.hidden_size,
        num_layers=config.num_hidden_layers,
        default_layers=(config.num_hidden_layers,),
        default_pooling=cast(Any, pooling),
        max_sequence_length=loaded.max_sequence_length,
        special_tokens=loaded.tokenizer.special_tokens,
        special_token_ids=loaded.tokenizer.special_token_ids,
        tokenizer_files=("tokenizer.json",),
        opset=spec.opset,
        tolerance=spec.tolerance,
        source=source,
        source_checksum=loaded.source_checksum,
        sentence=_sentence_head(loaded),
        extra={
            "model_type": loaded.member.model_type,
            "vocab_size": config.vocab_size,
            "num_attention_heads": config.num_attention_heads,
            "mask_positions_input": MASK_POSITIONS.name,
        },
    )


def import_bert(
    checkpoint: Path,
    models_dir: Path,
    name: str,
    version: int | None = None,
    precision: PrecisionPlan | None = None,
) -> Path:
    """``python -m export bert --from-hf DIR``: load, export, validate, publish."""
    loaded = load_checkpoint(checkpoint)
    source = f"hf:{checkpoint.resolve()}"
    return export_bert(loaded, models_dir, name, version, source, precision)
