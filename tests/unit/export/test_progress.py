"""Training progress without a terminal: a plain line every interval (step, loss, tokens/s, time
left at the measured rate) from each trainer; the live bar only on a terminal; observers told of
every run."""

from __future__ import annotations

import io
import random
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from rich.console import Console

from export.bert.train import BertTrainingConfig, train_bert
from export.elmo.train import ElmoTrainingConfig, fit_bilm
from export.progress import ProgressReport, observing, training_progress
from export.word2vec.train import Word2VecTrainingConfig, train_word2vec
from tests.checkpoints import sentences

STEP_LINE = r"step \d+ of \d+, .*loss \d+\.\d{3}.*, [\d,]+ tokens/s, \d+:\d\d elapsed"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def plain_console() -> tuple[Console, io.StringIO]:
    """What a log file is: not a terminal, 80 columns."""
    out = io.StringIO()
    return Console(file=out, force_terminal=False, width=80), out


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_without_a_terminal_a_line_every_interval_with_rate_and_time_left() -> None:
    console, out = plain_console()
    clock = FakeClock()
    with training_progress(
        "BERT masked LM", 6, ["loss"], interval_s=30, out=console, clock=clock
    ) as progress:
        for step in range(6):
            clock.now += 20
            progress.advance(tokens=1000, loss=2.0 - step / 10)
    assert out.getvalue().splitlines() == [
        "BERT masked LM: 6 steps; a progress line every 30 s (the time left is measured from "
        "the rate so far)",
        "BERT masked LM: step 2 of 6, loss 1.900, 50 tokens/s, 0:40 elapsed, about 1:20 left",
        "BERT masked LM: step 4 of 6, loss 1.700, 50 tokens/s, 1:20 elapsed, about 0:40 left",
        "BERT masked LM: step 6 of 6, loss 1.500, 50 tokens/s, 2:00 elapsed, done",
    ]


def test_on_a_terminal_the_live_bar_and_no_lines() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with training_progress("ELMo biLM", 3, ["loss"], interval_s=1e-9, out=console) as progress:
        for _ in range(3):
            progress.advance(tokens=10, loss=1.0)
    shown = out.getvalue()
    assert "ELMo biLM" in shown and "3/3" in shown
    assert "step 1 of 3" not in shown


def test_no_progress_prints_nothing_but_observers_still_hear() -> None:
    console, out = plain_console()
    clock = FakeClock()
    heard: list[ProgressReport] = []
    with (
        observing(heard.append),
        training_progress("word2vec", 4, ["loss"], False, out=console, clock=clock) as progress,
    ):
        for _ in range(4):
            clock.now += 0.4  # observers are told at most once a second, and of the last step
            progress.advance(tokens=5, loss=0.5)
    assert out.getvalue() == ""
    assert [report.step for report in heard] == [3, 4]
    assert heard[0].remaining_s == pytest.approx(0.4)
    assert heard[-1].tokens == 20 and heard[-1].metrics == {"loss": 0.5}


# The trainers print to the export console (stderr), which pytest's capture is not a terminal for.


def test_word2vec_training_prints_lines(capsys: pytest.CaptureFixture[str]) -> None:
    config = Word2VecTrainingConfig(dim=8, epochs=3)
    train_word2vec(sentences(200), config, progress_interval_s=1e-9)
    printed = capsys.readouterr().err
    assert "word2vec: 3 steps; a progress line every 1e-09 s" in printed
    steps = [line for line in printed.splitlines() if line.startswith("word2vec: step")]
    assert len(steps) == 3, printed
    for line in steps[:-1]:
        assert_step_line(line, "word2vec: ", "left")
    assert_step_line(steps[-1], "word2vec: step 3 of 3", "done")


def test_bert_training_prints_lines(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = replace(
        BertTrainingConfig(),
        vocab_size=200,
        hidden_size=16,
        num_layers=1,
        num_heads=2,
        intermediate_size=32,
        batch_size=8,
        steps=3,
    )
    train_bert(sentences(200), config, tmp_path / "bert", progress_interval_s=1e-9)
    steps = [
        line
        for line in capsys.readouterr().err.splitlines()
        if line.startswith("BERT masked LM: step")
    ]
    assert len(steps) == 3
    assert_step_line(steps[0], "BERT masked LM: step 1 of 3", "left")
    assert_step_line(steps[-1], "BERT masked LM: step 3 of 3", "done")


def test_elmo_training_prints_lines(capsys: pytest.CaptureFixture[str]) -> None:
    config = ElmoTrainingConfig(
        seed=5,
        char_embedding_dim=4,
        filters=((1, 4), (2, 8)),
        n_highway=1,
        lstm_dim=8,
        projection_dim=4,
        batch_size=4,
        steps=3,
        warmup_steps=1,
        log_every=1,
    )
    rng = random.Random(0)
    words = "the cook peeled a mushy apple in the steamy kitchen".split()
    text = [" ".join(rng.choice(words) for _ in range(6)) for _ in range(16)]
    fit_bilm(text, config, progress_interval_s=1e-9)
    steps = [
        line for line in capsys.readouterr().err.splitlines() if line.startswith("ELMo biLM: step")
    ]
    assert len(steps) == 3
    assert "forward ppl" in steps[0] and "backward ppl" in steps[0]
    assert_step_line(steps[0], "ELMo biLM: step 1 of 3", "left")
    assert_step_line(steps[-1], "ELMo biLM: step 3 of 3", "done")


def assert_step_line(line: str, start: str, end: str) -> None:
    assert line.startswith(start), line
    assert re.search(STEP_LINE, line), line
    assert line.endswith(end), line
