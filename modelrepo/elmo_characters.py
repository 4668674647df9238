"""ELMo character ids: the input encoding of bilm-tf and AllenNLP (numpy only, no torch).

A token is its UTF-8 bytes between begin-of-word and end-of-word markers, padded with the
padding character to ``max_chars`` slots; at most ``max_chars - 2`` bytes are kept (a multibyte
character may be cut). ``"<S>"`` and ``"</S>"`` are the sentence markers. Every id is shifted
by +1 so that 0 means "no token": a padded position of a batch is a row of zeros.

This module is part of an ELMo model's input contract (like a BERT model's ``tokenizer.json``):
the exporter validates the graph on ids built here and the server encodes requests with it, so
both sides encode identically. ``tokenize`` is the whitespace rule the reference fixtures were
produced with. It imports numpy only (no torch, onnx or onnxruntime).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

MAX_CHARACTERS_PER_TOKEN = 50

# Raw ids before the +1 shift (bytes are 0..255).
BEGIN_OF_SENTENCE_CHAR = 256
END_OF_SENTENCE_CHAR = 257
BEGIN_OF_WORD_CHAR = 258
END_OF_WORD_CHAR = 259
PADDING_CHAR = 260

BOS_TOKEN = "<S>"
EOS_TOKEN = "</S>"

CharIds = npt.NDArray[np.int64]


def tokenize(text: str) -> list[str]:
    """Split on runs of Unicode whitespace (``str.split()``), dropping empty tokens.

    This is the rule the reference sentences were tokenized with; ELMo has no subword step.
    """
    return text.split()


def token_char_ids(token: str, max_chars: int = MAX_CHARACTERS_PER_TOKEN) -> CharIds:
    """Shifted character ids of one token, shape ``(max_chars,)``.

    ``"<S>"``/``"</S>"`` become the sentence markers; bytes that cannot be encoded are dropped.
    """
    if max_chars < 3:
        raise ValueError(f"max_chars must be at least 3, got {max_chars}")
    if token == BOS_TOKEN:
        body = [BEGIN_OF_SENTENCE_CHAR]
    elif token == EOS_TOKEN:
        body = [END_OF_SENTENCE_CHAR]
    else:
        body = list(token.encode("utf-8", "ignore")[: max_chars - 2])
    raw = np.full(max_chars, PADDING_CHAR, dtype=np.int64)
    raw[0] = BEGIN_OF_WORD_CHAR
    raw[1 : len(body) + 1] = body
    raw[len(body) + 1] = END_OF_WORD_CHAR
    return raw + 1


def char_ids(tokens: Sequence[str], max_chars: int = MAX_CHARACTERS_PER_TOKEN) -> CharIds:
    """Ids of ``[<S>, *tokens, </S>]``, shape ``(T + 2, max_chars)``."""
    if isinstance(tokens, str):
        raise TypeError("char_ids takes a sequence of tokens, not a string; use tokenize() first")
    with_markers = [BOS_TOKEN, *tokens, EOS_TOKEN]
    return np.stack([token_char_ids(token, max_chars) for token in with_markers])


def batch_char_ids(
    sentences: Sequence[Sequence[str]], max_chars: int = MAX_CHARACTERS_PER_TOKEN
) -> CharIds:
    """Ids of a batch, shape ``(B, max T + 2, max_chars)``; rows past a sentence's end are 0."""
    encoded = [char_ids(tokens, max_chars) for tokens in sentences]
    width = max((ids.shape[0] for ids in encoded), default=2)
    batch = np.zeros((len(encoded), width, max_chars), dtype=np.int64)
    for row, ids in enumerate(encoded):
        batch[row, : ids.shape[0]] = ids
    return batch
