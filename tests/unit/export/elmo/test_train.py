"""Training the biLM: the loss falls, runs are reproducible, and what is written is what trained."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from export.elmo.model import ElmoBiLm
from export.elmo.options import ElmoOptions
from export.elmo.train import (
    BiLmTrainer,
    ElmoTrainingConfig,
    TrainedBiLm,
    WordVocabulary,
    fit_bilm,
    pad_batch,
    save_trained,
    train_elmo,
)
from export.elmo.weights import load_hdf5_weights
from modelrepo.elmo_characters import batch_char_ids

TINY = ElmoTrainingConfig(
    seed=5,
    char_embedding_dim=4,
    filters=((1, 4), (2, 8), (3, 8)),
    n_highway=1,
    lstm_dim=24,
    projection_dim=8,
    batch_size=8,
    steps=40,
    learning_rate=1e-2,
    warmup_steps=5,
    log_every=10,
)


def _sentences(count: int = 48, seed: int = 0) -> list[str]:
    """A tiny two-topic language: each subject goes with its own verbs and objects."""
    rng = random.Random(seed)
    topics = (
        (("chef", "cook"), ("sliced", "peeled"), ("apple", "pear", "plum")),
        (("coder", "admin"), ("clicked", "dragged"), ("mouse", "icon", "window")),
    )
    sentences = []
    for _ in range(count):
        subjects, verbs, objects = rng.choice(topics)
        words = ["the", rng.choice(subjects), rng.choice(verbs), "the", rng.choice(objects)]
        if rng.random() < 0.5:
            words += ["and", "the", rng.choice(objects)]
        sentences.append(" ".join([*words, "."]))
    return sentences


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny matrices: a second thread only adds synchronisation (and is slow when the CPU is
    shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained() -> TrainedBiLm:
    return fit_bilm(_sentences(), TINY, show_progress=False)


def test_the_perplexity_of_both_directions_falls(trained: TrainedBiLm) -> None:
    curve = trained.summary["curve"]
    assert [entry["step"] for entry in curve] == [10, 20, 30, 40]
    for direction in ("forward_ppl", "backward_ppl"):
        first, last = curve[0][direction], curve[-1][direction]
        assert last < 0.6 * first, (direction, first, last)


def test_training_forward_pass_is_the_bilm_forward_pass(trained: TrainedBiLm) -> None:
    """The shortcut (char CNN once per distinct word) computes what ``ElmoBiLm.forward`` does:
    the LM losses recomputed from the module's own outputs are the same."""
    trainer, vocabulary = trained.trainer, trained.vocabulary
    sentences = [sentence.split() for sentence in _sentences(6, seed=1)]
    word_ids, mask = pad_batch([vocabulary.encode(words) for words in sentences])
    with torch.no_grad():
        forward_nll, backward_nll = trainer(word_ids, mask)
        bilm = trainer.bilm
        layers, bilm_mask, _, _ = bilm(
            torch.from_numpy(batch_char_ids(sentences)), *bilm.zero_state(len(sentences))
        )
    assert torch.equal(bilm_mask, mask)
    proj = bilm.options.projection_dim
    top = layers[-1]
    valid = mask[:, 1:]
    expected_forward = torch.nn.functional.cross_entropy(
        trainer.softmax(top[:, :-1, :proj][valid]), word_ids[:, 1:][valid]
    )
    expected_backward = torch.nn.functional.cross_entropy(
        trainer.softmax(top[:, 1:, proj:][valid]), word_ids[:, :-1][valid]
    )
    assert abs(forward_nll.item() - expected_forward.item()) < 1e-5
    assert abs(backward_nll.item() - expected_backward.item()) < 1e-5


