"""The CPU image's dependency set, without Docker: the steps of deploy/Dockerfile's builder
stage (the hashed build lock into one venv, the hashed serving lock into another, the
project's wheel built from exactly what the image copies and installed with ``--no-deps``),
then a server from that venv answers an Embed. What imports anything outside the lock fails
here, not in production."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from service.client import EmbeddingClient
from tests.integration.server_process import ServerProcess
from tests.unit.deploy import dockerfiles as df

pytestmark = pytest.mark.slow
PIP_TIMEOUT_S = 600


def run(*command: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def clean_environment() -> dict[str, str]:
    """This machine's environment without the test venv's or the repository's paths."""
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("EMBED_")}


def copy_context(destination: Path) -> None:
    """What the Dockerfile's builder stage copies from the build context (.dockerignore
    applied): the project's packaging files and the packages the server imports."""
    locks = {path.relative_to(df.REPO).as_posix() for path in df.LOCKS.values()}
    locks.add(df.BUILD_LOCK.relative_to(df.REPO).as_posix())
    for source in df.copy_sources(df.DOCKERFILES["cpu"]):
        if source in locks or source.rstrip("/") == "models":  # the locks; the bundled stage
            continue
        origin = df.REPO / source
        if origin.is_dir():
            shutil.copytree(
                origin,
                destination / source,
                ignore=lambda folder, names: [
                    n
                    for n in names
                    if not df.context_includes((Path(folder) / n).relative_to(df.REPO).as_posix())
                ],
            )
        else:
            shutil.copy2(origin, destination / source)


def test_the_serving_lock_alone_serves_an_embed(imported: dict[str, Path], tmp_path: Path) -> None:
    base_python = getattr(sys, "_base_executable", sys.executable)
    build, serve = tmp_path / "build-venv", tmp_path / "serve-venv"
    run(base_python, "-m", "venv", build)
    run(build / "bin" / "pip", "install", "--require-hashes", "-r", df.BUILD_LOCK)
    run(base_python, "-m", "venv", serve)
    run(serve / "bin" / "pip", "install", "--require-hashes", "-r", df.LOCKS["cpu"])
    source = tmp_path / "src"
    source.mkdir()
    copy_context(source)
    assert not (source / "export").exists() and not (source / "tests").exists()
    wheels = tmp_path / "wheels"
    run(build / "bin" / "pip", "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir",
        wheels, source)  # fmt: skip
    (wheel,) = wheels.glob("embedding_service-*.whl")
    run(serve / "bin" / "pip", "install", "--no-deps", wheel)

    # Exactly the lock, plus the project (and the venv's own pip and setuptools).
    listed = json.loads(run(serve / "bin" / "pip", "list", "--format", "json"))
    installed: dict[str, str] = {canonicalize_name(p["name"]): p["version"] for p in listed}
    expected = {name: pin.version for name, pin in df.pins(df.LOCKS["cpu"]).items()}
    extra = set(installed) - set(expected) - {"embedding-service", "pip", "setuptools"}
    assert not extra, f"installed beyond the lock: {extra}"
    assert all(installed[name] == version for name, version in expected.items())
    where = run(
        serve / "bin" / "python", "-c", "import service; print(service.__file__)", cwd=tmp_path
    )
    assert str(serve) in where  # the installed package, not the repository's

    with ServerProcess(
        serve / "bin" / "python",
        imported["models"],
        tmp_path / "server.log",
        ["--models", "tiny-mlm"],
        env=clean_environment(),
        cwd=tmp_path,
    ) as server:
        server.start()
        with EmbeddingClient(server.target, retries=0) as client:
            response = client.embed(["served from the image's dependency set"], "tiny-mlm")
            assert len(response.embeddings) == 1 and response.dim > 0
            assert len(response.embeddings[0].values) == response.dim
        env = clean_environment() | {"EMBED_PORT": str(server.port)}
        done = subprocess.run(
            [serve / "bin" / "python", "-m", "service.healthcheck"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
