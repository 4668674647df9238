"""Tiny Hugging Face BERT checkpoints built from a config (random weights, no download)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from transformers import BertConfig, BertForMaskedLM, BertModel

from export.bert.tokenizer import train_wordpiece
from export.bert.train import save_checkpoint

WORDS = tuple(
    (
        "the river bank flows past green fields while the bank in town lends money to farmers "
        "who grow apples and pears near the old mill by the water where children play football "
        "after school and musicians tune a bass guitar before the evening concert begins"
    ).split()
)


def sentences(count: int = 400) -> list[str]:
    """Deterministic word soup covering WORDS, enough to train a WordPiece vocabulary."""
    return [
        " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(5 + i % 11))
        for i in range(count)
    ]


def tiny_config(vocab_size: int) -> BertConfig:
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
    )


def save_mlm_checkpoint(directory: Path, seed: int = 0) -> Path:
    """A random BertForMaskedLM with a tokenizer.json, as save_pretrained writes it."""
    info = train_wordpiece(sentences(), vocab_size=200)
    torch.manual_seed(seed)
    model = BertForMaskedLM(tiny_config(info.tokenizer.get_vocab_size())).eval()
    save_checkpoint(model, info, directory, max_length=128)
    return directory


def save_encoder_checkpoint(directory: Path, seed: int = 1) -> Path:
    """A random BertModel (no MLM head, like sentence-embedding checkpoints) with only vocab.txt."""
    info = train_wordpiece(sentences(), vocab_size=200)
    torch.manual_seed(seed)
    model = BertModel(tiny_config(info.tokenizer.get_vocab_size())).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save_pretrained(directory)
    vocab = sorted(info.tokenizer.get_vocab().items(), key=lambda item: item[1])
    (directory / "vocab.txt").write_text("".join(f"{token}\n" for token, _ in vocab))
    (directory / "tokenizer_config.json").write_text('{"do_lower_case": true}')
    return directory
