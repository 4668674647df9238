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

# Evaluation runs the served runtime itself, so ``export`` may import ``service.runtime`` and
# nothing else of ``service`` (the types its methods take, ``EmbedOptions`` and ``Pooling``, are
# re-exported by ``service.runtime.base``). What the runtime needs of the rest of ``service`` is
# a fixed list, and nothing else of ``service`` may be reached from ``export`` or the runtime.
RUNTIME = "service.runtime"
RUNTIME_INTERFACE: tuple[str, ...] = ()
RUNTIME_NEEDS = frozenset({"service", "service.domain", "service.errors"})  # modules, exactly
# package → project modules it may reach although its FORBIDDEN set names their top level
ALLOWED = {"export": (RUNTIME,)}  # these packages and everything in them
ALLOWED_MODULES = {"export": RUNTIME_NEEDS}  # these modules only


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


def within(name: str, prefixes: tuple[str, ...] | frozenset[str]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def in_package(name: str, package: str) -> bool:
    return within(name, (package.replace("/", "."),))


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
    allowed = ALLOWED.get(package, ())
    allowed_modules = ALLOWED_MODULES.get(package, frozenset())
    violations = []
    for name in sorted(files):
        if not in_package(name, package):
            continue
        for imported in reachable(name, files):
            if within(imported, allowed) or imported in allowed_modules:
                continue
            top = imported.split(".")[0]
            if top in FORBIDDEN[package] or imported.startswith(
                tuple(f"{forbidden}." for forbidden in FORBIDDEN[package] if "." in forbidden)
            ):
                violations.append(f"{name} → {imported}")
    assert not violations, (
        f"{package} must not import {sorted(FORBIDDEN[package])} (allowed: "
        f"{[*allowed, *sorted(allowed_modules)]}): {violations}"
    )


def test_export_imports_nothing_of_service_but_the_runtime() -> None:
    """Directly, an export module imports of ``service`` only the runtime and its types."""
    files = project_files()
    allowed = (RUNTIME, *RUNTIME_INTERFACE)
    violations = [
        f"{name} → {imported}"
        for name in sorted(files)
        if in_package(name, "export")
        for imported in imports_of(files[name])
        if in_package(imported, "service") and not within(imported, allowed)
    ]
    assert not violations, f"export may import only {list(allowed)} of service: {violations}"


def test_the_runtime_reaches_only_its_listed_service_modules() -> None:
    """What ``export`` reaches through the runtime stays this list: a new ``service`` import in
    the runtime (config, metrics, the batcher…) fails here, not silently in ``export``."""
    files = project_files()
    violations = [
        f"{name} → {imported}"
        for name in sorted(files)
        if in_package(name, RUNTIME)
        for imported in reachable(name, files)
        if in_package(imported, "service")
        and not within(imported, (RUNTIME,))
        and imported not in RUNTIME_NEEDS
    ]
    assert not violations, (
        f"{RUNTIME} may reach only {sorted(RUNTIME_NEEDS)} of the rest of service: {violations}"
    )
