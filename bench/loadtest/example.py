"""``python -m bench.loadtest.example``: the example report in ``docs/loadtest-example/``, again.

Training the default models takes minutes; the example needs none of it. ``bert-untrained`` is
the default BERT's architecture and tokenizer (``BertTrainingConfig``: 4 layers, hidden 128,
4 heads, a 6000-word WordPiece of the default corpus, 128 positions, MLM head) with random
weights, so a request costs what it costs the trained model, only its answers mean nothing.
MostSimilar runs on the default word2vec (trained, about 30 s, when ``models/`` lacks it).
Arguments after ``--`` go to ``bench.loadtest`` as well (e.g. ``-- --step-time 10s``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from bench.loadtest.run import main as loadtest
from modelrepo import ModelRepository

MODELS = Path("build/loadtest-example/models")
OUT = Path("build/loadtest/example")
DOCS = Path("docs/loadtest-example")
MODEL = "bert-untrained"
NOTE = (
    f"`{MODEL}` is the default BERT's architecture and tokenizer (4 layers, hidden 128, "
    "6000-word WordPiece of the default corpus, 128 positions, MLM head) with random weights: "
    "each request costs what it costs the trained `bert`; `word2vec` is the trained default. "
    "Made with `python -m bench.loadtest.example`."
)
ARGS = [
    "--model", MODEL, "--similar-model", "word2vec",
    "--sweep", "1,4,16,64", "--step-time", "30s",
    "--max-p99-ms", "2000", "--max-error-ratio", "0.001",
]  # fmt: skip


def build_untrained_bert(models_dir: Path) -> None:
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from export.bert.exporter import import_bert
    from export.bert.tokenizer import train_wordpiece
    from export.bert.train import BertTrainingConfig, save_checkpoint
    from export.corpus import CorpusConfig, load_or_generate

    config = BertTrainingConfig()
    corpus = load_or_generate(Path("build/corpus"), CorpusConfig())
    info = train_wordpiece(corpus.train.sentences, config.vocab_size)
    torch.manual_seed(config.seed)
    model = BertForMaskedLM(
        BertConfig(
            vocab_size=info.tokenizer.get_vocab_size(),
            hidden_size=config.hidden_size,
            num_hidden_layers=config.num_layers,
            num_attention_heads=config.num_heads,
            intermediate_size=config.intermediate_size,
            max_position_embeddings=config.max_position_embeddings,
            pad_token_id=info.special_token_ids["pad"],
            tie_word_embeddings=config.tie_word_embeddings,
        )
    ).eval()
    checkpoint = models_dir.parent / "checkpoints" / MODEL
    save_checkpoint(model, info, checkpoint, max_length=config.max_position_embeddings)
    import_bert(checkpoint, models_dir, MODEL)


def ensure_models(models_dir: Path) -> None:
    repository = ModelRepository(models_dir)
    if repository.newest(MODEL) is None:
        build_untrained_bert(models_dir)
    if repository.newest("word2vec") is None:
        default = Path("models/word2vec")
        if ModelRepository(Path("models")).newest("word2vec") is not None:
            (models_dir / "word2vec").symlink_to(default.resolve(), target_is_directory=True)
        else:
            command = ["word2vec", "--train", "--no-progress", "--models-dir", str(models_dir)]
            subprocess.run([sys.executable, "-m", "export", *command], check=True)


def main(argv: list[str] | None = None) -> int:
    extra = list(sys.argv[1:] if argv is None else argv)
    extra = extra[1:] if extra[:1] == ["--"] else extra
    MODELS.mkdir(parents=True, exist_ok=True)
    ensure_models(MODELS)
    if OUT.exists():
        shutil.rmtree(OUT)
    code = loadtest(["--models-dir", str(MODELS), *ARGS, "--out", str(OUT), "--note", NOTE, *extra])
    if (OUT / "summary.md").exists():
        DOCS.mkdir(parents=True, exist_ok=True)
        for old in DOCS.glob("*.png"):
            old.unlink()
        for path in [OUT / "summary.md", *sorted(OUT.glob("*.png"))]:
            shutil.copy2(path, DOCS / path.name)
        print(f"example: {DOCS}/summary.md and its plots (exit status {code})")
    return code


if __name__ == "__main__":
    sys.exit(main())