def test_training_gradients_match_the_bilm_forward_pass() -> None:
    options = TINY.options()
    vocabulary = WordVocabulary.from_sentences([s.split() for s in _sentences()])
    torch.manual_seed(0)
    trainer = BiLmTrainer(options, vocabulary)
    sentences = [sentence.split() for sentence in _sentences(5, seed=2)]
    word_ids, mask = pad_batch([vocabulary.encode(words) for words in sentences])
    forward_nll, backward_nll = trainer(word_ids, mask)
    (forward_nll + backward_nll).backward()
    shortcut = {
        name: p.grad.clone() for name, p in trainer.named_parameters() if p.grad is not None
    }
    trainer.zero_grad()
    layers, _, _, _ = trainer.bilm(
        torch.from_numpy(batch_char_ids(sentences)), *trainer.bilm.zero_state(len(sentences))
    )
    proj = options.projection_dim
    valid = mask[:, 1:]
    loss = torch.nn.functional.cross_entropy(
        trainer.softmax(layers[-1][:, :-1, :proj][valid]), word_ids[:, 1:][valid]
    ) + torch.nn.functional.cross_entropy(
        trainer.softmax(layers[-1][:, 1:, proj:][valid]), word_ids[:, :-1][valid]
    )
    loss.backward()
    for name, parameter in trainer.named_parameters():
        assert parameter.grad is not None, name
        torch.testing.assert_close(shortcut[name], parameter.grad, rtol=1e-4, atol=1e-6)


def test_written_files_load_back_into_the_same_bilm(trained: TrainedBiLm, tmp_path: Path) -> None:
    options_path, weights_path = save_trained(trained, TINY, tmp_path)
    options = ElmoOptions.from_json(options_path)
    assert options == TINY.options()
    assert options.n_characters == 262
    assert json.loads(options_path.read_text())["n_tokens_vocab"] == len(trained.vocabulary)
    loaded = ElmoBiLm(options).eval()
    load_hdf5_weights(loaded, weights_path)
    ids = torch.from_numpy(batch_char_ids([s.split() for s in _sentences(4, seed=3)]))
    with torch.no_grad():
        expected = trained.trainer.bilm(ids, *trained.trainer.bilm.zero_state(4))
        actual = loaded(ids, *loaded.zero_state(4))
    for want, got in zip(expected, actual, strict=True):
        assert torch.equal(want, got)
    vocabulary = (tmp_path / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert vocabulary == trained.vocabulary.words
    with h5py.File(tmp_path / "softmax.hdf5", "r") as softmax:
        weight = np.asarray(softmax["softmax/W"])
        assert weight.shape == (len(vocabulary), TINY.projection_dim)
    for name in ("training_config.json", "training_log.json"):
        assert json.loads((tmp_path / name).read_text())


def test_the_same_seed_gives_the_same_weights(trained: TrainedBiLm, tmp_path: Path) -> None:
    config = ElmoTrainingConfig(**{**TINY.__dict__, "steps": 8})
    first = train_elmo(_sentences(), config, tmp_path / "a", show_progress=False)[1]
    second = train_elmo(_sentences(), config, tmp_path / "b", show_progress=False)[1]
    other = ElmoTrainingConfig(**{**TINY.__dict__, "steps": 8, "seed": 6})
    third = train_elmo(_sentences(), other, tmp_path / "c", show_progress=False)[1]
    with h5py.File(first, "r") as a, h5py.File(second, "r") as b, h5py.File(third, "r") as c:
        names: list[str] = []
        a.visititems(
            lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None
        )
        assert names
        assert all(np.array_equal(a[name], b[name]) for name in names)
        assert not all(np.array_equal(a[name], c[name]) for name in names)


def test_dropout_acts_in_training_mode_only(trained: TrainedBiLm) -> None:
    vocabulary = trained.vocabulary
    sentences = [sentence.split() for sentence in _sentences(6, seed=5)]
    word_ids, mask = pad_batch([vocabulary.encode(words) for words in sentences])
    torch.manual_seed(0)
    with_dropout = BiLmTrainer(TINY.options(), vocabulary, dropout=0.5)
    without = BiLmTrainer(TINY.options(), vocabulary)
    without.load_state_dict(with_dropout.state_dict())
    with torch.no_grad():
        expected = without.eval()(word_ids, mask)
        assert all(
            torch.equal(a, b)
            for a, b in zip(with_dropout.eval()(word_ids, mask), expected, strict=True)
        )
        dropped = with_dropout.train()(word_ids, mask)
    assert not any(torch.equal(a, b) for a, b in zip(dropped, expected, strict=True))
