"""Tokenizers: WordPiece trained on our corpus, or the one transformers uses for a checkpoint.

The served artifact is always one ``tokenizer.json`` of the ``tokenizers`` library, which the
server loads without transformers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

SPECIAL_TOKENS = {
    "pad": "[PAD]",
    "unk": "[UNK]",
    "cls": "[CLS]",
    "sep": "[SEP]",
    "mask": "[MASK]",
}


@dataclass(frozen=True)
class TokenizerInfo:
    tokenizer: Tokenizer
    special_tokens: dict[str, str]
    special_token_ids: dict[str, int]
    model_max_length: int | None


def _bert_pipeline(tokenizer: Tokenizer, lowercase: bool) -> None:
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")


def _add_template(tokenizer: Tokenizer, special: dict[str, str]) -> None:
    cls_token, sep_token = special["cls"], special["sep"]
    cls_id, sep_id = tokenizer.token_to_id(cls_token), tokenizer.token_to_id(sep_token)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls_token}:0 $A:0 {sep_token}:0",
        pair=f"{cls_token}:0 $A:0 {sep_token}:0 $B:1 {sep_token}:1",
        special_tokens=[(cls_token, cls_id), (sep_token, sep_id)],
    )


def train_wordpiece(sentences: Iterable[str], vocab_size: int) -> TokenizerInfo:
    """Train a lowercase BERT WordPiece vocabulary on ``sentences``."""
    tokenizer = Tokenizer(
        models.WordPiece(unk_token=SPECIAL_TOKENS["unk"], max_input_chars_per_word=100)
    )
    _bert_pipeline(tokenizer, lowercase=True)
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS.values()),
        show_progress=False,
    )
    tokenizer.train_from_iterator(sentences, trainer=trainer)
    _add_template(tokenizer, SPECIAL_TOKENS)
    return _describe(tokenizer, dict(SPECIAL_TOKENS), None)


HUB_OPTIONS = frozenset(
    ("revision", "cache_dir", "token", "use_auth_token", "local_files_only", "force_download")
)
"""Tokenizer options about fetching files, which change nothing in a local folder."""


def load_checkpoint_tokenizer(
    directory: Path, options: Mapping[str, Any] | None = None, lowercase: bool = False
) -> TokenizerInfo:
    """The tokenizer transformers tokenizes a checkpoint with, as one ``tokenizers`` pipeline.

    Not the checkpoint's ``tokenizer.json`` as it is: transformers 5's tokenizer classes rebuild
    parts of it (XLM-R's pre-tokenizer, BERT's normaliser from ``do_lower_case``), so what
    ``AutoTokenizer`` ends up with (given ``options``, a sentence-transformers folder's tokenizer
    arguments) is what is served. ``lowercase`` puts a Lowercase step first where the pipeline
    has none, as sentence-transformers does for ``do_lower_case``. Special tokens and the
    length limit are the loaded tokenizer's.
    """
    from transformers import AutoTokenizer

    arguments = {key: value for key, value in (options or {}).items() if key not in HUB_OPTIONS}
    try:
        loaded = AutoTokenizer.from_pretrained(directory, **arguments)
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(f"{directory}: transformers cannot load its tokenizer ({error})") from None
    if not loaded.is_fast:
        raise ValueError(f"{directory}: {type(loaded).__name__} has no fast (tokenizers) pipeline")
    tokenizer = Tokenizer.from_str(loaded.backend_tokenizer.to_str())
    tokenizer.no_padding()
    tokenizer.no_truncation()
    if lowercase and not _lowercases(tokenizer.normalizer):
        steps: list[normalizers.Normalizer] = [normalizers.Lowercase()]
        if isinstance(tokenizer.normalizer, normalizers.Sequence):
            steps += _steps(tokenizer.normalizer)
        elif tokenizer.normalizer is not None:
            steps.append(tokenizer.normalizer)
        tokenizer.normalizer = normalizers.Sequence(steps)
    special = dict(SPECIAL_TOKENS)
    for role in SPECIAL_TOKENS:
        token = getattr(loaded, f"{role}_token", None)
        if isinstance(token, str):
            special[role] = token
    max_length = loaded.model_max_length
    usable_max = int(max_length) if isinstance(max_length, int) and max_length < 10**6 else None
    return _describe(tokenizer, special, usable_max)


def _lowercases(normalizer: normalizers.Normalizer | None) -> bool:
    """Whether the pipeline has a Lowercase step of its own (sentence-transformers' test: a
    BERT normaliser that lowercases does not count)."""
    if isinstance(normalizer, normalizers.Lowercase):
        return True
    if isinstance(normalizer, normalizers.Sequence):
        return any(isinstance(step, normalizers.Lowercase) for step in _steps(normalizer))
    return False


def _steps(sequence: normalizers.Sequence) -> list[normalizers.Normalizer]:
    """The steps of a Sequence (iterable at run time; its type stubs do not say so)."""
    steps: list[normalizers.Normalizer] = list(cast(Iterable[normalizers.Normalizer], sequence))
    return steps


def _describe(
    tokenizer: Tokenizer, special: dict[str, str], max_length: int | None
) -> TokenizerInfo:
    ids: dict[str, int] = {}
    for role, token in special.items():
        token_id = tokenizer.token_to_id(token)
        if token_id is None:
            raise ValueError(f"special token {token!r} ({role}) is not in the vocabulary")
        ids[role] = token_id
    return TokenizerInfo(tokenizer, special, ids, max_length)
