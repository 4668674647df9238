"""``python -m export config``: a model's config.json written as the server reads it."""

from __future__ import annotations

from pathlib import Path

import pytest

from export.__main__ import main
from modelrepo.model_config import ModelConfigReader, read_model_config
from service.batching import BatchingConfig
from service.batching.limits import ModelBatching
from tests.unit.modelrepo.test_repository import make_spec, publish


@pytest.fixture
def models(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    publish(root, make_spec("tiny", 1))
    return root


def batching(models: Path, defaults: BatchingConfig) -> ModelBatching:
    """The server's view of the models' batching, with the cost model on server-wide."""
    return ModelBatching(ModelConfigReader(models), defaults, cost_model=True, budget_s=3.0)


def configure(models: Path, *argv: str) -> int:
    return main(["config", "tiny", "--models-dir", str(models), *argv])


def test_limits_are_merged_and_applied_over_the_server_settings(models: Path) -> None:
    assert configure(models, "--max-batch-size", "8", "--cost-model", "off") == 0
    assert configure(models, "--max-queue-delay-ms", "0.5", "--latest", "2") == 0
    config = read_model_config(models / "tiny")
    assert config is not None and config.batching is not None
    assert (config.batching.max_batch_size, config.batching.max_queue_delay_ms) == (8, 0.5)
    assert config.version_policy is not None and config.version_policy.latest == 2
    shaping = batching(models, BatchingConfig(max_batch_size=32, max_batch_tokens=999))
    limits = shaping.limits("tiny")
    assert (limits.max_batch_size, limits.max_batch_tokens, limits.max_queue_delay_ms) == (
        8,
        999,
        0.5,
    )
    assert not shaping.measures("tiny")  # the model's "off" wins over the server's "on"
    assert configure(models, "--cost-model", "on", "--specific", "1") == 0
    config = read_model_config(models / "tiny")
    assert config is not None and config.batching is not None
    assert config.batching.max_batch_size == 8 and config.batching.cost_model == "on"
    assert config.version_policy is not None and config.version_policy.specific == (1,)


def test_reset_removes_the_file(models: Path) -> None:
    configure(models, "--max-batch-size", "4")
    assert configure(models, "--reset") == 0
    assert read_model_config(models / "tiny") is None
    shaping = batching(models, BatchingConfig(max_batch_size=32))
    assert shaping.limits("tiny").max_batch_size == 32
    assert shaping.measures("tiny")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-batch-size", "0"], "max_batch_size"),
        (["--latest", "0"], "latest"),
        ([], "nothing to set"),
        (["--reset", "--max-batch-size", "3"], "give it alone"),
    ],
)
def test_bad_values_are_refused_with_the_field(models: Path, argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        configure(models, *argv)
    assert read_model_config(models / "tiny") is None


def test_an_unknown_model_is_refused(models: Path) -> None:
    with pytest.raises(SystemExit, match="no model 'other'"):
        main(["config", "other", "--models-dir", str(models), "--max-batch-size", "2"])


def test_a_broken_config_leaves_the_server_settings(models: Path) -> None:
    (models / "tiny" / "config.json").write_text('{"batching": {"max_batch_sise": 3}}')
    shaping = batching(models, BatchingConfig(max_batch_size=32))
    assert shaping.limits("tiny").max_batch_size == 32
    assert shaping.measures("tiny")
