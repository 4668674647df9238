"""The console command, run as ``python -m service.client`` against the recording server: what
it sends, what it prints, and a help text that describes every option with its default."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from proto.embedding.v1 import embedding_pb2 as pb
from service.client.cli import _parser
from tests.unit.service.client.recording import RecordingServicer

ROOT = Path(__file__).resolve().parents[4]
LONG = "the cook peeled a mushy apple in the steamy kitchen . " * 1_800  # 97,200 characters


def run_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    """The command in a child process; a deprecated call of its own fails it."""
    return subprocess.run(
        [
            sys.executable,
            *("-W", "error::RuntimeWarning", "-W", "error::DeprecationWarning:service.client.cli"),
            *("-m", "service.client", *arguments),
        ],
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"},  # rich wraps table cells to the terminal
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_console_command_runs_as_a_module(server: tuple[str, RecordingServicer]) -> None:
    target, recorder = server
    models = run_cli("--target", target, "models")
    assert models.returncode == 0, models.stderr
    assert "recorded-model" in models.stdout
    healthy = run_cli("--target", target, "health")
    assert (healthy.returncode, healthy.stdout.strip()) == (0, "SERVING")
    embedded = run_cli("--target", target, "embed", "--model", "bert", "--json", "abc", "de")
    assert embedded.returncode == 0, embedded.stderr
    assert embedded.stdout.strip() == "[[3.0, 1.0], [2.0, 1.0]]"
    assert [method for method, _, _ in recorder.calls] == ["ListModels", "Embed"]


def test_every_command_calls_the_server_without_deprecated_calls(
    server: tuple[str, RecordingServicer],
) -> None:
    target, recorder = server
    for command in (
        ("embed", "--model", "bert", "a b"),
        ("fill-mask", "--model", "bert", "the [MASK] ."),
        ("similar", "--model", "word2vec", "apple", "--negative", "mushy"),
        ("tokenize", "--model", "bert", "a b"),
    ):
        answer = run_cli("--target", target, *command)
        assert answer.returncode == 0, (command, answer.stderr)
    methods = [method for method, _, _ in recorder.calls]
    assert methods == ["Embed", "FillMask", "MostSimilar", "Tokenize"]


def parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """The command's parser and each subcommand's, by name."""
    parser = _parser()
    yield parser.prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def described(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    return (action for action in parser._actions if action.help is not argparse.SUPPRESS)


def test_every_option_of_every_command_has_help() -> None:
    """Options added later are covered too: each argument of each parser is looked at."""
    names = []
    for name, parser in parsers():
        assert parser.allow_abbrev is False, name  # "--mod" is not taken for "--model"
        for action in described(parser):
            assert action.help and action.help.strip(), (name, action.dest)
            names.append(name)
    assert {"embed", "fill-mask", "similar", "tokenize", "models", "health"} <= set(names)


def test_every_default_is_shown() -> None:
    """An option whose default is more than "off" or "not given" says what it is."""
    for name, parser in parsers():
        formatter = parser._get_formatter()
        for action in described(parser):
            if not action.option_strings or action.default in (None, False, argparse.SUPPRESS):
                continue
            shown = formatter._expand_help(action)
            assert "default" in shown, (name, action.option_strings, shown)


def test_help_is_plain_text_with_the_connection_defaults() -> None:
    command = _parser()
    for name, _ in parsers():
        arguments = ["--help"] if name == command.prog else [name, "--help"]
        shown = run_cli(*arguments)
        assert shown.returncode == 0, shown.stderr
        assert "``" not in shown.stdout, name
        if name == command.prog:
            flat = " ".join(shown.stdout.split())
            assert "(default: 127.0.0.1:50051)" in flat
            assert "seconds per call (default: 30.0)" in flat


def table_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def test_long_texts_are_shortened_in_tables_unless_full(
    server: tuple[str, RecordingServicer],
) -> None:
    target, recorder = server
    short = run_cli("--target", target, "embed", "--model", "bert", LONG, "a short text")
    assert short.returncode == 0, short.stderr
    assert len(table_lines(short.stdout)) < 20
    assert "… (97,200 characters)" in short.stdout
    assert "a short text" in short.stdout
    assert "a short text…" not in short.stdout
    full = run_cli("--target", target, "embed", "--model", "bert", "--full", LONG)
    assert full.returncode == 0, full.stderr
    assert "characters)" not in full.stdout
    assert full.stdout.count("mushy") == LONG.count("mushy")
    (_, sent, _), _ = recorder.calls
    assert isinstance(sent, pb.EmbedRequest) and sent.texts[0] == LONG  # sent whole, always


def test_fill_mask_shortens_its_titles_and_sequences(
    server: tuple[str, RecordingServicer],
) -> None:
    target, _ = server
    masked = "the [MASK] peeled it . " + LONG
    filled = run_cli("--target", target, "fill-mask", "--model", "bert", masked)
    assert filled.returncode == 0, filled.stderr
    assert len(table_lines(filled.stdout)) < 20
    sequence = masked.replace("[MASK]", "word")  # as the recording server fills it
    assert f"the [MASK] peeled it . {LONG[:57]}… ({len(masked):,} characters)" in filled.stdout
    assert f"the word peeled it . {LONG[:59]}… ({len(sequence):,} characters)" in filled.stdout
    full = run_cli("--target", target, "fill-mask", "--model", "bert", "--full", masked)
    assert full.stdout.count("mushy") == 2 * LONG.count("mushy")


def test_fill_mask_truncate_is_sent(server: tuple[str, RecordingServicer]) -> None:
    target, recorder = server
    for flags in ((), ("--truncate",)):
        answer = run_cli("--target", target, "fill-mask", "--model", "bert", *flags, "a [MASK]")
        assert answer.returncode == 0, answer.stderr
    (_, plain, _), (_, truncating, _) = recorder.calls
    assert isinstance(plain, pb.FillMaskRequest) and isinstance(truncating, pb.FillMaskRequest)
    assert (plain.truncate, truncating.truncate) == (False, True)


def model_rows(output: str) -> dict[str, list[str]]:
    """The models table's rows by model name, each a list of cells."""
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.replace("┃", "│").split("│")[1:-1]]
        if cells and cells[0]:
            rows[cells[0]] = cells
    return rows


