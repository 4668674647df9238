"""The OpenAI-compatible HTTP API against a real server: the official ``openai`` client and raw
HTTP, the same answers as gRPC Embed, refusals in OpenAI's error shape, auth, TLS, limits,
deadlines, metrics and the access log."""

from __future__ import annotations

import asyncio
import base64
import logging
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import httpx2 as httpx
import numpy as np
import openai
import pytest
from openai import OpenAI

from service.client import EmbeddingClient, vectors
from tests.certs import CertificateAuthority
from tests.integration.harness import ServerThread, running_server
from tests.integration.test_metrics import settled, value
from tests.integration.test_model_control import publish_copy

MODEL = "tiny-mlm"
TEXTS = ["the river bank", "a fine day at the mill , and then the bank", "bank"]
TOKEN = "tok-http-2Fq9-accepted"


def base_url(server: ServerThread, scheme: str = "http") -> str:
    assert server.app.http is not None, "the HTTP API is on"
    return f"{scheme}://127.0.0.1:{server.app.http.port}"


@pytest.fixture(scope="module")
def http_server(imported: dict[str, Path]) -> Iterator[ServerThread]:
    with running_server(imported["models"], http_port=0, access_log=True) as server:
        yield server


@pytest.fixture
def client(http_server: ServerThread) -> OpenAI:
    return OpenAI(base_url=base_url(http_server) + "/v1", api_key="none", max_retries=0)


def grpc_vectors(server: ServerThread, **options: Any) -> tuple[np.ndarray, int]:
    """gRPC Embed of ``TEXTS``: the vectors and the tokens the model counted."""
    with EmbeddingClient(server.target, timeout=30) as grpc_client:
        response = grpc_client.embed(TEXTS, MODEL, **options)
    return np.stack(vectors(response)), sum(e.num_tokens for e in response.embeddings)


def test_the_openai_client_gets_what_grpc_embed_gives(
    http_server: ServerThread, client: OpenAI
) -> None:
    expected, tokens = grpc_vectors(http_server)
    as_floats = client.embeddings.create(model=MODEL, input=TEXTS, encoding_format="float")
    assert [item.index for item in as_floats.data] == [0, 1, 2]
    assert as_floats.model == MODEL and as_floats.object == "list"
    assert as_floats.usage.prompt_tokens == as_floats.usage.total_tokens == tokens
    got = np.asarray([item.embedding for item in as_floats.data])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    as_base64 = client.embeddings.create(model=MODEL, input=TEXTS, encoding_format="base64")
    encoded = [cast(str, item.embedding) for item in as_base64.data]  # typed as floats
    raw = [np.frombuffer(base64.b64decode(text), "<f4") for text in encoded]
    np.testing.assert_array_equal(np.stack(raw), expected)  # the same float32, bit for bit
    default = client.embeddings.create(model=MODEL, input=TEXTS)  # base64, decoded by openai
    np.testing.assert_allclose(
        np.asarray([item.embedding for item in default.data]), expected, rtol=0, atol=1e-6
    )
    one = client.embeddings.create(model=MODEL, input=TEXTS[0], encoding_format="float")
    np.testing.assert_allclose(one.data[0].embedding, expected[0], rtol=0, atol=1e-6)


def test_our_options_go_in_extra_body(http_server: ServerThread, client: OpenAI) -> None:
    options = {"pooling": "cls", "normalize": True, "layers": [1]}
    expected, _ = grpc_vectors(http_server, **options)
    got = client.embeddings.create(
        model=MODEL, input=TEXTS, encoding_format="float", extra_body=options
    )
    np.testing.assert_allclose(
        np.asarray([item.embedding for item in got.data]), expected, rtol=0, atol=1e-6
    )
    np.testing.assert_allclose(np.linalg.norm(expected, axis=1), 1.0, rtol=1e-5)


def test_models_are_listed_and_described(client: OpenAI) -> None:
    listed = {model.id: model for model in client.models.list()}
    assert {"tiny-mlm", "tiny-encoder"} <= set(listed)
    described = client.models.retrieve(MODEL)
    info: dict[str, Any] = described.info  # type: ignore[attr-defined]
    assert described.id == MODEL and described.object == "model" and described.created > 0
    assert info["ready"] is True and info["state"] == "MODEL_STATE_READY"
    assert info["architecture"] == "bert" and "fill_mask" in info["capabilities"]
    with pytest.raises(openai.NotFoundError, match="not served"):
        client.models.retrieve("no-such-model")
    with pytest.raises(openai.NotFoundError, match="not served"):
        client.embeddings.create(model="no-such-model", input=TEXTS)


