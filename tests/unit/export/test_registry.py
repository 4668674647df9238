"""Every registered architecture has a test that validates its export against the source."""

from __future__ import annotations

import ast
from pathlib import Path

from export.bert.family import FAMILY
from export.registry import ARCHITECTURES

TESTS = Path(__file__).resolve().parents[2]


def validated_architectures() -> set[str]:
    """Names given to ``validates_architecture(...)`` markers anywhere in the tests."""
    names: set[str] = set()
    for path in TESTS.rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "validates_architecture"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                names.add(str(node.args[0].value))
    return names


def test_every_registered_architecture_has_a_validation_test() -> None:
    missing = set(ARCHITECTURES) - validated_architectures()
    assert not missing, f"architectures without a validation test: {sorted(missing)}"


def test_every_member_of_the_bert_family_has_a_validation_test() -> None:
    missing = set(FAMILY) - validated_architectures()
    assert not missing, f"BERT-family architectures without a validation test: {sorted(missing)}"
