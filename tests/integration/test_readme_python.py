"""The README's "From Python" examples run as written, each in its own interpreter, against a
real server serving tiny models under the default names (``make examples`` does the same for
the README's console commands). Only the address is changed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from export.bert.exporter import import_bert
from export.word2vec.exporter import import_word2vec
from tests.checkpoints import save_mlm_checkpoint
from tests.integration.harness import ServerThread, running_server
from tests.word2vec_files import save_c_formats, train_tiny_vectors

ROOT = Path(__file__).resolve().parents[2]
ADDRESS = "localhost:50051"
SECTION = "## From Python"


def python_blocks(readme: str) -> list[str]:
    """The ```python blocks of the README's "From Python" section."""
    start = readme.index(f"\n{SECTION}\n")
    end = readme.find("\n## ", start + 1)
    section = readme[start : end if end >= 0 else None]
    return re.findall(r"^```python\n(.*?)^```$", section, flags=re.DOTALL | re.MULTILINE)


BLOCKS = python_blocks((ROOT / "README.md").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def default_names(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """A server with a tiny BERT as "bert" and tiny word2vec vectors as "word2vec"."""
    root = tmp_path_factory.mktemp("readme")
    models = root / "models"
    import_bert(save_mlm_checkpoint(root / "mlm"), models, "bert")
    vectors = save_c_formats(train_tiny_vectors(), root / "word2vec")["binary"]
    import_word2vec(vectors, True, models, "word2vec")
    with running_server(models) as server:
        yield server


def test_the_section_has_a_blocking_and_an_asyncio_example() -> None:
    assert len(BLOCKS) >= 2
    assert all(ADDRESS in block for block in BLOCKS)
    joined = "\n".join(BLOCKS)
    for name in ("EmbeddingClient(", "AsyncEmbeddingClient(", "vectors("):
        assert name in joined
    for method in ("embed", "fill_mask", "most_similar"):
        assert f"client.{method}(" in joined


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_each_python_example_runs(default_names: ServerThread, index: int) -> None:
    code = BLOCKS[index].replace(ADDRESS, default_names.target)
    ran = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip(), "the example printed nothing"
    assert ran.stderr == ""
