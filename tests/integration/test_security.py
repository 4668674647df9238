"""Bearer tokens and TLS on the API port, over real channels: refusals are UNAUTHENTICATED and
counted, TLS and mutual TLS work (a client certificate from another CA fails the handshake),
health needs no token, a rotated token file is picked up, and nothing secret reaches the logs."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from pydantic import ValidationError

from proto.embedding.v1 import embedding_pb2 as pb
from proto.embedding.v1 import embedding_pb2_grpc as pb_grpc
from service.client import AsyncEmbeddingClient, EmbeddingClient, embed_request, vectors
from service.client import main as client_main
from service.config import Settings, load_settings
from service.healthcheck import check
from tests.certs import CertificateAuthority, Issued
from tests.integration.harness import ServerThread, running_server
from tests.integration.test_metrics import scrape, settled, value
from tests.loadtest_files import import_embedload
from tests.redis_servers import free_port

import_embedload()
from embedload.calls import (  # noqa: E402 - after its folder is on the path
    Target,
    bearer_metadata,
    open_channel,
    read_bearer_token,
)

TOKEN = "tok-7Qx3-first-bearer-secret"
ROTATED = "tok-9Zr5-rotated-bearer-secret"
WRONG = "tok-4Kw8-never-accepted-secret"
MODEL = "tiny-mlm"
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
REQUESTS = "embed_requests_total"


@dataclass(frozen=True)
class Pki:
    ca: Path
    server: Issued
    client: Issued
    stranger: Issued  # a client certificate signed by another CA


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority(directory, "test-ca")
    other = CertificateAuthority(directory, "other-ca")
    return Pki(ca.files.cert, ca.issue("server"), ca.issue("client"), other.issue("stranger"))


def write_tokens(path: Path, *tokens: str) -> None:
    """Replace the file atomically, as a secret manager or ``kubectl`` would."""
    staged = path.with_suffix(".new")
    staged.write_text("# accepted bearer tokens\n\n" + "".join(f"  {t}\n" for t in tokens))
    os.replace(staged, path)


@dataclass(frozen=True)
class Secured:
    server: ServerThread
    tokens: Path
    health_port: int


@pytest.fixture(scope="module")
def secured(
    imported: dict[str, Path], pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Secured]:
    tokens = tmp_path_factory.mktemp("auth") / "tokens"
    write_tokens(tokens, TOKEN)
    health_port = free_port()
    with running_server(
        imported["models"],
        auth_tokens_file=tokens,
        tls_cert_file=pki.server.cert,
        tls_key_file=pki.server.key,
        health_port=health_port,
    ) as server:
        yield Secured(server, tokens, health_port)


def tls_client(
    server: ServerThread, pki: Pki, token: str | None = None, cert: Issued | None = None
) -> EmbeddingClient:
    return EmbeddingClient(
        server.target,
        timeout=10,
        retries=0,
        token=token,
        tls_ca_file=pki.ca,
        tls_cert_file=cert.cert if cert else None,
        tls_key_file=cert.key if cert else None,
    )


def refused(call: object) -> grpc.RpcError:
    assert callable(call)
    with pytest.raises(grpc.RpcError) as error:
        call()
    return error.value


def test_a_call_without_an_accepted_token_is_refused_and_counted(
    secured: Secured, pki: Pki
) -> None:
    server = secured.server
    labels = {"method": "Embed", "model": MODEL, "code": "UNAUTHENTICATED"}
    before = value(scrape(server), REQUESTS, **labels)
    with tls_client(server, pki) as anonymous, tls_client(server, pki, WRONG) as wrong:
        missing = refused(lambda: anonymous.embed(["no token at all"], MODEL))
        assert missing.code() == UNAUTHENTICATED
        assert "authorization: Bearer <token>" in (missing.details() or "")
        bad = refused(lambda: wrong.embed(["a wrong token"], MODEL))
        assert bad.code() == UNAUTHENTICATED and WRONG not in (bad.details() or "")
        stream = refused(lambda: list(anonymous.embed_stream([embed_request(["s"], MODEL)])))
        assert stream.code() == UNAUTHENTICATED
        assert refused(anonymous.list_models).code() == UNAUTHENTICATED
    samples = settled(server, REQUESTS, before + 2, **labels)
    assert value(samples, REQUESTS, **labels) == before + 2
    # A stream is refused before its first message is read: no model is known.
    streams = {"method": "EmbedStream", "model": "none", "code": "UNAUTHENTICATED"}
    assert value(settled(server, REQUESTS, 1, **streams), REQUESTS, **streams)


def test_an_authenticated_call_over_tls_succeeds(
    secured: Secured, pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with tls_client(secured.server, pki, TOKEN) as client:
        assert len(client.embed(["authenticated over tls"], MODEL).embeddings) == 1
        assert [m.name for m in client.list_models().models]
    with EmbeddingClient(secured.server.target, timeout=5, retries=0, token=TOKEN) as plain:
        assert refused(lambda: plain.embed(["plaintext to a TLS port"], MODEL)).code() == (
            grpc.StatusCode.UNAVAILABLE
        )
    token_file = tmp_path / "token"
    token_file.write_text(f"# mine\n{TOKEN}\n")
    flags = ["--target", secured.server.target, "--timeout", "10", "--tls-ca-file", str(pki.ca)]
    command = [*flags, "--token-file", str(token_file), "embed", "--model", MODEL, "--json"]
    assert client_main([*command, "from the command line"]) == 0
    assert capsys.readouterr().out.startswith("[[")
    assert client_main([*flags, "embed", "--model", MODEL, "no token"]) == 1
    assert "UNAUTHENTICATED" in capsys.readouterr().err


def test_the_async_client_sends_its_token_over_tls(secured: Secured, pki: Pki) -> None:
    async def calls() -> tuple[int, grpc.StatusCode | None]:
        target, ca = secured.server.target, pki.ca
        async with AsyncEmbeddingClient(target, timeout=10, token=TOKEN, tls_ca_file=ca) as ok:
            embedded = len((await ok.embed(["async and authenticated"], MODEL)).embeddings)
        async with AsyncEmbeddingClient(target, timeout=10, retries=0, tls_ca_file=ca) as anon:
            try:
                await anon.list_models()
            except grpc.aio.AioRpcError as error:
                return embedded, error.code()
        return embedded, None

    assert asyncio.run(calls()) == (1, UNAUTHENTICATED)


def test_health_and_reflection_need_no_token(secured: Secured, pki: Pki) -> None:
    with tls_client(secured.server, pki) as anonymous:
        assert anonymous.health() == "SERVING"
        stub = reflection_pb2_grpc.ServerReflectionStub(anonymous.channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        (answer,) = list(stub.ServerReflectionInfo(iter([request]), timeout=10))
        assert "embedding.v1.EmbeddingService" in {
            s.name for s in answer.list_services_response.service
        }
    assert check(f"127.0.0.1:{secured.health_port}") == "SERVING"  # probes: plaintext port


def test_the_load_test_channel_speaks_tls_and_sends_the_token(
    secured: Secured, pki: Pki, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"\n# the load's token\n{TOKEN}\n")
    target = Target.parse(f"grpcs://{secured.server.target}")
    with open_channel(target, str(pki.ca)) as channel:
        stub = pb_grpc.EmbeddingServiceStub(channel)
        request = pb.GetModelRequest(model=MODEL)
        metadata = bearer_metadata(read_bearer_token(str(token_file)))
        assert stub.GetModel(request, timeout=10, metadata=metadata).name == MODEL
        assert refused(lambda: stub.GetModel(request, timeout=10)).code() == UNAUTHENTICATED


def test_mutual_tls_accepts_only_certificates_of_the_client_ca(
    imported: dict[str, Path], pki: Pki
) -> None:
    with running_server(
        imported["models"],
        tls_cert_file=pki.server.cert,
        tls_key_file=pki.server.key,
        tls_client_ca_file=pki.ca,
    ) as server:
        with tls_client(server, pki, cert=pki.client) as client:
            assert len(client.embed(["a client the CA signed"], MODEL).embeddings) == 1
        mutual = Target.parse(server.target, tls=True)
        pem = str(pki.client.cert), str(pki.client.key)
        with open_channel(mutual, str(pki.ca), "", *pem) as channel:
            stub = pb_grpc.EmbeddingServiceStub(channel)
            assert stub.GetModel(pb.GetModelRequest(model=MODEL), timeout=10).name == MODEL
        for cert in (pki.stranger, None):
            with tls_client(server, pki, cert=cert) as client:
                error = refused(lambda c=client: c.embed(["refused at the handshake"], MODEL))
                assert error.code() == grpc.StatusCode.UNAVAILABLE


def test_tls_files_must_come_in_pairs(pki: Pki) -> None:
    with pytest.raises(ValidationError, match="tls-cert-file and tls-key-file go together"):
        Settings(tls_cert_file=pki.server.cert)
    with pytest.raises(ValidationError, match="tls-cert-file and tls-key-file go together"):
        load_settings(["--tls-key-file", str(pki.server.key)])
    with pytest.raises(ValidationError, match="tls-client-ca-file needs tls-cert-file"):
        Settings(tls_client_ca_file=pki.ca)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EMBED_")}
    command = [sys.executable, "-m", "service", "--tls-cert-file", str(pki.server.cert)]
    done = subprocess.run(
        command, env=clean, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "tls-cert-file and tls-key-file go together" in done.stderr


def test_a_rotated_token_file_is_picked_up_within_5_s(secured: Secured, pki: Pki) -> None:
    server = secured.server
    try:
        write_tokens(secured.tokens, ROTATED)
        changed = time.monotonic()
        with tls_client(server, pki, ROTATED) as rotated:
            while True:
                try:
                    rotated.embed(["the rotated token"], MODEL)
                    break
                except grpc.RpcError as error:
                    assert error.code() == UNAUTHENTICATED
                    assert time.monotonic() - changed < 5, "token file not re-read within 5 s"
                    time.sleep(0.1)
        assert time.monotonic() - changed < 5
        with tls_client(server, pki, TOKEN) as old:
            assert refused(lambda: old.embed(["the old token"], MODEL)).code() == UNAUTHENTICATED
    finally:
        write_tokens(secured.tokens, TOKEN)


def test_no_token_text_or_vector_reaches_the_logs(
    imported: dict[str, Path], pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: every record of this process
    tokens = tmp_path / "tokens"
    write_tokens(tokens, TOKEN)
    texts = ["the heliotrope walrus juggled seventeen", "a quixotic marmalade zeppelin"]
    secrets = [TOKEN, ROTATED, WRONG]
    with running_server(
        imported["models"],
        auth_tokens_file=tokens,
        tls_cert_file=pki.server.cert,
        tls_key_file=pki.server.key,
        access_log=True,
        log_level="debug",
    ) as server:
        with tls_client(server, pki, TOKEN) as client:
            found = vectors(client.embed(texts, MODEL))
            client.fill_mask(["the [MASK] walrus juggled"], MODEL)
            client.tokenize(texts, MODEL)
        for token in (WRONG, None):
            with tls_client(server, pki, token) as other:
                refused(lambda o=other: o.embed([f"refused {texts[0]}"], MODEL))
    values = [v for vector in found for v in vector.ravel()[:16].tolist()]
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    logged = "\n".join(formatter.format(record) for record in caplog.records)
    assert any(r.name == "service.access" for r in caplog.records)  # the access log was on
    for secret in secrets:
        assert secret not in logged
    for text in texts:
        assert text not in logged
        assert text.split()[1] not in logged  # not even one distinctive word
    for number in values:
        assert repr(number) not in logged and f"{number:.6f}" not in logged
