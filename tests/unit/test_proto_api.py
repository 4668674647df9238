"""The gate on the public API: proto/ passes `buf lint` and `buf breaking` against
proto/released.json (the API as last released, `make proto-release`), and copies of it with
a breaking edit fail the same check."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUF = ROOT / "build/tools/node_modules/.bin/buf"
RELEASED = ROOT / "proto/released.json"
PROTO = Path("embedding/v1/embedding.proto")


def run_buf(*arguments: str | Path, cache: Path) -> subprocess.CompletedProcess[str]:
    if not BUF.exists():
        pytest.fail(f"{BUF.relative_to(ROOT)} is missing: `make test-tools` installs buf")
    return subprocess.run(
        [BUF, *arguments, "--error-format=json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "BUF_CACHE_DIR": str(cache)},
    )


def api_problems(proto: Path, released: Path, cache: Path) -> list[str]:
    """What `buf lint` and `buf breaking` find in ``proto`` (a directory with buf.yaml), each
    as "RULE_ID: message" (a file that does not compile: the compiler's error); [] when none."""
    problems = []
    for command in (("lint", proto), ("breaking", proto, "--against", released)):
        result = run_buf(*command, cache=cache)
        for line in (result.stdout + result.stderr).splitlines():
            try:
                found = json.loads(line)
                problems.append(f"{found['type']}: {found['message']}")
            except (json.JSONDecodeError, KeyError, TypeError):
                problems.append(line)
        if result.returncode != 0 and not problems:
            problems.append(f"buf {command[0]} exited {result.returncode}")
    return problems


def edited_copy(directory: Path, *edits: tuple[str, str]) -> Path:
    """proto/ (buf.yaml and the .proto file) copied under ``directory`` with each (old, new)
    replaced once: old must be there, so an edit that no longer applies fails the test."""
    proto = directory / "proto"
    (proto / PROTO.parent).mkdir(parents=True)
    shutil.copy(ROOT / "proto/buf.yaml", proto / "buf.yaml")
    text = (ROOT / "proto" / PROTO).read_text()
    for old, new in edits:
        assert text.count(old) == 1, f"{old!r} is not in {PROTO} exactly once"
        text = text.replace(old, new)
    (proto / PROTO).write_text(text)
    return proto


def rules(problems: list[str]) -> set[str]:
    return {problem.split(":")[0] for problem in problems}


NORMALIZE = "  bool normalize = 7 [deprecated = true];\n"
RESERVED_NORMALIZE = '  reserved 7;\n  reserved "normalize";\n'


def test_the_api_passes_lint_and_keeps_every_released_name_and_number(tmp_path: Path) -> None:
    assert api_problems(ROOT / "proto", RELEASED, tmp_path) == []


def test_the_released_snapshot_is_an_image_of_embedding_v1() -> None:
    (released,) = json.loads(RELEASED.read_text())["file"]
    assert (released["name"], released["package"]) == (str(PROTO), "embedding.v1")
    assert [service["name"] for service in released["service"]] == ["EmbeddingService"]


@pytest.mark.parametrize(
    ("edit", "rule"),
    [
        pytest.param((NORMALIZE, ""), "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED", id="removed"),
        pytest.param(
            ("bool normalize = 7 [", "bool normalize = 17 ["),
            "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED",
            id="renumbered",
        ),
        pytest.param(
            ("uint32 top_k = 4;              // 0: 5", "string top_k = 4;"),
            "FIELD_SAME_TYPE",
            id="retyped",
        ),
        pytest.param(("bool truncate = 8;", "bool cut = 8;"), "FIELD_SAME_NAME", id="renamed"),
        pytest.param(
            ("  POOLING_MAX = 3;", "  POOLING_MAXIMUM = 3;"), "ENUM_VALUE_SAME_NAME", id="enum"
        ),
        pytest.param(
            ("  rpc GetModel(GetModelRequest) returns (ModelInfo);\n", ""),
            "RPC_NO_DELETE",
            id="rpc",
        ),
        pytest.param(
            ("rpc Embed(EmbedRequest)", "rpc Embed(stream EmbedRequest)"),
            "RPC_SAME_CLIENT_STREAMING",
            id="streaming",
        ),
    ],
)
def test_a_breaking_edit_fails_the_gate(tmp_path: Path, edit: tuple[str, str], rule: str) -> None:
    problems = api_problems(edited_copy(tmp_path, edit), RELEASED, tmp_path)
    assert rule in rules(problems), problems


def test_a_field_may_go_only_with_its_number_and_name_reserved(tmp_path: Path) -> None:
    both = edited_copy(tmp_path / "both", (NORMALIZE, RESERVED_NORMALIZE))
    assert api_problems(both, RELEASED, tmp_path) == []
    number_only = edited_copy(tmp_path / "number", (NORMALIZE, "  reserved 7;\n"))
    assert rules(api_problems(number_only, RELEASED, tmp_path)) == {
        "FIELD_NO_DELETE_UNLESS_NAME_RESERVED"
    }


def test_a_reserved_number_is_never_used_again(tmp_path: Path) -> None:
    # A release that removed `normalize` and reserved it, then two ways to reuse number 7.
    release = edited_copy(tmp_path / "release", (NORMALIZE, RESERVED_NORMALIZE))
    released = tmp_path / "released.json"
    built = run_buf("build", release, "--exclude-source-info", "-o", released, cache=tmp_path)
    assert built.returncode == 0, built.stderr
    reused = "  string style = 7;\n"
    unreserved = edited_copy(tmp_path / "unreserved", (NORMALIZE, reused))
    assert "RESERVED_MESSAGE_NO_DELETE" in rules(api_problems(unreserved, released, tmp_path))
    kept = edited_copy(tmp_path / "kept", (NORMALIZE, RESERVED_NORMALIZE + reused))
    problems = api_problems(kept, released, tmp_path)
    assert rules(problems) == {"COMPILE"}, problems
    assert all("reserved field number" in problem for problem in problems), problems


def test_lint_holds_new_definitions_to_the_style(tmp_path: Path) -> None:
    unprefixed = edited_copy(tmp_path, ("  POOLING_NONE = 4;", "  POOLING_NONE = 4;\n  SUM = 6;"))
    assert "ENUM_VALUE_PREFIX" in rules(api_problems(unprefixed, RELEASED, tmp_path))


def test_an_added_field_passes(tmp_path: Path) -> None:
    added = edited_copy(
        tmp_path,
        ("CachePolicy cache_policy = 10;", "CachePolicy cache_policy = 10;\n  string note = 20;"),
    )
    assert api_problems(added, RELEASED, tmp_path) == []
