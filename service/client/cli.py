"""The console command: python -m service.client COMMAND ..., over the blocking client.

    python -m service.client embed --model bert "the cook peeled a mushy apple in the kitchen ."
    python -m service.client fill-mask --model bert "the user clicked the ergonomic [MASK] ."
    python -m service.client embed --model word2vec --skip-unknown "the mushy apple Apple"
    python -m service.client similar --model word2vec apple laptop --negative mushy
    python -m service.client tokenize --model bert "some text"
    python -m service.client models
    python -m service.client health

Calls time out after --timeout seconds and are retried by gRPC itself (with exponential
backoff) when the server answers UNAVAILABLE, e.g. while it is still warming up. Tables show
the first 80 characters of a longer text, with its length; --full shows it whole.

Replicas behind one name: a target dns:///embedding-service-headless:50051 (a Kubernetes
headless Service: one address per pod) or ipv4:10.0.0.1:50051,10.0.0.2:50051 with the
default round_robin balancing spreads calls over every address; pick_first sends them
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
from rich.text import Text

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

SHORT = 80
"""Characters of a text a table shows without --full: a 97k-character input printed whole
filled thousands of lines."""
UNKNOWN = "-"
"""What the models table shows for what a model not yet loaded cannot say (its dim, ...)."""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Adds an option's default to its help, unless the help says it in words or there is
    nothing to show: a flag that is off, an option that is not given unless named."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or not action.option_strings
            or default is None
            or default is False
            or default == argparse.SUPPRESS
        ):
            return text
        return f"{text} (default: %(default)s)"


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str
) -> argparse.ArgumentParser:
    return commands.add_parser(
        name,
        allow_abbrev=False,
        help=summary,
        description=summary,
        formatter_class=_HelpFormatter,
    )


def _full(command: argparse.ArgumentParser) -> None:
    """--full, for a command whose output echoes the texts it was given."""
    command.add_argument(
        "--full",
        action="store_true",
        help=f"print long texts whole (default: the first {SHORT} characters and the length)",
    )


def _model(command: argparse.ArgumentParser, examples: str) -> None:
    command.add_argument(
        "--model", required=True, help=f"the model's name, e.g. {examples} (see: models)"
    )


def _cache_policy(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--cache-policy",
        choices=sorted(CACHE_POLICIES),
        default="use",
        help="answer from the server's cache (use), compute afresh (bypass), or compute "
        "afresh and store (refresh)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="python -m service.client",
        description=__doc__,
        formatter_class=_HelpFormatter,
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
    parser.add_argument(
        "--token", default=None, help="bearer token (prefer --token-file; default: none)"
    )
    parser.add_argument(
        "--token-file", default=None, help="file whose first token is sent (default: none)"
    )
    parser.add_argument(
        "--tls-ca-file",
        default=None,
        help="PEM roots to check the server against; any --tls-* file turns TLS on "
        "(default: plaintext; with TLS, the system's roots)",
    )
    parser.add_argument(
        "--tls-cert-file",
        default=None,
        help="PEM client certificate for mutual TLS, with --tls-key-file (default: none)",
    )
    parser.add_argument(
        "--tls-key-file", default=None, help="PEM key of --tls-cert-file (default: none)"
    )
    commands = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="COMMAND",
        help="what to do (COMMAND --help describes its options):",
    )
    embed = _command(commands, "embed", "embed texts and print a summary of each vector")
    embed.add_argument("texts", nargs="+", help="the texts to embed, one argument each")
    _model(embed, "bert, elmo, word2vec")
    embed.add_argument("--version", default="", help="model version (default: the newest)")
    embed.add_argument(
        "--pooling",
        choices=sorted(POOLINGS),
        default="default",
        help="how the token vectors become one vector; none: one vector per token "
        "(default: the model's own)",
    )
    embed.add_argument(
        "--layers",
        type=int,
        nargs="*",
        default=[],
        help="layers to mix: 0 the context-free token layer, 1..N the model's layers "
        "(default: the model's own)",
    )
    embed.add_argument(
        "--layer-weights",
        type=float,
        nargs="*",
        default=[],
        help="ELMo: one weight per layer for a softmax scalar mix (default: equal weights)",
    )
    embed.add_argument(
        "--normalize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="L2-normalise each vector, or not (default: the model's own default)",
    )
    embed.add_argument(
        "--prompt-name",
        default="",
        help="one of the model's prompts, put before each text (default: the model's own)",
    )
    embed.add_argument(
        "--dimensions",
        type=dimensions_option,
        default=0,
        help="keep the first N values of each vector; 0 keeps them all",
    )
    embed.add_argument(
        "--truncate",
        action="store_true",
        help="cut a text longer than the model takes instead of failing",
    )
    embed.add_argument(
        "--skip-unknown",
        action="store_true",
        help="word2vec: leave out words missing from the vocabulary instead of failing",
    )
    embed.add_argument(
        "--json", action="store_true", help="print the full vectors as JSON, not a table"
    )
    _cache_policy(embed)
    embed.add_argument(
        "--encoding",
        choices=sorted(ENCODINGS),
        default="float",
        help="how the vectors travel: repeated float, or raw little-endian float32 / float16",
    )
    _full(embed)
    fill = _command(commands, "fill-mask", "predict the masked words")
    fill.add_argument(
        "texts", nargs="+", help="texts with one or more of the model's mask token, e.g. [MASK]"
    )
    _model(fill, "bert")
    fill.add_argument("--top-k", type=int, default=5, help="predictions per mask")
    _cache_policy(fill)
    fill.add_argument(
        "--truncate",
        action="store_true",
        help="cut a text longer than the model takes to a window around its masks instead "
        "of failing",
    )
    _full(fill)
    similar = _command(commands, "similar", "nearest words (word2vec)")
    similar.add_argument("positive", nargs="+", help="words the answers are near")
    _model(similar, "word2vec")
    similar.add_argument(
        "--negative",
        nargs="*",
        default=[],
        help="words the answers are far from (default: none)",
    )
    similar.add_argument("--top-k", type=int, default=10, help="how many words")
    tokenize = _command(commands, "tokenize", "show the tokens a model uses")
    tokenize.add_argument("texts", nargs="+", help="the texts to tokenize, one argument each")
    _model(tokenize, "bert, elmo, word2vec")
    _full(tokenize)
    _command(commands, "models", "list the models, their state and what each one is")
    health = _command(
        commands, "health", "the server's health status (exit status 0 only when SERVING)"
    )
    health.add_argument(
        "--service",
        default="",
        help="the gRPC service to ask about, e.g. embedding.v1.EmbeddingService "
        "(default: the whole server)",
    )
    return parser


def _shorten(text: str, full: bool, quote: bool = False) -> str:
    """``text`` as output shows it: whole with --full, else its first SHORT characters, an
    ellipsis and its length. ``quote``: as a Python literal, whitespace made visible."""
    show = repr if quote else str
    if full or len(text) <= SHORT:
        return show(text)
    return f"{show(text[:SHORT])}… ({len(text):,} characters)"


def _run(args: argparse.Namespace, client: EmbeddingClient) -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if args.command == "embed":
        response = client.embed(
            args.texts,
            model=args.model,
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
                Text(_shorten(text, args.full)),
                str(embedding.num_tokens),
                str(vector.shape),
                head + ", …",
                f"{np.linalg.norm(vector):.3f}",
                "yes" if embedding.cached else "no",
            )
        console.print(table)
        for text, embedding in zip(args.texts, response.embeddings, strict=True):
            if embedding.unknown_tokens:
                shown = _shorten(text, args.full, quote=True)
                # word2vec leaves them out; the BERT family embeds them as its unknown token
                unknown = list(embedding.unknown_tokens)
                console.print(Text(f"{shown}: not in the model's vocabulary {unknown}"))
    elif args.command == "fill-mask":
        fills = client.fill_mask(
            args.texts,
            model=args.model,
            top_k=args.top_k,
            cache_policy=args.cache_policy,
            truncate=args.truncate,
        )
        for text, filled in zip(args.texts, fills.results, strict=True):
            for index, mask in enumerate(filled.masks):
                table = Table(title=Text(f"{_shorten(text, args.full)}  (mask {index + 1})"))
                table.add_column("token")
                table.add_column("score")
                table.add_column("sequence")
                for prediction in mask.predictions:
                    table.add_row(
                        Text(prediction.token),
                        f"{prediction.score:.3f}",
                        Text(_shorten(prediction.sequence, args.full)),
                    )
                console.print(table)
    elif args.command == "similar":
        neighbours = client.most_similar(
            args.positive, model=args.model, negative=args.negative, top_k=args.top_k
        )
        for neighbour in neighbours.neighbors:
            console.print(Text(f"{neighbour.word:20s} {neighbour.score:.4f}"))
    elif args.command == "tokenize":
        tokenized = client.tokenize(args.texts, model=args.model).results
        for text, tokens in zip(args.texts, tokenized, strict=True):
            shown = _shorten(text, args.full, quote=True)
            console.print(Text(f"{shown} → {list(tokens.tokens)}"))
    elif args.command == "models":
        models = client.list_models().models
        columns = list(MODEL_COLUMNS)
        if not any(info.state_reason for info in models):
            columns.remove("reason")  # room for the others when every model is fine
        table = Table(title="served models")
        for column in columns:
            table.add_column(column)
        for info in models:
            row = dict(zip(MODEL_COLUMNS, _model_row(info), strict=True))
            table.add_row(*(Text(row[column]) for column in columns))
        console.print(table)
    elif args.command == "health":
        status = client.health(args.service)
        console.print(status)
        return 0 if status == "SERVING" else 1
    return 0


MODEL_COLUMNS = (
    "name",
    "state",
    "version",
    "architecture",
    "dim",
    "layers",
    "max tokens",
    "pooling",
    "normalized",
    "prompts",
    "capabilities",
    "reason",
)
POOLING_NAMES = {value: name for name, value in POOLINGS.items() if name != "default"}
STATE_NAMES = {
    pb.MODEL_STATE_LOADING: "loading",
    pb.MODEL_STATE_READY: "ready",
    pb.MODEL_STATE_DRAINING: "draining",
    pb.MODEL_STATE_FAILED: "failed",
}


def _model_row(info: pb.ModelInfo) -> list[str]:
    """A model's row (MODEL_COLUMNS): its state and why, and what only a loaded version can
    tell (version, architecture, dim, ...) as UNKNOWN while none is, not the zeros the message
    holds."""
    head = [info.name, STATE_NAMES.get(info.state, UNKNOWN), info.version or UNKNOWN]
    if not info.ready:
        known_only_when_loaded = len(MODEL_COLUMNS) - len(head) - 1  # all but the reason
        return [*head, *[UNKNOWN] * known_only_when_loaded, info.state_reason]
    return [
        *head,
        info.architecture,
        str(info.dim),
        str(info.num_layers),
        str(info.max_sequence_length),
        POOLING_NAMES.get(info.default_pooling, ""),
        "yes" if info.default_normalize else "no",
        _prompts(info),
        ", ".join(info.capabilities),
        info.state_reason,
    ]


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
