"""Train a small ELMo biLM on the default corpus and write it in the bilm-tf format.

Recipe (Peters et al. 2018, as bilm-tf trains it): one character CNN token encoder and one
softmax shared by a forward and a backward language model. The forward LM predicts token
``t + 1`` from the forward top-layer output at ``t``; the backward LM predicts ``t - 1`` from
the backward top-layer output at ``t``. Every sentence is ``<S> w_1 … w_n </S>``, so ``</S>``
is the forward LM's last target and ``<S>`` the backward LM's. The softmax is a full softmax
over the training vocabulary (about 2,200 words here), with no sampling. Both LSTMs start every
batch from zero states, which is how inference runs too (bilm-tf instead carries states
across batches).

What is trained is an ``ElmoBiLm`` module, so its weights are the exported ones. The training
forward pass uses the module's own submodules with one shortcut: the char CNN runs once per
distinct word of a batch rather than once per position. A token's vector does not depend on
its context, so the function and its gradient are the same (``bilm_top_layers`` is checked
against ``ElmoBiLm.forward`` in the tests).

Outputs in ``checkpoint_dir``: ``options.json`` and ``weights.hdf5`` (what ``ElmoOptions`` and
``load_hdf5_weights`` read), ``vocab.txt`` and ``softmax.hdf5`` (the LM head, which bilm-tf does
not put in the weight file either), ``training_config.json`` and ``training_log.json`` (the
perplexity curve).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor, nn

from export.batches import length_bucketed_batches
from export.elmo.model import ElmoBiLm
from export.elmo.options import INFERENCE_N_CHARACTERS, ElmoOptions
from export.elmo.weights import save_hdf5_weights
from export.progress import training_progress
from export.requests import DEFAULT_PROGRESS_INTERVAL_S
from modelrepo.elmo_characters import (
    BOS_TOKEN,
    EOS_TOKEN,
    MAX_CHARACTERS_PER_TOKEN,
    token_char_ids,
)

OPTIONS_FILE = "options.json"
WEIGHTS_FILE = "weights.hdf5"
VOCAB_FILE = "vocab.txt"
SOFTMAX_FILE = "softmax.hdf5"
CONFIG_FILE = "training_config.json"
LOG_FILE = "training_log.json"


@dataclass(frozen=True)
class ElmoTrainingConfig:
    """Hyper-parameters of the default ELMo (about 5 minutes on 2 CPU cores).

    Sizes are a scaled-down bilm-tf: char CNN filters as in its small test models, one
    highway layer, a 2-layer LSTMP with skip connections and clipping. Measured here (900 steps,
    2 cores, corpus v2, no weight decay): LSTM 256 / projection 64 trains in about 150 s to
    perplexity 4.1 / 4.4 (forward / backward); 512 / 128 in 270-355 s to 3.2-3.4 (on corpus
    v3 with weight decay: 273 s, 3.25 / 3.27). Decoupled weight decay 0.1 keeps the
    context-free token layer from outgrowing the biLSTM layers in the equal-weight mix: on the
    default corpus, layer-mix polysemy gap 0.117-0.128 over three seeds, 0.109-0.112 without it.
    """

    seed: int = 13
    char_embedding_dim: int = 16
    filters: tuple[tuple[int, int], ...] = ((1, 32), (2, 32), (3, 64), (4, 128))
    n_highway: int = 1
    activation: str = "relu"
    max_characters_per_token: int = MAX_CHARACTERS_PER_TOKEN
    lstm_dim: int = 512
    projection_dim: int = 128
    n_layers: int = 2
    cell_clip: float | None = 3.0
    proj_clip: float | None = 3.0
    use_skip_connections: bool = True
    batch_size: int = 64
    steps: int = 900
    learning_rate: float = 3e-3
    warmup_steps: int = 50
    final_learning_rate_fraction: float = 0.1
    dropout: float = 0.0
    """bilm-tf's dropout: on every LSTM layer's input and on the top output (training only)."""
    weight_decay: float = 0.1
    """AdamW's decoupled weight decay, on every parameter."""
    max_grad_norm: float = 5.0
    log_every: int = 50

    def options(self) -> ElmoOptions:
        """The network these settings describe, as an inference ``options.json`` reads it."""
        return ElmoOptions(
            char_embedding_dim=self.char_embedding_dim,
            filters=tuple((int(width), int(count)) for width, count in self.filters),
            n_highway=self.n_highway,
            activation=self.activation,
            n_characters=INFERENCE_N_CHARACTERS,
            max_characters_per_token=self.max_characters_per_token,
            lstm_dim=self.lstm_dim,
            projection_dim=self.projection_dim,
            n_layers=self.n_layers,
            cell_clip=self.cell_clip,
            proj_clip=self.proj_clip,
            use_skip_connections=self.use_skip_connections,
        )


