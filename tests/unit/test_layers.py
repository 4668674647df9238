"""The layer rules of the architecture, checked on every module's imports (direct and indirect)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# package → top-level modules it must never import, directly or through project modules
FORBIDDEN = {
    "service/transport": {"onnxruntime", "redis", "torch", "transformers"},
    "service/batching": {"grpc", "grpc_health", "grpc_reflection", "redis", "onnxruntime"},
    "service/runtime": {"grpc", "grpc_health", "grpc_reflection", "redis", "torch", "transformers"},
    "service/cache": {"grpc", "onnxruntime"},
    "service": {"torch", "transformers", "gensim", "h5py", "export"},
    "modelrepo": {"torch", "transformers", "onnxruntime", "onnx", "service", "export"},
    "export": {"service"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Modules imported anywhere in the file (functions included), as absolute names."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def project_files() -> dict[str, Path]:
    files = {}
    for package in ("service", "export", "modelrepo", "bench", "proto"):
        for path in (ROOT / package).rglob("*.py"):
            files[module_name(path)] = path
    return files


def reachable(start: str, files: dict[str, Path]) -> set[str]:
    """Every module imported from ``start``, following project modules transitively."""
    imported: set[str] = set()
    visited = {start}
    todo = [start]
    while todo:
        for name in imports_of(files[todo.pop()]):
            imported.add(name)
            parents = [name.rsplit(".", i)[0] for i in range(name.count(".") + 1)]
            for module in parents:
                if module in files and module not in visited:
                    visited.add(module)
                    todo.append(module)
    return imported


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layer_does_not_import_what_it_must_not(package: str) -> None:
    files = project_files()
    prefix = package.replace("/", ".")
    violations = []
    for name in sorted(files):
        if name != prefix and not name.startswith(prefix + "."):
            continue
        for imported in reachable(name, files):
            top = imported.split(".")[0]
            if top in FORBIDDEN[package] or imported.startswith(
                tuple(f"{forbidden}." for forbidden in FORBIDDEN[package] if "." in forbidden)
            ):
                violations.append(f"{name} → {imported}")
    assert not violations, f"{package} must not import {sorted(FORBIDDEN[package])}: {violations}"
