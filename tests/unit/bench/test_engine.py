"""``python -m bench --device``: servers and raw sessions of one run share one engine, and
``cuda`` where onnxruntime has no CUDA provider is refused before anything is built."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import pytest

from bench.__main__ import main
from bench.common.servers import Engine, bench_settings
from service.app import session_options

CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.parametrize(
    "engine",
    [Engine(), Engine(device="cuda", threads=3), Engine(threads=2, io_binding="on")],
)
def test_bench_servers_open_their_sessions_as_the_raw_sessions(
    engine: Engine, tmp_path: Path
) -> None:
    """What a bench server's settings turn into is exactly the raw replay's session options."""
    assert session_options(bench_settings(tmp_path, "bert", engine)) == engine.session_options()


def test_each_device_benches_its_own_reduced_precision() -> None:
    assert (Engine(device="cpu").precision, Engine(device="cuda").precision) == ("int8", "fp16")


def test_cuda_without_a_cuda_build_is_refused_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The wire section needs no model, so nothing is built either way; a CUDA build goes on
    and runs it."""
    models = tmp_path / "models"
    code = main(["--device", "cuda", "--sections", "wire", "--models-dir", str(models)])
    assert not models.exists()
    if CUDA:
        assert code == 0
        return
    assert code == 2
    assert "no CUDA provider" in capsys.readouterr().out
