"""The models the benchmark measures: the default BERT, a bert-base-shaped random one, and the
default word2vec (the metrics section's cheapest request)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from modelrepo import ModelRepository

BERT_BASE = "bert-base-random"
WORD2VEC = "word2vec"


def build_bert_base(models_dir: Path) -> None:
    """12 layers, hidden 768, 12 heads, 30522-word embedding table; our corpus's tokenizer."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from export.bert.exporter import import_bert
    from export.bert.tokenizer import train_wordpiece
    from export.bert.train import save_checkpoint
    from export.corpus import CorpusConfig, load_or_generate

    corpus = load_or_generate(Path("build/corpus"), CorpusConfig())
    info = train_wordpiece(corpus.train.sentences, vocab_size=8000)
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=30522)).eval()
    checkpoint = models_dir.parent / "bench-checkpoints" / BERT_BASE
    save_checkpoint(model, info, checkpoint, max_length=512)
    import_bert(checkpoint, models_dir, BERT_BASE)


def ensure_models(names: list[str], models_dir: Path, bench_models_dir: Path) -> dict[str, Path]:
    """Build what is missing; return the repository root of each model."""
    locations: dict[str, Path] = {}
    for name in names:
        if name == BERT_BASE:
            if ModelRepository(bench_models_dir).newest(name) is None:
                build_bert_base(bench_models_dir)
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
