"""``config.json`` beside a model's versions: the version policy, read and written, and the
server's one cached reader of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelrepo import ModelRepository, SpecError, model_config
from modelrepo.model_config import (
    ALL_VERSIONS,
    CONFIG_FILE,
    NEWEST_ONLY,
    BatchingLimits,
    ModelConfig,
    ModelConfigReader,
    VersionPolicy,
    read_model_config,
    write_model_config,
)


def test_policies_select_versions() -> None:
    on_disk = [3, 1, 4, 2]
    assert NEWEST_ONLY.select(on_disk) == [4]
    assert VersionPolicy(latest=2).select(on_disk) == [3, 4]
    assert VersionPolicy(latest=9).select(on_disk) == [1, 2, 3, 4]
    assert VersionPolicy(specific=(2, 7)).select(on_disk) == [2]
    assert ALL_VERSIONS.select(on_disk) == [1, 2, 3, 4]
    assert NEWEST_ONLY.select([]) == []


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"latest": 1, "all": True},
        {"latest": 0},
        {"specific": []},
        {"specific": [0]},
    ],
)
def test_a_policy_makes_exactly_one_valid_choice(raw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        VersionPolicy.model_validate(raw)


def test_written_config_reads_back(tmp_path: Path) -> None:
    config = ModelConfig(version_policy=VersionPolicy(specific=(1, 3)))
    path = write_model_config(tmp_path / "bert", config)
    assert path == tmp_path / "bert" / CONFIG_FILE
    assert read_model_config(tmp_path / "bert") == config
    assert '"all"' not in path.read_text()  # only what was chosen is written
    assert [p.name for p in (tmp_path / "bert").iterdir()] == [CONFIG_FILE]


def test_missing_config_is_none(tmp_path: Path) -> None:
    assert read_model_config(tmp_path) is None


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("{not json", "not valid JSON"),
        ('{"version_policy": {"newest": 1}}', "version_policy.newest"),
        ('{"scheduling": {}}', "scheduling"),
        ('{"version_policy": {"latest": 1, "specific": [1]}}', "exactly one"),
    ],
)
def test_malformed_config_names_file_and_problem(tmp_path: Path, text: str, named: str) -> None:
    (tmp_path / CONFIG_FILE).write_text(text)
    with pytest.raises(SpecError) as raised:
        read_model_config(tmp_path)
    assert str(tmp_path / CONFIG_FILE) in str(raised.value) and named in str(raised.value)


def test_a_model_directory_without_versions_lists_no_model(tmp_path: Path) -> None:
    """A model being built holds only its marker (and maybe a config) until its first version
    is published: the repository lists it neither as a model nor with versions."""
    write_model_config(tmp_path / "bert", ModelConfig(version_policy=NEWEST_ONLY))
    (tmp_path / "bert" / ".building").write_text("{}")
    (tmp_path / "bert" / ".staging-1-abc").mkdir()
    repository = ModelRepository(tmp_path)
    assert repository.names() == []
    assert repository.versions("bert") == []
    assert repository.next_version("bert") == 1


def test_the_reader_parses_a_file_again_only_when_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[Path] = []

    def counting(model_dir: Path) -> ModelConfig | None:
        parsed.append(model_dir)
        return read_model_config(model_dir)

    monkeypatch.setattr(model_config, "read_model_config", counting)
    reader = ModelConfigReader(tmp_path)
    assert reader.read("bert") == ModelConfig()  # no file: the server's defaults
    pinned = ModelConfig(version_policy=VersionPolicy(specific=(1,)))
    write_model_config(tmp_path / "bert", pinned)
    assert reader.read("bert") == reader.read("bert") == pinned
    assert len(parsed) == 2  # once without the file, once for the file, not again
    wider = ModelConfig(version_policy=VersionPolicy(latest=2))
    write_model_config(tmp_path / "bert", wider)
    assert reader.read("bert") == wider and len(parsed) == 3


def test_the_reader_refuses_a_bad_file_once_and_keeps_what_was_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reader = ModelConfigReader(tmp_path, default_policy=NEWEST_ONLY)
    pinned = ModelConfig(
        version_policy=VersionPolicy(specific=(1,)), batching=BatchingLimits(max_batch_size=4)
    )
    write_model_config(tmp_path / "bert", pinned)
    assert reader.read("bert") == pinned
    (tmp_path / "bert" / CONFIG_FILE).write_text('{"version_policy": {"newest": 1}}')
    assert [reader.read("bert") for _ in range(3)] == [pinned] * 3
    refusals = [r.getMessage() for r in caplog.records if CONFIG_FILE in r.getMessage()]
    assert len(refusals) == 1
    assert "newest" in refusals[0] and "keeps version policy versions [1]" in refusals[0]
    (tmp_path / "bert" / CONFIG_FILE).unlink()
    assert reader.read("bert") == ModelConfig()  # removed: back to the server's defaults
