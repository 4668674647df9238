"""Clients for the embedding service (sync and async) and a console command.

    python -m service.client embed --model bert "the cook peeled a mushy apple in the kitchen ."
    python -m service.client fill-mask --model bert "the [MASK] is red"
    python -m service.client embed --model word2vec --skip-unknown "the mushy apple Apple"
    python -m service.client similar --model word2vec apple laptop --negative mushy
    python -m service.client tokenize --model bert "some text"
    python -m service.client models
    python -m service.client health

Calls time out after ``timeout`` seconds and are retried by gRPC itself (with exponential
backoff) when the server answers UNAVAILABLE, e.g. while it is still warming up.

Replicas behind one name: a target ``dns:///embedding-service-headless:50051`` (a Kubernetes
headless Service: one address per pod) or ``ipv4:10.0.0.1:50051,10.0.0.2:50051`` with the
default ``round_robin`` balancing spreads calls over every address; ``pick_first`` sends them
all over one connection. The server closes connections at a maximum age, so the name is
resolved again and replicas added since are reached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from proto.embedding.v1 import embedding_pb2 as pb
from proto.embedding.v1 import embedding_pb2_grpc as pb_grpc

POOLINGS = {
    "default": pb.POOLING_UNSPECIFIED,
    "cls": pb.POOLING_CLS,
    "mean": pb.POOLING_MEAN,
    "max": pb.POOLING_MAX,
    "none": pb.POOLING_NONE,
}
CACHE_POLICIES = {
    "use": pb.CACHE_POLICY_UNSPECIFIED,
    "bypass": pb.CACHE_POLICY_BYPASS,
    "refresh": pb.CACHE_POLICY_REFRESH,
}
LOAD_BALANCING = ("round_robin", "pick_first")
# Keepalive pings, even between calls, find a dead server (a node gone without closing its
# connections) in about 40 s; the server accepts pings this often (its CLIENT_PING_MIN_MS).
KEEPALIVE_TIME_MS = 30_000
KEEPALIVE_TIMEOUT_MS = 10_000
FilePath = str | os.PathLike[str]


def channel_options(
    retries: int = 4,
    max_message_bytes: int = 64 * 1024 * 1024,
    load_balancing: str = "round_robin",
) -> list[tuple[str, Any]]:
    """Channel options: gRPC's retry policy for UNAVAILABLE, large messages, keepalive, and
    the balancing policy over the addresses the target resolves to (``LOAD_BALANCING``)."""
    if load_balancing not in LOAD_BALANCING:
        raise ValueError(f"load_balancing must be one of {LOAD_BALANCING}, got {load_balancing!r}")
    service_config = {
        "loadBalancingConfig": [{load_balancing: {}}],
        "methodConfig": [
            {
                "name": [{"service": "embedding.v1.EmbeddingService"}],
                "retryPolicy": {
                    "maxAttempts": max(2, retries + 1),
                    "initialBackoff": "0.1s",
                    "maxBackoff": "2s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
    }
    return [
        ("grpc.enable_retries", 1),
        ("grpc.service_config", json.dumps(service_config)),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),  # keep pinging an idle connection
    ]


def read_token_file(path: FilePath) -> str:
    """The first token of a file in the server's format (blank lines and # comments skipped)."""
    for line in Path(path).read_text().splitlines():
        if (token := line.strip()) and not token.startswith("#"):
            return token
    raise ValueError(f"{path} holds no token")


def auth_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """Per-call metadata, not call credentials: gRPC refuses those on a plaintext channel, and
    a token may go over one (to localhost, or to a proxy that terminates TLS)."""
    return (("authorization", f"Bearer {token}"),) if token else ()


