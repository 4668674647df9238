"""Run an exported BERT version as the server does, for evaluation of what is actually served.

The vectors and logits come from the served ``BertRuntime`` itself: its tokenization, padding,
layer choice and pooling, so an evaluation figure is a figure of the server's answers. A
sentence is the server's text of its words joined by spaces; a word's vector is the mean of
its word pieces (the pieces are found from the served tokenizer's character offsets).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from modelrepo import load_checked
from service.runtime import EmbedOptions, Pooling
from service.runtime.bert import BertRuntime
from service.runtime.session import CPU_FP32


def word_spans(words: Sequence[str]) -> list[tuple[int, int]]:
    """Character (start, end) of each word in ``" ".join(words)``."""
    spans = []
    start = 0
    for word in words:
        spans.append((start, start + len(word)))
        start += len(word) + 1
    return spans


def word_pieces(offsets: Sequence[tuple[int, int]], span: tuple[int, int]) -> list[int]:
    """The token rows whose characters lie in ``span`` (special tokens have none)."""
    first, last = span
    return [
        row for row, (start, end) in enumerate(offsets) if end > start and first <= start < last
    ]


class OnnxBert:
    """Word-aligned contextual vectors and fill-mask logits from a repository version."""

    def __init__(self, directory: Path) -> None:
        self.spec = load_checked(directory)
        self.runtime = BertRuntime(directory, self.spec, CPU_FP32)

    def word_vectors(
        self, sentences: Sequence[Sequence[str]], positions: Sequence[int], layer: int | None = None
    ) -> np.ndarray:
        """The vector of word ``positions[i]`` of sentence i: mean of its word pieces (summed
        in float64), from the served per-token vectors of the layer."""
        layer = self.spec.num_layers if layer is None else layer
        texts = [" ".join(words) for words in sentences]
        items = self.runtime.prepare_embed(texts, EmbedOptions(Pooling.NONE, layers=(layer,)))
        embedded = self.runtime.embed_batch(items)
        tokenized = self.runtime.tokenize(texts)
        vectors = []
        for words, position, pooled, encoding in zip(
            sentences, positions, embedded, tokenized, strict=True
        ):
            pieces = word_pieces(encoding.offsets, word_spans(words)[position])
            if not pieces:
                raise ValueError(f"word {position} of {list(words)} has no word piece")
            tokens = pooled.result.vectors[pieces]
            vectors.append(np.mean(tokens, axis=0, dtype=np.float64).astype(np.float32))
        return np.stack(vectors)

    def mask_logits(self, sentences: Sequence[Sequence[str]]) -> np.ndarray:
        """Logits at the single mask token of each sentence: (sentences, vocab)."""
        if self.runtime.fill_mask is None:
            raise ValueError(f"{self.spec.name} has no masked-LM head")
        items = self.runtime.prepare_fill_mask([" ".join(words) for words in sentences], top_k=1)
        if any(len(item.mask_positions) != 1 for item in items):
            raise ValueError("every sentence needs exactly one mask token")
        return np.concatenate(self.runtime.run_fill_mask(items))

    def single_token_id(self, word: str) -> int | None:
        """The id of ``word`` if it is one word piece, else None."""
        tokenizer = self.runtime.tokenizer
        ids = tokenizer.encode([word], is_pretokenized=True, add_special_tokens=False).ids
        return ids[0] if len(ids) == 1 else None
