"""The rebuild command a refused model names is derived from where its weights came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelrepo.rebuild import rebuild_command
from tests.unit.modelrepo.test_repository import make_spec

HERE = Path("models/tiny/1")


@pytest.mark.parametrize(
    ("name", "architecture", "source", "command"),
    [
        ("bert", "bert", "hf:/repo/build/checkpoints/bert", "python -m export defaults"),
        ("word2vec", "word2vec", "word2vec-binary:/r/build/checkpoints/word2vec/vectors.bin",
         "python -m export defaults"),
        ("small", "bert", "hf:/r/build/checkpoints/small",
         "python -m export bert --train --name small"),
        ("tiny", "bert", "hf:/ckpt/mlm", "python -m export bert --from-hf /ckpt/mlm --name tiny"),
        ("news", "word2vec", "word2vec-binary:/v/news.bin",
         "python -m export word2vec --from-file /v/news.bin --binary --name news"),
        ("glove", "word2vec", "word2vec-text:/v/g.txt",
         "python -m export word2vec --from-file /v/g.txt --name glove"),
        ("big", "elmo", "bilm-hdf5:/e/weights.hdf5",
         "python -m export elmo --options /e/options.json --weights /e/weights.hdf5 --name big"),
    ],
)  # fmt: skip
def test_rebuild_command_follows_the_source(
    name: str, architecture: str, source: str, command: str
) -> None:
    spec = make_spec(name).model_copy(update={"architecture": architecture, "source": source})
    assert rebuild_command(spec, HERE) == f"rm -r {HERE} && {command}"


@pytest.mark.parametrize(
    ("name", "source", "precision", "command"),
    [
        ("bert", "hf:/repo/build/checkpoints/bert", "int8",
         "python -m export bert --train --name bert --quantize int8"),
        ("tiny", "hf:/ckpt/mlm", "fp16",
         "python -m export bert --from-hf /ckpt/mlm --name tiny --fp16"),
    ],
)  # fmt: skip
def test_rebuild_command_keeps_a_reduced_precision(
    name: str, source: str, precision: str, command: str
) -> None:
    spec = make_spec(name).model_copy(update={"source": source, "precision": precision})
    assert rebuild_command(spec, HERE) == f"rm -r {HERE} && {command}"