def channel_credentials(
    tls_ca_file: FilePath | None = None,
    tls_cert_file: FilePath | None = None,
    tls_key_file: FilePath | None = None,
) -> grpc.ChannelCredentials | None:
    """TLS when any file is given (None: plaintext): ``tls_ca_file`` the roots to check the
    server against (default: the system's), the certificate and key for mutual TLS."""
    if tls_ca_file is None and tls_cert_file is None and tls_key_file is None:
        return None
    if (tls_cert_file is None) != (tls_key_file is None):
        raise ValueError("tls_cert_file and tls_key_file go together (mutual TLS)")

    def read(path: FilePath | None) -> bytes | None:
        return Path(path).read_bytes() if path is not None else None

    return grpc.ssl_channel_credentials(
        root_certificates=read(tls_ca_file),
        private_key=read(tls_key_file),
        certificate_chain=read(tls_cert_file),
    )


def embed_request(
    texts: Sequence[str],
    model: str,
    version: str = "",
    pooling: str = "default",
    layers: Sequence[int] = (),
    layer_weights: Sequence[float] = (),
    normalize: bool = False,
    truncate: bool = False,
    skip_unknown: bool = False,
    cache_policy: str = "use",
) -> pb.EmbedRequest:
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {sorted(POOLINGS)}, got {pooling!r}")
    return pb.EmbedRequest(
        model=model,
        version=version,
        texts=list(texts),
        pooling=POOLINGS[pooling],
        layers=list(layers),
        layer_weights=list(layer_weights),
        normalize=normalize,
        truncate=truncate,
        skip_unknown=skip_unknown,
        cache_policy=_cache_policy(cache_policy),
    )


def _cache_policy(name: str) -> pb.CachePolicy:
    if name not in CACHE_POLICIES:
        raise ValueError(f"cache_policy must be one of {sorted(CACHE_POLICIES)}, got {name!r}")
    return CACHE_POLICIES[name]


def fill_mask_request(
    texts: Sequence[str], model: str, top_k: int = 5, version: str = "", cache_policy: str = "use"
) -> pb.FillMaskRequest:
    return pb.FillMaskRequest(
        model=model,
        version=version,
        texts=list(texts),
        top_k=top_k,
        cache_policy=_cache_policy(cache_policy),
    )


def vectors(response: pb.EmbedResponse) -> list[np.ndarray]:
    """Each embedding as an array: (dim,) when pooled, (num_tokens, dim) for POOLING_NONE."""
    result = []
    for embedding in response.embeddings:
        values = np.asarray(embedding.values, dtype=np.float32)
        if values.size != response.dim:
            values = values.reshape(embedding.num_tokens, response.dim)
        result.append(values)
    return result


def _most_similar_request(
    model: str, positive: Sequence[str], negative: Sequence[str], top_k: int, version: str
) -> pb.MostSimilarRequest:
    return pb.MostSimilarRequest(
        model=model,
        version=version,
        positive=list(positive),
        negative=list(negative),
        top_k=top_k,
    )


