"""The HTTP API fuzzed from its own OpenAPI document with schemathesis, against a real server
process: generated requests, valid and not, never get a 5xx, every status is one the document
declares and every body has its declared shape. Derandomized, like the gRPC fuzz suite."""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import positive_data_acceptance

from export.word2vec.exporter import import_word2vec
from modelrepo import SPEC_FILE
from tests.integration.server_process import ServerProcess
from tests.word2vec_files import save_c_formats, train_tiny_vectors

HTTP_READY = re.compile(r"HTTP API on http://127\.0\.0\.1:(\d+)/v1$", re.M)
EXAMPLES = {"POST /v1/embeddings": 450, "GET /v1/models/{model}": 150}
"""Per operation and generation mode (the others have nothing to vary: one request each)."""
MODELS = ("bert", "tiny-mlm", "tiny-encoder", "w2v")
"""Served here: most generated requests name one of them, so they reach a model."""
MIN_CASES = 1000
CASES: Counter[str] = Counter()
"""Requests sent per operation and status, checked at the end."""


@pytest.fixture(scope="module")
def http_fuzz_server(
    imported: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A server process with the tiny BERTs (one of them also as ``bert``, the name the
    document's examples use) and a tiny word2vec; its HTTP API's base URL."""
    root = tmp_path_factory.mktemp("http-fuzz")
    models = root / "models"
    shutil.copytree(imported["models"], models)
    shutil.copytree(imported["models"] / "tiny-mlm", models / "bert")
    spec = models / "bert" / "1" / SPEC_FILE
    spec.write_text(json.dumps({**json.loads(spec.read_text()), "name": "bert"}, indent=2))
    files = save_c_formats(train_tiny_vectors(), root / "w2v")
    import_word2vec(files["binary"], True, models, "w2v")
    log = root / "server.log"
    args = ["--http-port", "0", "--cache-memory-mb", "4", "--grace-period-s", "2"]
    with ServerProcess(sys.executable, models, log, args).start() as server:
        found = HTTP_READY.search(log.read_text())
        assert found is not None, log.read_text()
        yield f"http://127.0.0.1:{found.group(1)}"
        assert server.process is not None and server.process.poll() is None, "it stayed up"


def fuzz(operation: schemathesis.APIOperation[Any, Any, Any, Any], mode: GenerationMode) -> None:
    """``EXAMPLES`` generated requests of one operation, each sent to the server and checked."""

    @settings(
        max_examples=EXAMPLES.get(operation.label, 10),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        case=operation.as_strategy(generation_mode=mode),
        served=st.sampled_from(MODELS) | st.none()
        if mode is GenerationMode.POSITIVE
        else st.none(),  # a negative case keeps the part that breaks the schema
    )
    def one(case: schemathesis.Case[Any], served: str | None) -> None:
        if served is not None and isinstance(case.body, dict) and "model" in case.body:
            case.body["model"] = served
        if served is not None and case.path_parameters and "model" in case.path_parameters:
            case.path_parameters["model"] = served
        response = case.call(timeout=60)
        CASES[f"{case.method} {case.path} {response.status_code}"] += 1
        assert response.status_code < 500, (case.body, response.text)
        case.validate_response(response, excluded_checks=[positive_data_acceptance])

    one()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_gets_a_5xx_or_breaks_the_schema(
    http_fuzz_server: str, mode: GenerationMode
) -> None:
    """Valid requests (positive) and requests that break the schema (negative), per operation:
    never a 5xx, every status documented, every body in its declared shape, every request that
    breaks the schema refused. A request the schema allows may still be refused (400) for what
    only the model knows (its vocabulary, length and layers): schemathesis's check that it be
    accepted is left out."""
    schema = schemathesis.openapi.from_url(f"{http_fuzz_server}/openapi.json")
    fuzzed = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operation = result.ok()
        try:
            fuzz(operation, mode)
        except Unsatisfiable:  # nothing of it can break the schema (no body, no constraint)
            assert mode is GenerationMode.NEGATIVE, operation.label
            continue
        fuzzed.append(operation.label)
    assert "POST /v1/embeddings" in fuzzed, fuzzed


def test_enough_cases_ran_and_some_were_answered() -> None:
    total = sum(CASES.values())
    print(f"\nHTTP fuzz: {total} requests; {dict(sorted(CASES.items()))}")
    assert total >= MIN_CASES
    assert any(key.startswith("POST /v1/embeddings 200") for key in CASES), CASES