class WordVocabulary:
    """The softmax vocabulary: ``<S>``, ``</S>``, then the training words by falling count."""

    def __init__(self, words: Sequence[str], counts: Sequence[int]) -> None:
        self.words = list(words)
        self.counts = list(counts)
        self.index = {word: i for i, word in enumerate(self.words)}

    @classmethod
    def from_sentences(cls, sentences: Sequence[Sequence[str]]) -> WordVocabulary:
        counts = Counter(word for sentence in sentences for word in sentence)
        n_sentences = len(sentences)
        ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return cls(
            [BOS_TOKEN, EOS_TOKEN, *(word for word, _ in ordered)],
            [n_sentences, n_sentences, *(count for _, count in ordered)],
        )

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, sentence: Sequence[str]) -> list[int]:
        """Word ids of ``<S> sentence </S>``."""
        return [0, *(self.index[word] for word in sentence), 1]

    def char_ids(self, max_chars: int) -> Tensor:
        """``(V, max_chars)`` character ids of every word (the CNN's input per word id)."""
        return torch.from_numpy(np.stack([token_char_ids(word, max_chars) for word in self.words]))

    def log_unigram(self) -> Tensor:
        """Log frequencies: the softmax bias a language model that ignores context would use."""
        counts = torch.tensor(self.counts, dtype=torch.float64)
        return torch.log(counts / counts.sum()).to(torch.float32)


def bilm_top_layers(
    model: ElmoBiLm, token_vectors: Tensor, mask: Tensor, dropout: float = 0.0
) -> tuple[Tensor, Tensor, Tensor]:
    """Top LSTM outputs of both directions from token vectors, as ``ElmoBiLm.forward`` computes.

    ``token_vectors (B, T, proj)`` are the char-CNN outputs of ``<S> w_1 … w_n </S>`` rows,
    ``mask (B, T)`` is True on those positions (a prefix of each row). Returns the forward top
    layer ``(B, T, proj)`` in time order, the backward top layer ``(B, T, proj)`` in *reversed*
    time order (position ``s`` of row ``b`` is time ``length_b - 1 - s``; padding stays at the
    end), and the reversing index ``(B, T)``. Both stacks start from zero states and run their
    own ``LstmStack.forward``; ``dropout`` applies to every layer's input in training mode.
    """
    tokens = torch.where(mask.unsqueeze(2), token_vectors, torch.zeros_like(token_vectors))
    lengths = mask.sum(dim=1)
    positions = torch.arange(mask.size(1), device=mask.device).unsqueeze(0)
    last = lengths.unsqueeze(1) - 1
    reverse = torch.where(positions <= last, last - positions, positions)
    reversed_tokens = torch.gather(tokens, 1, reverse.unsqueeze(2).expand_as(tokens))
    initial_c, initial_h = (state.to(tokens) for state in model.zero_state(mask.size(0)))
    n = model.n_layers
    forward_layers, _, _ = model.forward_lstm(tokens, mask, initial_c[:n], initial_h[:n], dropout)
    backward_layers, _, _ = model.backward_lstm(
        reversed_tokens, mask, initial_c[n:], initial_h[n:], dropout
    )
    return forward_layers[-1], backward_layers[-1], reverse