class EmbeddingClient:
    """Blocking client. Use as a context manager or call ``close()``."""

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        timeout: float = 30.0,
        retries: int = 4,
        load_balancing: str = "round_robin",
        token: str | None = None,
        tls_ca_file: FilePath | None = None,
        tls_cert_file: FilePath | None = None,
        tls_key_file: FilePath | None = None,
    ) -> None:
        self.timeout = timeout
        self.metadata = auth_metadata(token)
        options = channel_options(retries, load_balancing=load_balancing)
        credentials = channel_credentials(tls_ca_file, tls_cert_file, tls_key_file)
        self.channel = (
            grpc.insecure_channel(target, options=options)
            if credentials is None
            else grpc.secure_channel(target, credentials, options=options)
        )
        self.stub = pb_grpc.EmbeddingServiceStub(self.channel)
        self.health_stub = health_pb2_grpc.HealthStub(self.channel)

    def __enter__(self) -> EmbeddingClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def embed(self, texts: Sequence[str], model: str, **options: Any) -> pb.EmbedResponse:
        request = embed_request(texts, model, **options)
        response: pb.EmbedResponse = self.stub.Embed(
            request, timeout=self.timeout, metadata=self.metadata
        )
        return response

    def embed_stream(self, requests: Iterable[pb.EmbedRequest]) -> Iterable[pb.EmbedResponse]:
        responses: Iterable[pb.EmbedResponse] = self.stub.EmbedStream(
            iter(requests), timeout=self.timeout, metadata=self.metadata
        )
        return responses

    def fill_mask(
        self,
        texts: Sequence[str],
        model: str,
        top_k: int = 5,
        version: str = "",
        cache_policy: str = "use",
    ) -> pb.FillMaskResponse:
        request = fill_mask_request(texts, model, top_k, version, cache_policy)
        response: pb.FillMaskResponse = self.stub.FillMask(
            request, timeout=self.timeout, metadata=self.metadata
        )
        return response

    def most_similar(
        self,
        model: str,
        positive: Sequence[str],
        negative: Sequence[str] = (),
        top_k: int = 10,
        version: str = "",
    ) -> pb.MostSimilarResponse:
        request = _most_similar_request(model, positive, negative, top_k, version)
        response: pb.MostSimilarResponse = self.stub.MostSimilar(
            request, timeout=self.timeout, metadata=self.metadata
        )
        return response

    def tokenize(self, texts: Sequence[str], model: str, version: str = "") -> pb.TokenizeResponse:
        request = pb.TokenizeRequest(model=model, version=version, texts=list(texts))
        response: pb.TokenizeResponse = self.stub.Tokenize(
            request, timeout=self.timeout, metadata=self.metadata
        )
        return response

    def list_models(self) -> pb.ListModelsResponse:
        response: pb.ListModelsResponse = self.stub.ListModels(
            pb.ListModelsRequest(), timeout=self.timeout, metadata=self.metadata
        )
        return response

    def get_model(self, model: str, version: str = "") -> pb.ModelInfo:
        response: pb.ModelInfo = self.stub.GetModel(
            pb.GetModelRequest(model=model, version=version),
            timeout=self.timeout,
            metadata=self.metadata,
        )
        return response

    def health(self, service: str = "") -> str:
        """SERVING, NOT_SERVING, ... for ``service`` ("" = the whole server)."""
        response = self.health_stub.Check(
            health_pb2.HealthCheckRequest(service=service),
            timeout=self.timeout,
            metadata=self.metadata,
        )
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


class AsyncEmbeddingClient:
    """asyncio client with the same methods as ``EmbeddingClient`` (awaitable)."""

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        timeout: float = 30.0,
        retries: int = 4,
        load_balancing: str = "round_robin",
        token: str | None = None,
        tls_ca_file: FilePath | None = None,
        tls_cert_file: FilePath | None = None,
        tls_key_file: FilePath | None = None,
    ) -> None:
        self.timeout = timeout
        self.metadata = auth_metadata(token)
        options = channel_options(retries, load_balancing=load_balancing)
        credentials = channel_credentials(tls_ca_file, tls_cert_file, tls_key_file)
        self.channel = (
            grpc.aio.insecure_channel(target, options=options)
            if credentials is None
            else grpc.aio.secure_channel(target, credentials, options=options)
        )
        self.stub = pb_grpc.EmbeddingServiceStub(self.channel)
        self.health_stub = health_pb2_grpc.HealthStub(self.channel)

    async def __aenter__(self) -> AsyncEmbeddingClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.channel.close()

    async def embed(self, texts: Sequence[str], model: str, **options: Any) -> pb.EmbedResponse:
        response: pb.EmbedResponse = await self.stub.Embed(
            embed_request(texts, model, **options), timeout=self.timeout, metadata=self.metadata
        )
        return response

    async def fill_mask(
        self,
        texts: Sequence[str],
        model: str,
        top_k: int = 5,
        version: str = "",
        cache_policy: str = "use",
    ) -> pb.FillMaskResponse:
        request = fill_mask_request(texts, model, top_k, version, cache_policy)
        response: pb.FillMaskResponse = await self.stub.FillMask(
            request, timeout=self.timeout, metadata=self.metadata
        )
        return response

    async def most_similar(
        self,
        model: str,
        positive: Sequence[str],
        negative: Sequence[str] = (),
        top_k: int = 10,
        version: str = "",
    ) -> pb.MostSimilarResponse:
        request = _most_similar_request(model, positive, negative, top_k, version)
        response: pb.MostSimilarResponse = await self.stub.MostSimilar(
            request, timeout=self.timeout, metadata=self.metadata
        )
        return response

    async def tokenize(
        self, texts: Sequence[str], model: str, version: str = ""
    ) -> pb.TokenizeResponse:
        request = pb.TokenizeRequest(model=model, version=version, texts=list(texts))
        response: pb.TokenizeResponse = await self.stub.Tokenize(
            request, timeout=self.timeout, metadata=self.metadata
        )
        return response

    async def list_models(self) -> pb.ListModelsResponse:
        response: pb.ListModelsResponse = await self.stub.ListModels(
            pb.ListModelsRequest(), timeout=self.timeout, metadata=self.metadata
        )
        return response

    async def health(self, service: str = "") -> str:
        response = await self.health_stub.Check(
            health_pb2.HealthCheckRequest(service=service),
            timeout=self.timeout,
            metadata=self.metadata,
        )
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


