"""``python -m export``: each command line becomes one frozen, typed request and the command that
runs it; ``defaults`` builds in its published order; no Namespace reaches past the parser."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from export import commands
from export.__main__ import DEFAULT_MODELS, build_parser, parse
from export.bert import cli as bert
from export.commands import CompareRequest, DefaultsRequest, EvaluateRequest
from export.console import console
from export.elmo import cli as elmo
from export.registry import ARCHITECTURES
from export.requests import Target, Workspace
from export.word2vec import cli as word2vec

EXPORT = Path(__file__).resolve().parents[3] / "export"
HOME = Workspace()


@pytest.mark.parametrize(
    ("argv", "request_"),
    [
        (["bert", "--train"], bert.BertTrainRequest(HOME, Target("bert"))),
        (
            [
                "bert",
                "--train",
                "--steps",
                "5",
                "--checkpoint-dir",
                "ck",
                "--seed",
                "7",
                "--no-progress",
                "--models-dir",
                "m",
                "--corpus-dir",
                "c",
            ],
            bert.BertTrainRequest(
                Workspace(Path("m"), Path("c"), seed=7, show_progress=False),
                Target("bert", steps=5, checkpoint_dir=Path("ck")),
            ),
        ),
        (
            ["bert", "--from-hf", "hf", "--name", "tiny", "--version", "3"],
            bert.BertImportRequest(HOME, Target("tiny", version=3), Path("hf")),
        ),
        (
            ["elmo", "--train", "--max-sequence-length", "40"],
            elmo.ElmoTrainRequest(HOME, Target("elmo"), max_sequence_length=40),
        ),
        (
            ["elmo", "--options", "o.json", "--weights", "w.hdf5", "--name", "big"],
            elmo.ElmoImportRequest(HOME, Target("big"), Path("o.json"), Path("w.hdf5")),
        ),
        (
            ["word2vec", "--train", "--cbow", "--hs", "--dim", "12", "--epochs", "2"],
            word2vec.Word2VecTrainRequest(
                HOME, Target("word2vec"), cbow=True, hierarchical_softmax=True, dim=12, epochs=2
            ),
        ),
        (
            ["word2vec", "--from-file", "v.bin", "--binary", "--name", "news", "--no-similarity"],
            word2vec.Word2VecImportRequest(
                HOME, Target("news"), Path("v.bin"), binary=True, with_similarity=False
            ),
        ),
        (
            ["evaluate", "bert", "--version", "2", "--json", "out.json"],
            EvaluateRequest(HOME, "bert", 2, Path("out.json")),
        ),
        (["evaluate", "--compare"], CompareRequest(HOME)),
        (["evaluate", "--compare", "bert", "elmo"], CompareRequest(HOME, ("bert", "elmo"))),
        (["defaults", "--seed", "3"], DefaultsRequest(Workspace(seed=3))),
    ],
)
def test_a_command_line_becomes_its_typed_request(argv: list[str], request_: object) -> None:
    assert parse(argv).request == request_


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["bert", "--train"], bert.run),
        (["bert", "--from-hf", "d"], bert.run),
        (["elmo", "--train"], elmo.run),
        (["word2vec", "--from-file", "v.txt"], word2vec.run),
        (["evaluate", "x"], commands.run_evaluation),
        (["evaluate", "--compare"], commands.run_evaluation),
        (["defaults"], commands.build_defaults),
    ],
)
def test_each_subcommand_dispatches_to_its_command(argv: list[str], command: object) -> None:
    assert parse(argv).run is command


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["elmo", "--options", "o.json"], "--options needs --weights"),
        (["elmo", "--train", "--weights", "w"], "--weights goes with --options"),
        (["word2vec", "--train", "--binary"], "--binary describes the file of --from-file"),
        (
            ["word2vec", "--from-file", "v", "--dim", "3", "--checkpoint-dir", "c"],
            "--dim, --checkpoint-dir only go with --train",
        ),
        (["evaluate"], "evaluate needs a model name"),
        (["evaluate", "x", "--compare"], "--compare takes model names"),
        (["evaluate", "--version", "2", "--compare"], "--compare takes model names"),
    ],
)
def test_flags_that_do_not_go_together_are_refused(argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        parse(argv)


def test_word2vec_counts_epochs_not_steps(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(["word2vec", "--train", "--steps", "5"])
    assert "unrecognized arguments: --steps 5" in capsys.readouterr().err


def test_requests_are_frozen_and_carry_no_namespace() -> None:
    for argv in (["bert", "--train"], ["word2vec", "--from-file", "v"], ["evaluate", "x"]):
        request: Any = parse(argv).request
        with pytest.raises(dataclasses.FrozenInstanceError):
            request.workspace = HOME
        assert dataclasses.is_dataclass(request)
        values = [getattr(request, field.name) for field in dataclasses.fields(request)]
        assert not any(isinstance(value, argparse.Namespace) for value in values)


def test_every_registered_architecture_has_its_subcommand() -> None:
    subparsers = next(
        action
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    assert list(subparsers.choices) == [*ARCHITECTURES, "evaluate", "defaults", "config"]
    assert set(DEFAULT_MODELS) == set(ARCHITECTURES)


def test_the_registry_gives_each_architecture_its_export_spec() -> None:
    spec = ARCHITECTURES["word2vec"].export_spec(10, 4)
    assert [graph.role for graph in spec.graphs] == ["lookup", "similarity"]


def test_defaults_build_word2vec_first_then_bert_then_elmo(tmp_path: Path) -> None:
    assert DEFAULT_MODELS == ("word2vec", "bert", "elmo")
    for name in ("elmo", "bert", "word2vec"):
        (tmp_path / name / "1").mkdir(parents=True)
        (tmp_path / name / "1" / "spec.json").write_text("{}")
    invocation = parse(["defaults", "--models-dir", str(tmp_path)])
    with console.capture() as captured:
        assert invocation() == []  # everything present: nothing built
    said = re.findall(r"(\w+): (present|missing)", captured.get())
    assert said == [(name, "present") for name in DEFAULT_MODELS]


def test_evaluate_refuses_a_model_that_is_not_there(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no model 'bert' in"):
        parse(["evaluate", "bert", "--models-dir", str(tmp_path)])()
    with pytest.raises(SystemExit, match="no default model in"):
        parse(["evaluate", "--compare", "--models-dir", str(tmp_path)])()


def _offences(tree: ast.AST) -> list[str]:
    found: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        function = node.func
        if (
            isinstance(function, ast.Name)
            and function.id == "getattr"
            and len(node.args) == 3
            and isinstance(node.args[0], ast.Name)
            and node.args[0].id == "args"
        ):
            found.append(f"line {node.lineno}: getattr(args, ...) with a default")
        if isinstance(function, ast.Attribute) and function.attr == "Namespace":
            found.append(f"line {node.lineno}: a Namespace built by hand")
    return found


def test_no_namespace_is_fabricated_and_no_flag_is_guessed() -> None:
    offences = {
        str(path.relative_to(EXPORT)): found
        for path in EXPORT.rglob("*.py")
        if (found := _offences(ast.parse(path.read_text())))
    }
    assert offences == {}
