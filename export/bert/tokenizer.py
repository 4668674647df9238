"""WordPiece tokenizers: trained on our corpus, or rebuilt from a checkpoint's files.

The served artifact is always one ``tokenizer.json`` of the ``tokenizers`` library, which the
server loads without transformers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

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


def load_checkpoint_tokenizer(directory: Path) -> TokenizerInfo:
    """The tokenizer of a Hugging Face BERT checkpoint: ``tokenizer.json`` or ``vocab.txt``.

    Special tokens and lowercasing come from ``tokenizer_config.json`` /
    ``special_tokens_map.json`` when present, else BERT's defaults.
    """
    config = _read_json(directory / "tokenizer_config.json")
    special = dict(SPECIAL_TOKENS)
    for source in (config, _read_json(directory / "special_tokens_map.json")):
        for role in SPECIAL_TOKENS:
            value = source.get(f"{role}_token")
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str):
                special[role] = value
    if (directory / "tokenizer.json").is_file():
        tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.no_truncation()
    elif (directory / "vocab.txt").is_file():
        vocab = _read_vocab(directory / "vocab.txt")
        tokenizer = Tokenizer(models.WordPiece(vocab=vocab, unk_token=special["unk"]))
        _bert_pipeline(tokenizer, lowercase=bool(config.get("do_lower_case", True)))
        _add_template(tokenizer, special)
    else:
        raise FileNotFoundError(
            f"{directory}: no tokenizer.json or vocab.txt; a BERT checkpoint directory needs one"
        )
    max_length = config.get("model_max_length")
    usable_max = (
        int(max_length) if isinstance(max_length, int | float) and max_length < 1e6 else None
    )
    return _describe(tokenizer, special, usable_max)


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


def _read_vocab(path: Path) -> dict[str, int]:
    tokens = path.read_text(encoding="utf-8").splitlines()
    return {token: index for index, token in enumerate(tokens)}


def _read_json(path: Path) -> dict[str, object]:
    if not path.is_file():
        return {}
    loaded = json.loads(path.read_text(encoding="utf-8"))
    return loaded if isinstance(loaded, dict) else {}