# -- console command ---------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m service.client",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--target",
        default="127.0.0.1:50051",
        help="server address: HOST:PORT, dns:///NAME:PORT (every address NAME resolves to) or "
        "ipv4:A:PORT,B:PORT",
    )
    parser.add_argument(
        "--load-balancing",
        choices=LOAD_BALANCING,
        default="round_robin",
        help="spread calls over the target's addresses (round_robin) or use one (pick_first)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per call")
    parser.add_argument("--token", default=None, help="bearer token (prefer --token-file)")
    parser.add_argument("--token-file", default=None, help="file whose first token is sent")
    parser.add_argument("--tls-ca-file", default=None, help="PEM roots: TLS to the server")
    parser.add_argument("--tls-cert-file", default=None, help="PEM client certificate (mTLS)")
    parser.add_argument("--tls-key-file", default=None, help="PEM key of --tls-cert-file")
    commands = parser.add_subparsers(dest="command", required=True)
    embed = commands.add_parser("embed", help="embed texts and print a summary of each vector")
    embed.add_argument("texts", nargs="+")
    embed.add_argument("--model", required=True)
    embed.add_argument("--version", default="")
    embed.add_argument("--pooling", choices=sorted(POOLINGS), default="default")
    embed.add_argument("--layers", type=int, nargs="*", default=[])
    embed.add_argument("--layer-weights", type=float, nargs="*", default=[])
    embed.add_argument("--normalize", action="store_true")
    embed.add_argument("--truncate", action="store_true")
    embed.add_argument(
        "--skip-unknown",
        action="store_true",
        help="word2vec: leave out words missing from the vocabulary instead of failing",
    )
    embed.add_argument("--json", action="store_true", help="print the full vectors as JSON")
    embed.add_argument("--cache-policy", choices=sorted(CACHE_POLICIES), default="use")
    fill = commands.add_parser("fill-mask", help="predict the masked words")
    fill.add_argument("texts", nargs="+")
    fill.add_argument("--model", required=True)
    fill.add_argument("--top-k", type=int, default=5)
    fill.add_argument("--cache-policy", choices=sorted(CACHE_POLICIES), default="use")
    similar = commands.add_parser("similar", help="nearest words (word2vec)")
    similar.add_argument("positive", nargs="+")
    similar.add_argument("--model", required=True)
    similar.add_argument("--negative", nargs="*", default=[])
    similar.add_argument("--top-k", type=int, default=10)
    tokenize = commands.add_parser("tokenize", help="show the tokens a model uses")
    tokenize.add_argument("texts", nargs="+")
    tokenize.add_argument("--model", required=True)
    commands.add_parser("models", help="list the served models")
    health = commands.add_parser(
        "health", help="the server's health status (exit status 0 only when SERVING)"
    )
    health.add_argument("--service", default="")
    return parser


