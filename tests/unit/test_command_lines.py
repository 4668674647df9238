"""Every command line of the project refuses abbreviated options: with argparse's prefix
matching, ``python -m export word2vec --train --corpus my.txt`` silently meant ``--corpus-dir``
and trained on the generated corpus instead."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

from export.__main__ import main as export_main

ROOT = Path(__file__).resolve().parents[2]


def parsers_with_prefix_matching() -> list[str]:
    """Every ``ArgumentParser(...)`` and ``add_parser(...)`` call without ``allow_abbrev=False``."""
    tracked = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    found = []
    for name in tracked:
        path = ROOT / name
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            called = getattr(node.func, "attr", getattr(node.func, "id", ""))
            abbrev = [k.value for k in node.keywords if k.arg == "allow_abbrev"]
            refused = (
                len(abbrev) == 1
                and isinstance(abbrev[0], ast.Constant)
                and abbrev[0].value is False
            )
            if called in ("ArgumentParser", "add_parser") and not refused:
                found.append(f"{name}:{node.lineno}")
    return found


def test_no_parser_matches_option_prefixes() -> None:
    assert parsers_with_prefix_matching() == []


def test_an_abbreviated_option_is_an_error_not_another_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as raised:
        export_main(["word2vec", "--train", "--corpus", "my.txt"])
    assert raised.value.code == 2
    assert "unrecognized arguments: --corpus" in capsys.readouterr().err