def test_each_model_is_listed_once_by_its_newest_version(
    imported: dict[str, Path], tmp_path: Path
) -> None:
    models = tmp_path / "models"
    shutil.copytree(imported["models"], models)
    publish_copy(models, imported["models"] / MODEL / "1", MODEL, 2)
    with running_server(models, http_port=0) as server:
        client = OpenAI(base_url=base_url(server) + "/v1", api_key="none", max_retries=0)
        listed = list(client.models.list())
        assert sorted(model.id for model in listed) == ["tiny-encoder", "tiny-mlm"]
        (mlm,) = [model for model in listed if model.id == MODEL]
        info: dict[str, Any] = mlm.info  # type: ignore[attr-defined]
        assert (info["version"], info["versions"]) == ("2", ["1", "2"])


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"model": MODEL, "input": []}, 400, "List should have at least 1 item"),
        ({"model": MODEL, "input": ""}, 400, "String should have at least 1 character"),
        ({"model": MODEL, "input": ["a", ""]}, 400, "body.input"),
        ({"model": MODEL}, 400, "input"),
        ({"model": MODEL, "input": ["a"], "encoding_format": "int8"}, 400, "encoding_format"),
        ({"model": MODEL, "input": ["a"], "dimensions": 100}, 400, "answers 32 values"),
        ({"model": MODEL, "input": ["a"], "pooling": "none"}, 400, "pooling"),
        ({"model": MODEL, "input": ["a"], "layers": [9]}, 400, "layer 9 does not exist"),
        ({"model": MODEL, "input": [1, 2]}, 400, "input"),
        ({"model": MODEL, "input": ["a"], "surprise": 1}, 400, "surprise"),
        ({"model": "", "input": ["a"]}, 400, "body.model: String should have at least 1"),
        ({"model": MODEL, "input": ["a"], "version": "x"}, 400, "version must be a number"),
        ({"model": MODEL, "input": ["a"], "version": "7"}, 404, "has no version 7"),
    ],
)
def test_bad_input_is_refused_in_openai_shape(
    http_server: ServerThread, body: dict[str, Any], status: int, message: str
) -> None:
    reply = httpx.post(base_url(http_server) + "/v1/embeddings", json=body, timeout=30)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert message in error["message"], error
    assert error["type"] and "param" in error and "code" in error


def test_malformed_json_wrong_type_and_too_large_bodies(
    imported: dict[str, Path], http_server: ServerThread
) -> None:
    url = base_url(http_server) + "/v1/embeddings"
    json_header = {"content-type": "application/json"}
    broken = httpx.post(url, content=b'{"model": "tiny-mlm", "input": [', headers=json_header)
    assert broken.status_code == 400 and "invalid" in broken.json()["error"]["message"]
    typed = httpx.post(url, content=b"model=tiny-mlm", headers={"content-type": "text/plain"})
    assert typed.status_code == 415 and typed.json()["error"]["code"] == "unsupported_media_type"
    assert httpx.get(base_url(http_server) + "/v1/nothing").status_code == 404
    with running_server(imported["models"], http_port=0, max_message_bytes=2048) as small:
        large = httpx.post(
            base_url(small) + "/v1/embeddings",
            json={"model": MODEL, "input": ["word " * 1000]},
            timeout=30,
        )
        assert large.status_code == 413 and "max-message-bytes" in large.json()["error"]["message"]

        def chunks() -> Iterator[bytes]:  # no content-length: found while reading
            yield b'{"model": "tiny-mlm", "input": ["'
            for _ in range(10):
                yield b"word " * 100
            yield b'"]}'

        chunked = httpx.post(
            base_url(small) + "/v1/embeddings", content=chunks(), headers=json_header
        )
        assert chunked.status_code == 413


def test_health_answers_for_load_balancers(http_server: ServerThread) -> None:
    reply = httpx.get(base_url(http_server) + "/health")
    assert reply.status_code == 200 and reply.json() == {"status": "serving"}
    document = httpx.get(base_url(http_server) + "/openapi.json").json()
    assert {"/v1/embeddings", "/v1/models", "/v1/models/{model}", "/health"} <= set(
        document["paths"]
    )
    assert httpx.get(base_url(http_server) + "/docs").status_code == 200


def test_an_overload_burst_gets_429_with_retry_after(imported: dict[str, Path]) -> None:
    text = " ".join(["river bank"] * 50)

    async def burst(url: str) -> Counter[int]:
        async with httpx.AsyncClient(timeout=60) as http:

            async def one() -> httpx.Response:
                return await http.post(url, json={"model": MODEL, "input": [text] * 8})

            replies = await asyncio.gather(*(one() for _ in range(40)))
        for reply in replies:
            if reply.status_code == 429:
                assert reply.headers["retry-after"] == "1"
                assert "retry with exponential backoff" in reply.json()["error"]["message"]
        return Counter(reply.status_code for reply in replies)

    with running_server(
        imported["models"], http_port=0, max_inflight_texts=16, max_batch_size=4
    ) as server:
        statuses = asyncio.run(burst(base_url(server) + "/v1/embeddings"))
    assert set(statuses) == {200, 429}, statuses