def _run(args: argparse.Namespace, client: EmbeddingClient) -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if args.command == "embed":
        response = client.embed(
            args.texts,
            args.model,
            version=args.version,
            pooling=args.pooling,
            layers=args.layers,
            layer_weights=args.layer_weights,
            normalize=args.normalize,
            truncate=args.truncate,
            skip_unknown=args.skip_unknown,
            cache_policy=args.cache_policy,
        )
        if args.json:
            print(json.dumps([vector.tolist() for vector in vectors(response)]))
            return 0
        title = f"{response.model}/{response.version}, dim {response.dim}"
        table = Table(title=f"{title}, {response.timing.total_us} µs")
        for column in ("text", "tokens", "shape", "first values", "norm", "cached"):
            table.add_column(column)
        for text, embedding, vector in zip(
            args.texts, response.embeddings, vectors(response), strict=True
        ):
            head = ", ".join(f"{value:+.3f}" for value in vector.ravel()[:4])
            table.add_row(
                text,
                str(embedding.num_tokens),
                str(vector.shape),
                head + ", …",
                f"{np.linalg.norm(vector):.3f}",
                "yes" if embedding.cached else "no",
            )
        console.print(table)
        for text, embedding in zip(args.texts, response.embeddings, strict=True):
            if embedding.unknown_tokens:
                console.print(f"{text!r}: left out {list(embedding.unknown_tokens)}")
    elif args.command == "fill-mask":
        fills = client.fill_mask(
            args.texts, args.model, top_k=args.top_k, cache_policy=args.cache_policy
        )
        for text, filled in zip(args.texts, fills.results, strict=True):
            for index, mask in enumerate(filled.masks):
                table = Table(title=f"{text}  (mask {index + 1})")
                table.add_column("token")
                table.add_column("score")
                table.add_column("sequence")
                for prediction in mask.predictions:
                    table.add_row(prediction.token, f"{prediction.score:.3f}", prediction.sequence)
                console.print(table)
    elif args.command == "similar":
        neighbours = client.most_similar(args.model, args.positive, args.negative, args.top_k)
        for neighbour in neighbours.neighbors:
            console.print(f"{neighbour.word:20s} {neighbour.score:.4f}")
    elif args.command == "tokenize":
        tokenized = client.tokenize(args.texts, args.model).results
        for text, tokens in zip(args.texts, tokenized, strict=True):
            console.print(f"{text!r} → {list(tokens.tokens)}")
    elif args.command == "models":
        table = Table(title="served models")
        for column in (
            "name",
            "version",
            "architecture",
            "dim",
            "layers",
            "max tokens",
            "capabilities",
        ):
            table.add_column(column)
        for info in client.list_models().models:
            table.add_row(
                info.name,
                info.version,
                info.architecture,
                str(info.dim),
                str(info.num_layers),
                str(info.max_sequence_length),
                ", ".join(info.capabilities),
            )
        console.print(table)
    elif args.command == "health":
        status = client.health(args.service)
        console.print(status)
        return 0 if status == "SERVING" else 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    token = read_token_file(args.token_file) if args.token_file else args.token
    with EmbeddingClient(
        args.target,
        timeout=args.timeout,
        load_balancing=args.load_balancing,
        token=token,
        tls_ca_file=args.tls_ca_file,
        tls_cert_file=args.tls_cert_file,
        tls_key_file=args.tls_key_file,
    ) as client:
        try:
            return _run(args, client)
        except grpc.RpcError as error:
            print(f"{error.code().name}: {error.details()}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
