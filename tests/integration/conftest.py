"""Models shared by the integration tests: tiny checkpoints imported through the real exporter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from export.bert.exporter import import_bert
from service.client import EmbeddingClient
from tests.checkpoints import save_encoder_checkpoint, save_mlm_checkpoint
from tests.integration.harness import ServerThread, running_server


@pytest.fixture(scope="session")
def imported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A repository with a random BertForMaskedLM ("tiny-mlm") and a BertModel ("tiny-encoder")."""
    root = tmp_path_factory.mktemp("imported")
    models = root / "models"
    mlm = save_mlm_checkpoint(root / "mlm")
    encoder = save_encoder_checkpoint(root / "encoder")
    import_bert(mlm, models, "tiny-mlm")
    import_bert(encoder, models, "tiny-encoder")
    return {"models": models, "tiny-mlm": mlm, "tiny-encoder": encoder}


@pytest.fixture(scope="module")
def server(imported: dict[str, Path]) -> Iterator[ServerThread]:
    with running_server(imported["models"]) as running:
        yield running


@pytest.fixture
def client(server: ServerThread) -> Iterator[EmbeddingClient]:
    with EmbeddingClient(server.target, timeout=30) as connected:
        yield connected
