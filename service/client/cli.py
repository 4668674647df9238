"""The console command: ``python -m service.client COMMAND ...``, over the blocking client.

    python -m service.client embed --model bert "the cook peeled a mushy apple in the kitchen ."
    python -m service.client fill-mask --model bert "the user clicked the ergonomic [MASK] ."
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
import sys
from collections.abc import Sequence

import grpc
import numpy as np

from proto.embedding.v1 import embedding_pb2 as pb
from service.client.channel import DEFAULT_TARGET, LOAD_BALANCING, read_token_file
from service.client.messages import (
    CACHE_POLICIES,
    ENCODINGS,
    POOLINGS,
    dimensions_option,
    vectors,
)
from service.client.sync import EmbeddingClient


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="python -m service.client",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--target",
        default=DEFAULT_TARGET,
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
    embed = commands.add_parser(
        "embed", allow_abbrev=False, help="embed texts and print a summary of each vector"
    )
    embed.add_argument("texts", nargs="+")
    embed.add_argument("--model", required=True)
    embed.add_argument("--version", default="")
    embed.add_argument("--pooling", choices=sorted(POOLINGS), default="default")
    embed.add_argument("--layers", type=int, nargs="*", default=[])
    embed.add_argument("--layer-weights", type=float, nargs="*", default=[])
    embed.add_argument(
        "--normalize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="L2-normalise each vector, or not (default: the model's own default)",
    )
    embed.add_argument(
        "--prompt-name", default="", help="one of the model's prompts (default: its own)"
    )
    embed.add_argument(
        "--dimensions",
        type=dimensions_option,
        default=0,
        help="keep the first N values of each vector (0: all)",
    )
    embed.add_argument("--truncate", action="store_true")
    embed.add_argument(
        "--skip-unknown",
        action="store_true",
        help="word2vec: leave out words missing from the vocabulary instead of failing",
    )
    embed.add_argument("--json", action="store_true", help="print the full vectors as JSON")
    embed.add_argument("--cache-policy", choices=sorted(CACHE_POLICIES), default="use")
    embed.add_argument(
        "--encoding",
        choices=sorted(ENCODINGS),
        default="float",
        help="how the vectors travel: repeated float, or raw little-endian float32 / float16",
    )
    fill = commands.add_parser("fill-mask", allow_abbrev=False, help="predict the masked words")
    fill.add_argument("texts", nargs="+")
    fill.add_argument("--model", required=True)
    fill.add_argument("--top-k", type=int, default=5)
    fill.add_argument("--cache-policy", choices=sorted(CACHE_POLICIES), default="use")
    similar = commands.add_parser("similar", allow_abbrev=False, help="nearest words (word2vec)")
    similar.add_argument("positive", nargs="+")
    similar.add_argument("--model", required=True)
    similar.add_argument("--negative", nargs="*", default=[])
    similar.add_argument("--top-k", type=int, default=10)
    tokenize = commands.add_parser(
        "tokenize", allow_abbrev=False, help="show the tokens a model uses"
    )
    tokenize.add_argument("texts", nargs="+")
    tokenize.add_argument("--model", required=True)
    commands.add_parser("models", allow_abbrev=False, help="list the served models")
    health = commands.add_parser(
        "health",
        allow_abbrev=False,
        help="the server's health status (exit status 0 only when SERVING)",
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
            encoding=args.encoding,
            prompt_name=args.prompt_name,
            dimensions=args.dimensions,
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
            "pooling",
            "normalized",
            "prompts",
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
                POOLING_NAMES.get(info.default_pooling, ""),
                "yes" if info.default_normalize else "no",
                _prompts(info),
                ", ".join(info.capabilities),
            )
        console.print(table)
    elif args.command == "health":
        status = client.health(args.service)
        console.print(status)
        return 0 if status == "SERVING" else 1
    return 0


POOLING_NAMES = {value: name for name, value in POOLINGS.items() if name != "default"}


def _prompts(info: pb.ModelInfo) -> str:
    """The model's named prompts, its default marked with a star."""
    return ", ".join(
        f"{name}*" if name == info.default_prompt_name else name for name in sorted(info.prompts)
    )


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
