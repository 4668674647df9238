"""``python -m export bert --quantize int8 | --fp16``: the precision is a field of the typed
request, the two flags exclude each other, and the check runs on the corpus's held-out texts."""

from __future__ import annotations

from pathlib import Path

import pytest

from export.__main__ import parse
from export.bert import cli as bert
from export.bert.precision import DEFAULT_TEXTS
from export.corpus import CorpusConfig, load_or_generate
from export.requests import Target, Workspace

HOME = Workspace()


@pytest.mark.parametrize(
    ("argv", "request_"),
    [
        (["bert", "--train"], bert.BertTrainRequest(HOME, Target("bert"), "fp32")),
        (
            ["bert", "--train", "--quantize", "int8", "--name", "bert-int8"],
            bert.BertTrainRequest(HOME, Target("bert-int8"), "int8"),
        ),
        (
            ["bert", "--from-hf", "hf", "--name", "tiny", "--fp16"],
            bert.BertImportRequest(HOME, Target("tiny"), Path("hf"), "fp16"),
        ),
        (
            ["bert", "--from-hf", "hf", "--quantize", "int8"],
            bert.BertImportRequest(HOME, Target("bert"), Path("hf"), "int8"),
        ),
    ],
)
def test_precision_flags_become_request_fields(argv: list[str], request_: object) -> None:
    assert parse(argv).request == request_


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bert", "--train", "--quantize", "int8", "--fp16"], "not allowed with argument"),
        (["bert", "--train", "--quantize", "int4"], "invalid choice: 'int4'"),
    ],
)
def test_precision_flags_are_checked(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse(argv)
    assert message in capsys.readouterr().err


def test_precision_plan_checks_on_the_first_heldout_sentences(tmp_path: Path) -> None:
    corpus = load_or_generate(tmp_path, CorpusConfig(train_tokens=2_000, heldout_sentences=400))
    assert bert.precision_plan("fp32", corpus) is None
    for precision in ("int8", "fp16"):
        plan = bert.precision_plan(precision, corpus)
        assert plan is not None and plan.precision == precision
        count = DEFAULT_TEXTS[precision]
        assert plan.texts == tuple(corpus.heldout.sentences[:count])
        assert plan.threshold == 0.99
