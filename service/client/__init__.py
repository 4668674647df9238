"""Clients for the embedding service, blocking (``EmbeddingClient``) and asyncio
(``AsyncEmbeddingClient``), with the same methods, and a console command
(``python -m service.client --help``).

``channel`` holds what both clients connect with (options, TLS, token, their one
constructor), ``messages`` the requests both send, ``sync`` and ``aio`` the two clients,
``cli`` the command. Every name importable from ``service.client`` before it became a
package still is.

Methods that take texts (or words) and a model take the model by keyword,
``client.embed(texts, model="bert")``: the order most people guess, the model first, is a
TypeError that says so, and the older positional order still works with a DeprecationWarning.
"""

from service.client.aio import AsyncEmbeddingClient
from service.client.channel import (
    DEFAULT_TARGET,
    KEEPALIVE_TIME_MS,
    KEEPALIVE_TIMEOUT_MS,
    LOAD_BALANCING,
    FilePath,
    auth_metadata,
    channel_credentials,
    channel_options,
    read_token_file,
)
from service.client.cli import main
from service.client.messages import (
    CACHE_POLICIES,
    ENCODINGS,
    POOLINGS,
    embed_request,
    fill_mask_request,
    get_model_request,
    most_similar_request,
    tokenize_request,
    vectors,
)
from service.client.sync import EmbeddingClient

__all__ = [
    "CACHE_POLICIES",
    "DEFAULT_TARGET",
    "ENCODINGS",
    "KEEPALIVE_TIMEOUT_MS",
    "KEEPALIVE_TIME_MS",
    "LOAD_BALANCING",
    "POOLINGS",
    "AsyncEmbeddingClient",
    "EmbeddingClient",
    "FilePath",
    "auth_metadata",
    "channel_credentials",
    "channel_options",
    "embed_request",
    "fill_mask_request",
    "get_model_request",
    "main",
    "most_similar_request",
    "read_token_file",
    "tokenize_request",
    "vectors",
]