def test_models_shows_each_state_and_what_is_not_known_yet(
    server: tuple[str, RecordingServicer],
) -> None:
    target, recorder = server
    recorder.models = [
        pb.ModelInfo(
            name="bert",
            version="3",
            architecture="bert",
            dim=64,
            num_layers=2,
            max_sequence_length=128,
            capabilities=["embed", "fill_mask"],
            ready=True,
            state=pb.MODEL_STATE_READY,
        ),
        pb.ModelInfo(
            name="elmo", state=pb.MODEL_STATE_LOADING, state_reason="being built by the builder"
        ),
        pb.ModelInfo(
            name="broken", version="2", state=pb.MODEL_STATE_FAILED, state_reason="bad spec.json"
        ),
    ]
    listed = run_cli("--target", target, "models")
    assert listed.returncode == 0, listed.stderr
    rows = model_rows(listed.stdout)
    header = rows.pop("name")
    bert, elmo, broken = (
        dict(zip(header, rows[name], strict=True)) for name in ("bert", "elmo", "broken")
    )
    assert (bert["state"], bert["version"], bert["dim"], bert["layers"]) == (
        "ready",
        "3",
        "64",
        "2",
    )
    assert bert["max tokens"] == "128" and bert["reason"] == ""
    assert elmo["state"] == "loading" and elmo["reason"] == "being built by the builder"
    for column in ("version", "architecture", "dim", "layers", "max tokens", "normalized"):
        assert elmo[column] == "-", column
    assert (broken["state"], broken["version"], broken["dim"]) == ("failed", "2", "-")
    assert broken["reason"] == "bad spec.json"
    recorder.models = recorder.models[:1]
    ready = run_cli("--target", target, "models")
    assert ready.returncode == 0, ready.stderr
    assert "reason" not in model_rows(ready.stdout)["name"]  # no column when nothing to say
