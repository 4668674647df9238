"""The lexicon's data files: all shipped with the package, all read, malformed lines refused."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from export.corpus import TOPICS
from export.lexicon.entries import parse_topic

ROOT = Path(__file__).resolve().parents[3]
LEXICON = ROOT / "export" / "lexicon"


def _data_files() -> set[str]:
    return {
        path.relative_to(LEXICON).as_posix()
        for path in LEXICON.rglob("*")
        if path.is_file() and path.suffix not in {".py", ".pyc"}
    }


def test_every_data_file_is_package_data() -> None:
    """A file the patterns miss would be absent from an installed package."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["export.lexicon"]
    shipped = {
        path.relative_to(LEXICON).as_posix()
        for pattern in patterns
        for path in LEXICON.glob(pattern)
        if path.is_file()
    }
    assert shipped == _data_files()


def test_every_topic_file_is_a_listed_topic() -> None:
    topic_files = {name for name in _data_files() if name.startswith("topics/")}
    assert topic_files == {f"topics/{topic}.txt" for topic in TOPICS}
    assert "lexicon.toml" in _data_files()


@pytest.mark.parametrize(
    "line", ["chef: grumpy | sliced | kitchen | extra", "in the kitchen: tidy", "kitchen: tidy"]
)
def test_a_line_of_no_known_shape_is_refused_with_its_place(line: str) -> None:
    with pytest.raises(ValueError, match=r"topics/food\.txt line 2: no entry shape fits"):
        parse_topic("food", f"cook: busy | boiled\n{line}\n")