class BiLmTrainer(nn.Module):
    """``ElmoBiLm`` plus the shared softmax; ``forward`` returns both directions' mean NLL."""

    def __init__(
        self, options: ElmoOptions, vocabulary: WordVocabulary, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.dropout = dropout
        self.bilm = ElmoBiLm(options)
        self.softmax = nn.Linear(options.projection_dim, len(vocabulary))
        with torch.no_grad():
            self.softmax.bias.copy_(vocabulary.log_unigram())
        self.register_buffer(
            "word_chars", vocabulary.char_ids(options.max_characters_per_token), persistent=False
        )

    def forward(self, word_ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """``word_ids (B, T)`` of ``<S> … </S>`` rows (anything past the mask) → two mean NLLs."""
        present, inverse = torch.unique(word_ids[mask], return_inverse=True)
        chars = self.word_chars
        assert isinstance(chars, Tensor)
        distinct = self.bilm.token_embeddings(chars[present].unsqueeze(0)).squeeze(0)
        token_vectors = torch.zeros(
            (*word_ids.shape, distinct.size(1)), dtype=distinct.dtype, device=distinct.device
        )
        token_vectors = token_vectors.index_put((mask,), distinct[inverse])
        forward_top, backward_top, reverse = bilm_top_layers(
            self.bilm, token_vectors, mask, self.dropout
        )
        if self.dropout > 0:
            forward_top = nn.functional.dropout(forward_top, self.dropout, self.training)
            backward_top = nn.functional.dropout(backward_top, self.dropout, self.training)
        # Position t predicts t + 1 (forward), reversed position s predicts s + 1 (backward);
        # valid wherever the target position is inside the row.
        targets_valid = mask[:, 1:]
        reversed_ids = torch.gather(word_ids, 1, reverse)
        forward_nll = nn.functional.cross_entropy(
            self.softmax(forward_top[:, :-1][targets_valid]), word_ids[:, 1:][targets_valid]
        )
        backward_nll = nn.functional.cross_entropy(
            self.softmax(backward_top[:, :-1][targets_valid]), reversed_ids[:, 1:][targets_valid]
        )
        return forward_nll, backward_nll


def pad_batch(rows: Sequence[Sequence[int]]) -> tuple[Tensor, Tensor]:
    """Word ids ``(B, max length)`` (0 past each row) and the mask of the real positions."""
    width = max(len(row) for row in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for index, row in enumerate(rows):
        ids[index, : len(row)] = torch.tensor(row)
        mask[index, : len(row)] = True
    return ids, mask


def learning_rate(step: int, config: ElmoTrainingConfig) -> float:
    """Linear warm-up, then linear decay to ``final_learning_rate_fraction`` of the peak."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    floor = config.final_learning_rate_fraction
    return config.learning_rate * (1.0 - (1.0 - floor) * progress)


@dataclass
class TrainedBiLm:
    """The result of ``fit_bilm``: the module (eval mode), its vocabulary and the training log."""

    trainer: BiLmTrainer
    vocabulary: WordVocabulary
    summary: dict[str, Any]


def train_elmo(
    sentences: Sequence[str],
    config: ElmoTrainingConfig,
    checkpoint_dir: Path,
    show_progress: bool = True,
    progress_interval_s: float = DEFAULT_PROGRESS_INTERVAL_S,
) -> tuple[Path, Path]:
    """Train on whitespace-tokenized ``sentences``; returns the options and weights paths."""
    trained = fit_bilm(sentences, config, show_progress, progress_interval_s)
    return save_trained(trained, config, checkpoint_dir)


def fit_bilm(
    sentences: Sequence[str],
    config: ElmoTrainingConfig,
    show_progress: bool = True,
    progress_interval_s: float = DEFAULT_PROGRESS_INTERVAL_S,
) -> TrainedBiLm:
    """The training loop (seeded: the same sentences and config give the same weights)."""
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    tokenized = [sentence.split() for sentence in sentences]
    tokenized = [tokens for tokens in tokenized if tokens]
    if not tokenized:
        raise ValueError("no sentence to train on")
    vocabulary = WordVocabulary.from_sentences(tokenized)
    encoded = [vocabulary.encode(tokens) for tokens in tokenized]
    options = config.options()
    trainer = BiLmTrainer(options, vocabulary, config.dropout)
    trainer.train()
    optimizer = torch.optim.AdamW(
        trainer.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    order = length_bucketed_batches(
        [len(ids) for ids in encoded], config.batch_size, random.Random(config.seed)
    )
    log: list[dict[str, float]] = []
    window: list[tuple[float, float, int]] = []
    smoothed: tuple[float, float] | None = None
    started = time.perf_counter()
    tokens_seen = 0
    with training_progress(
        "ELMo biLM",
        config.steps,
        ["loss", "forward ppl", "backward ppl"],
        show_progress,
        progress_interval_s,
    ) as progress:
        for step in range(config.steps):
            word_ids, mask = pad_batch([encoded[i] for i in next(order)])
            forward_nll, backward_nll = trainer(word_ids, mask)
            loss = (forward_nll + backward_nll) / 2
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, config)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(trainer.parameters(), config.max_grad_norm)
            optimizer.step()
            nll = (forward_nll.item(), backward_nll.item())
            smoothed = nll if smoothed is None else _ema(smoothed, nll, 0.95)
            targets = int(mask.sum()) - mask.size(0)
            tokens_seen += targets
            window.append((*nll, targets))
            if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
                log.append(_log_entry(step + 1, window, time.perf_counter() - started))
                window = []
            progress.advance(
                tokens=targets,
                **{
                    "loss": (smoothed[0] + smoothed[1]) / 2,
                    "forward ppl": math.exp(smoothed[0]),
                    "backward ppl": math.exp(smoothed[1]),
                },
            )
    elapsed = time.perf_counter() - started
    trainer.eval()
    summary: dict[str, Any] = {
        "steps": config.steps,
        "seconds": elapsed,
        "steps_per_second": config.steps / elapsed if elapsed > 0 else None,
        "predicted_tokens_per_direction": tokens_seen,
        "epochs": tokens_seen / sum(len(ids) - 1 for ids in encoded),
        "torch_threads": torch.get_num_threads(),
        "curve": log,
    }
    return TrainedBiLm(trainer, vocabulary, summary)


def save_trained(
    trained: TrainedBiLm, config: ElmoTrainingConfig, checkpoint_dir: Path
) -> tuple[Path, Path]:
    """Write every output file (module docstring); returns the options and weights paths."""
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    options_path, weights_path = save_bilm(
        trained.trainer.bilm, checkpoint_dir, trained.vocabulary, config
    )
    _save_softmax(trained.trainer.softmax, trained.vocabulary, checkpoint_dir)
    (checkpoint_dir / CONFIG_FILE).write_text(json.dumps(asdict(config), indent=2) + "\n")
    (checkpoint_dir / LOG_FILE).write_text(json.dumps(trained.summary, indent=2) + "\n")
    return options_path, weights_path


def save_bilm(
    model: ElmoBiLm, directory: Path, vocabulary: WordVocabulary, config: ElmoTrainingConfig
) -> tuple[Path, Path]:
    """``options.json`` (bilm-tf keys; inference ``n_characters``) and ``weights.hdf5``."""
    options = model.options.to_dict()
    options["bidirectional"] = True
    options["n_tokens_vocab"] = len(vocabulary)
    options["batch_size"] = config.batch_size
    options["dropout"] = config.dropout
    options["all_clip_norm_val"] = config.max_grad_norm
    options_path = directory / OPTIONS_FILE
    options_path.write_text(json.dumps(options, indent=2) + "\n")
    weights_path = directory / WEIGHTS_FILE
    save_hdf5_weights(model, weights_path)
    return options_path, weights_path


def _save_softmax(softmax: nn.Linear, vocabulary: WordVocabulary, directory: Path) -> None:
    """The LM head as bilm-tf names it (``softmax/W`` is (vocabulary, projection))."""
    (directory / VOCAB_FILE).write_text("\n".join(vocabulary.words) + "\n", encoding="utf-8")
    with h5py.File(directory / SOFTMAX_FILE, "w") as weights:
        weights.create_dataset("softmax/W", data=softmax.weight.detach().numpy())
        weights.create_dataset("softmax/b", data=softmax.bias.detach().numpy())


def _ema(
    previous: tuple[float, float], current: tuple[float, float], decay: float
) -> tuple[float, float]:
    return (
        decay * previous[0] + (1 - decay) * current[0],
        decay * previous[1] + (1 - decay) * current[1],
    )


def _log_entry(
    step: int, window: Sequence[tuple[float, float, int]], seconds: float
) -> dict[str, float]:
    total = sum(count for _, _, count in window)
    forward = sum(nll * count for nll, _, count in window) / total
    backward = sum(nll * count for _, nll, count in window) / total
    return {
        "step": step,
        "seconds": round(seconds, 1),
        "forward_ppl": math.exp(forward),
        "backward_ppl": math.exp(backward),
    }
