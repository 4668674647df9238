"""The texts of every load: the default corpus's held-out sentences, one per line.

Held out, so no model was trained on them; the same file for the bench and the load test, so
their figures come from the same sentences.
"""

from __future__ import annotations

from pathlib import Path

CORPUS_DIR = Path("build/corpus")


def write_heldout(path: Path, corpus_dir: Path = CORPUS_DIR) -> Path:
    """The default corpus' held-out sentences, one per line (the corpus is generated once)."""
    from export.corpus import CorpusConfig, load_or_generate

    corpus = load_or_generate(corpus_dir, CorpusConfig())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(corpus.heldout.sentences) + "\n", encoding="utf-8")
    return path


def read_texts(path: Path) -> list[str]:
    """One text per non-blank line, without the white space around it."""
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
