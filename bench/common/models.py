"""The models the benchmark measures: the default BERT, a bert-base-shaped and a 4 × 256 random
one, a sentence-transformers folder shaped like all-MiniLM-L6-v2, and the default word2vec (the
metrics section's cheapest request)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from modelrepo import ModelRepository

if TYPE_CHECKING:
    from transformers import BertConfig

BERT_BASE = "bert-base-random"
BERT_SMALL = "bert-4x256-random"
SENTENCE_MINILM = "minilm-sentence-random"
WORD2VEC = "word2vec"


def build_bert_base(models_dir: Path) -> None:
    """12 layers, hidden 768, 12 heads, 30522-word embedding table; our corpus's tokenizer."""
    from transformers import BertConfig

    _build_random_bert(models_dir, BERT_BASE, BertConfig(vocab_size=30522))


def build_bert_small(models_dir: Path) -> None:
    """4 layers, hidden 256, 4 heads: where the per-request cost is as large as the engine's."""
    from transformers import BertConfig

    config = BertConfig(
        num_hidden_layers=4, hidden_size=256, num_attention_heads=4, intermediate_size=1024
    )
    _build_random_bert(models_dir, BERT_SMALL, config)


def _build_random_bert(models_dir: Path, name: str, config: BertConfig) -> None:
    import torch
    from transformers import BertForMaskedLM

    from export.bert.exporter import import_bert
    from export.bert.tokenizer import train_wordpiece
    from export.bert.train import save_checkpoint
    from export.corpus import CorpusConfig, load_or_generate

    corpus = load_or_generate(Path("build/corpus"), CorpusConfig())
    info = train_wordpiece(corpus.train.sentences, vocab_size=8000)
    torch.manual_seed(0)
    model = BertForMaskedLM(config).eval()
    checkpoint = models_dir.parent / "bench-checkpoints" / name
    save_checkpoint(model, info, checkpoint, max_length=512)
    import_bert(checkpoint, models_dir, name)


def build_sentence_minilm(models_dir: Path) -> None:
    """all-MiniLM-L6-v2's shape with random weights: a 6-layer, 384-wide BERT (12 heads, 30522
    embeddings) in a sentence-transformers folder (mean pooling, Normalize, 256 tokens), saved
    by sentence-transformers itself and imported as any user's folder is."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel

    from export.bert.exporter import import_bert
    from export.bert.tokenizer import train_wordpiece
    from export.bert.train import save_checkpoint
    from export.corpus import CorpusConfig, load_or_generate

    corpus = load_or_generate(Path("build/corpus"), CorpusConfig())
    info = train_wordpiece(corpus.train.sentences, vocab_size=8000)
    config = BertConfig(
        hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536
    )
    torch.manual_seed(0)
    root = models_dir.parent / "bench-checkpoints" / SENTENCE_MINILM
    save_checkpoint(BertModel(config).eval(), info, root / "transformer", max_length=512)
    transformer = Transformer(str(root / "transformer"), max_seq_length=256)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    folder = root / "sentence-transformers"
    SentenceTransformer(modules=[transformer, pooling, Normalize()], device="cpu").save(str(folder))
    import_bert(folder, models_dir, SENTENCE_MINILM)


def newest_directory(root: Path, name: str) -> Path:
    """The directory of the newest version of ``name`` in the repository at ``root``."""
    repository = ModelRepository(root)
    return repository.path(name, repository.newest(name) or 1)


RANDOM_BERTS = {
    BERT_BASE: build_bert_base,
    BERT_SMALL: build_bert_small,
    SENTENCE_MINILM: build_sentence_minilm,
}


def ensure_precision(
    name: str, precision: Literal["fp16", "int8"], fp32_root: Path, bench_models_dir: Path
) -> tuple[str, Path]:
    """``<name>-<precision>`` (``bert-base-random-int8``: its weights quantized; ``-fp16``:
    in half precision) and its repository root, made from the checkpoint the newest fp32
    version of ``name`` was imported from (its spec's ``hf:`` source); built if missing."""
    from export.bert.exporter import import_bert
    from export.bert.precision import DEFAULT_TEXTS, PrecisionPlan
    from export.corpus import CorpusConfig, load_or_generate
    from modelrepo import read_spec

    variant = f"{name}-{precision}"
    if ModelRepository(bench_models_dir).newest(variant) is None:
        spec = read_spec(newest_directory(fp32_root, name))
        kind, _, checkpoint = spec.source.partition(":")
        if kind != "hf" or not Path(checkpoint).is_dir():
            raise FileNotFoundError(
                f"{name}: no checkpoint to convert to {precision} (source {spec.source}); "
                "rebuild it first"
            )
        heldout = load_or_generate(Path("build/corpus"), CorpusConfig()).heldout.sentences
        plan = PrecisionPlan(precision, tuple(heldout[: DEFAULT_TEXTS[precision]]))
        import_bert(Path(checkpoint), bench_models_dir, variant, precision=plan)
    return variant, bench_models_dir


def ensure_models(names: list[str], models_dir: Path, bench_models_dir: Path) -> dict[str, Path]:
    """Build what is missing; return the repository root of each model."""
    locations: dict[str, Path] = {}
    for name in names:
        if name in RANDOM_BERTS:
            if ModelRepository(bench_models_dir).newest(name) is None:
                RANDOM_BERTS[name](bench_models_dir)
            locations[name] = bench_models_dir
        elif name == WORD2VEC:
            # Only word2vec (~30 s): ``export defaults`` would also train BERT (minutes).
            if ModelRepository(models_dir).newest(name) is None:
                command = ["word2vec", "--train", "--no-progress", "--models-dir", str(models_dir)]
                subprocess.run([sys.executable, "-m", "export", *command], check=True)
            locations[name] = models_dir
        else:
            if ModelRepository(models_dir).newest(name) is None:
                subprocess.run(
                    [sys.executable, "-m", "export", "defaults", "--models-dir", str(models_dir)],
                    check=True,
                )
            locations[name] = models_dir
    return locations
