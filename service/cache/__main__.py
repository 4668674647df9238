"""``python -m service.cache flush``: remove cached results from Redis, one model's or all.

    python -m service.cache flush --redis-url redis://HOST:6379/0 --model bert
    python -m service.cache flush --redis-url redis://HOST:7000 --cluster --all

It walks the key space with SCAN on the key prefix (``service.cache.keys``) and removes what
matches with UNLINK, in batches, so Redis keeps serving meanwhile; it never runs FLUSHDB, and
keys outside the cache's prefix are never touched. On a Cluster it scans every primary.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence

import redis
import redis.cluster

from service.cache.keys import match_pattern

BATCH = 500


def _batches(keys: Iterator[bytes]) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for key in keys:
        batch.append(key)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _flush_node(node: redis.Redis, pattern: str, one_slot_per_command: bool) -> int:
    """Remove the keys matching ``pattern`` that live on ``node``; returns how many went."""
    removed = 0
    for batch in _batches(node.scan_iter(match=pattern, count=BATCH)):
        if one_slot_per_command:  # a Cluster refuses multi-key commands across slots
            pipe = node.pipeline(transaction=False)
            for key in batch:
                pipe.unlink(key)
            removed += sum(int(count) for count in pipe.execute())
        else:
            removed += int(node.unlink(*batch))
    return removed


def flush(url: str, cluster: bool, model: str | None) -> int:
    """Remove one model's cached entries (every entry when ``model`` is None); returns the count."""
    pattern = match_pattern(model)
    if not cluster:
        with redis.Redis.from_url(url) as client:
            return _flush_node(client, pattern, one_slot_per_command=False)
    with redis.cluster.RedisCluster.from_url(url) as client:
        return sum(
            _flush_node(node.redis_connection, pattern, one_slot_per_command=True)
            for node in client.get_primaries()
            if node.redis_connection is not None
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="python -m service.cache",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    flush_command = commands.add_parser(
        "flush", allow_abbrev=False, help="remove cached results from Redis"
    )
    flush_command.add_argument("--redis-url", required=True, help="as the server's --redis-url")
    flush_command.add_argument("--cluster", action="store_true", help="the URL names a Cluster")
    which = flush_command.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="remove this model's entries (every version)")
    which.add_argument("--all", action="store_true", help="remove every cached entry")
    args = parser.parse_args(argv)
    try:
        removed = flush(args.redis_url, args.cluster, None if args.all else args.model)
    except redis.RedisError as error:
        print(f"flush failed: {error}", file=sys.stderr)
        return 1
    scope = "every model" if args.all else f"model {args.model}"
    print(f"removed {removed} cached entries of {scope}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