def test_a_passed_deadline_is_504(imported: dict[str, Path]) -> None:
    with running_server(
        imported["models"], http_port=0, max_batch_size=1, max_texts_per_request=1000
    ) as server:
        url = base_url(server) + "/v1/embeddings"
        busy = [" ".join(["river bank flows"] * 40)] * 600
        assert server.app.embedder is not None
        batcher = server.app.embedder.resolve(MODEL, "").embed_batcher
        assert batcher is not None
        with ThreadPoolExecutor(1) as pool:
            background = pool.submit(
                httpx.post, url, json={"model": MODEL, "input": busy}, timeout=120
            )
            while batcher.queue_size < 300:
                time.sleep(0.001)
            hurried = httpx.post(
                url, json={"model": MODEL, "input": ["late"]}, headers={"x-request-timeout": "0.05"}
            )
            assert hurried.status_code == 504, hurried.text
            assert hurried.json()["error"]["code"] == "deadline_exceeded"
            assert background.result().status_code == 200
            assert len(background.result().json()["data"]) == 600
        bad = httpx.post(
            url, json={"model": MODEL, "input": ["a"]}, headers={"x-request-timeout": "soon"}
        )
        assert bad.status_code == 400 and "x-request-timeout" in bad.json()["error"]["message"]


def test_requests_are_counted_and_logged_with_their_id(
    http_server: ServerThread, client: OpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="service.access")
    labels = {"method": "POST /v1/embeddings", "model": MODEL, "code": "200"}
    before = settled(http_server, "embed_http_requests_total", 0, **labels)
    reply = httpx.post(
        base_url(http_server) + "/v1/embeddings",
        json={"model": MODEL, "input": TEXTS},
        headers={"x-request-id": "http-req-42"},
    )
    assert reply.status_code == 200 and reply.headers["x-request-id"] == "http-req-42"
    expected = value(before, "embed_http_requests_total", **labels) + 1
    after = settled(http_server, "embed_http_requests_total", expected, **labels)
    assert value(after, "embed_http_requests_total", **labels) == expected
    stage = {"model": MODEL, "operation": "embed"}
    assert value(after, "embed_queue_duration_seconds_count", **stage) > value(
        before, "embed_queue_duration_seconds_count", **stage
    )
    lines = [r.getMessage() for r in caplog.records if "http-req-42" in r.getMessage()]
    assert len(lines) == 1 and '"code": "200"' in lines[0] and '"texts": 3' in lines[0]
    assert TEXTS[0] not in lines[0]  # never a text in a log


def test_bearer_tokens_and_tls_are_the_grpc_ports(
    imported: dict[str, Path], tmp_path: Path
) -> None:
    ca = CertificateAuthority(tmp_path, "test-ca")
    server_cert = ca.issue("server")
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# accepted\n{TOKEN}\n")
    with running_server(
        imported["models"],
        http_port=0,
        auth_tokens_file=tokens,
        tls_cert_file=server_cert.cert,
        tls_key_file=server_cert.key,
    ) as server:
        url = base_url(server, "https") + "/v1"
        http = httpx.Client(verify=str(ca.files.cert))

        def client(key: str) -> OpenAI:
            return OpenAI(base_url=url, api_key=key, max_retries=0, http_client=http)

        with pytest.raises(openai.AuthenticationError, match="not accepted"):
            client("tok-wrong").embeddings.create(model=MODEL, input=TEXTS)
        answer = client(TOKEN).embeddings.create(model=MODEL, input=TEXTS)
        assert len(answer.data) == 3
        missing = http.post(url + "/embeddings", json={"model": MODEL, "input": TEXTS})
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "invalid_api_key"
        # Refused before any of its body is read or judged: not 415 for a caller with no token.
        untyped = http.post(url + "/embeddings", content=b"x", headers={"content-type": "text/x"})
        assert untyped.status_code == 401
        assert http.get(base_url(server, "https") + "/health").status_code == 200  # no token
        with pytest.raises(httpx.ConnectError):
            httpx.get(base_url(server, "https") + "/health")  # not trusted without the CA


def test_replies_do_not_wait_for_delayed_acks(http_server: ServerThread) -> None:
    """Nagle's algorithm is off on the API's connections: with it on, every small reply waited
    for the client's delayed ACK (~40 ms here), so 20 requests in a row on one connection took
    over 0.8 s; they take a few ms now (the bound leaves room for a loaded machine)."""
    with httpx.Client(base_url=base_url(http_server)) as http:
        http.get("/health")  # connected
        started = time.perf_counter()
        for _ in range(20):
            assert http.get("/health").status_code == 200
        assert time.perf_counter() - started < 0.6
