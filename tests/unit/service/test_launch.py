"""The launcher's command lines: server options pass through untouched, and the builder reads
the repository the server will serve."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from service.launch import DEFAULT_BUILDER, exit_status, models_dir_of, parse_args


def test_every_other_option_goes_to_the_server_in_order() -> None:
    config = parse_args(["--model-control", "poll", "--port=6000", "--models", "a", "b"])
    assert config.server_command == (
        sys.executable, "-m", "service", "--model-control", "poll", "--port=6000",
        "--models", "a", "b",
    )  # fmt: skip


def test_a_double_dash_separates_launcher_and_server_options() -> None:
    config = parse_args(["--stop-timeout-s", "5", "--", "--model-control", "poll"])
    assert config.server_command[3:] == ("--model-control", "poll")
    assert config.stop_timeout_s == 5.0


def test_the_default_builder_is_export_defaults_on_the_servers_repository() -> None:
    config = parse_args(["--", "--models-dir", "/srv/models", "--port", "0"])
    assert config.builder_command == (
        *shlex.split(DEFAULT_BUILDER), "--models-dir", "/srv/models",
    )  # fmt: skip
    assert config.builder_command[1:4] == ("-m", "export", "defaults")


def test_the_builder_command_can_be_replaced_or_left_out() -> None:
    config = parse_args(["--builder", "python build.py --fast", "--models-dir=/m"])
    assert config.builder_command == ("python", "build.py", "--fast", "--models-dir", "/m")
    assert parse_args(["--no-builder"]).builder_command is None


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--models-dir", "/a"], "/env", Path("/a")),
        (["--models-dir=/b"], None, Path("/b")),
        (["--port", "0"], "/env", Path("/env")),
        ([], None, Path("models")),
    ],
)
def test_models_dir_as_the_server_reads_it(
    args: list[str], env: str | None, expected: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if env is None:
        monkeypatch.delenv("EMBED_MODELS_DIR", raising=False)
    else:
        monkeypatch.setenv("EMBED_MODELS_DIR", env)
    assert models_dir_of(args) == expected


def test_exit_status_is_the_shells() -> None:
    assert [exit_status(code) for code in (0, 2, -2, -9)] == [0, 2, 130, 137]
