"""The load keeps its texts within the model's limits, and its own mistakes are not the server's.

A tiny BERT with a 64-token limit (saved as ``save_pretrained`` writes it, imported through the
real exporter) is loaded by ``python -m bench.loadtest`` with real Locust processes, from texts
of which half are longer than the limit: FillMask (which cannot truncate) must send only those
that fit, so the run ends with no failure at all. A load that sends requests the server
refuses as invalid (a prompt the model lacks) is told apart from a failing server: the error
ratio leaves those calls out and the run ends with status 2, not a verdict.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pytest
import torch
from transformers import BertForMaskedLM

from bench.loadtest.locust_files import read_stats
from export.bert.exporter import import_bert
from export.bert.tokenizer import train_wordpiece
from export.bert.train import save_checkpoint
from proto.embedding.v1 import embedding_pb2 as pb
from proto.embedding.v1 import embedding_pb2_grpc as pb_grpc
from tests.checkpoints import WORDS, sentences, tiny_config
from tests.integration.harness import running_server
from tests.loadtest_files import REPO, wait_for_processes

MODEL = "short-mlm"
LIMIT = 64


@pytest.fixture(scope="module")
def short_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository holding a random BertForMaskedLM whose tokenizer and positions stop at 64."""
    root = tmp_path_factory.mktemp("short")
    info = train_wordpiece(sentences(), vocab_size=200)
    torch.manual_seed(3)
    config = tiny_config(info.tokenizer.get_vocab_size())
    config.max_position_embeddings = LIMIT
    save_checkpoint(BertForMaskedLM(config).eval(), info, root / "checkpoint", max_length=LIMIT)
    import_bert(root / "checkpoint", root / "models", MODEL)
    return root / "models"


@pytest.fixture(scope="module")
def texts(short_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Short sentences in the model's vocabulary, and as many longer than its limit."""
    short = sentences(100)
    long = [" ".join(2 * (WORDS[i:] + WORDS[:i])) for i in range(100)]
    with running_server(short_models) as server, grpc.insecure_channel(server.target) as channel:
        stub = pb_grpc.EmbeddingServiceStub(channel)
        assert stub.GetModel(pb.GetModelRequest(model=MODEL)).max_sequence_length == LIMIT
        counted = stub.Tokenize(pb.TokenizeRequest(model=MODEL, texts=short + long)).results
    lengths = [len(result.tokens) for result in counted]
    assert max(lengths[:100]) < LIMIT // 2 and min(lengths[100:]) > LIMIT, lengths
    path = tmp_path_factory.mktemp("texts") / "texts.txt"
    path.write_text("\n".join(line for pair in zip(short, long, strict=True) for line in pair))
    return path


def loadtest(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.loadtest", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_fill_mask_sends_only_texts_within_the_models_limit(
    short_models: Path, texts: Path, tmp_path: Path
) -> None:
    """A plain run (one level) also has no plot against users: it would be one point."""
    out = tmp_path / "report"
    done = loadtest(
        "--models-dir", short_models, "--model", MODEL, "--users", "4", "--run-time", "4s",
        "--texts-file", texts, "--out", out, "--max-error-ratio", "0",
    )  # fmt: skip
    stats = read_stats(out / "locust")
    assert stats.total.failures == 0 and not stats.failures, stats.failures
    calls = {method.name: method.requests for method in stats.methods}
    assert calls.get("FillMask", 0) > 20 and calls.get("Embed", 0) > 20, calls
    assert done.returncode == 0, done.stdout + done.stderr
    log = (out / "locust.log").read_text()
    assert f"FillMask: 100 of 200 texts fit {MODEL}'s {LIMIT} tokens" in log, log
    summary = (out / "summary.md").read_text()
    assert "**PASS**" in summary and f"up to {LIMIT} tokens" in summary
    assert (out / "latency_over_time.png").exists() and "](latency_over_time.png)" in summary
    assert not (out / "throughput_latency.png").exists() and "throughput_latency" not in summary
    assert not wait_for_processes(str(out), present=False, timeout_s=10)


def test_requests_the_server_refuses_as_invalid_are_the_loads_mistake(
    short_models: Path, texts: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    done = loadtest(
        "--models-dir", short_models, "--model", MODEL, "--users", "2", "--run-time", "3s",
        "--texts-file", texts, "--out", out, "--max-error-ratio", "0",
        "--locust-arg=--prompt-name=absent",
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    failures = read_stats(out / "locust").failures
    assert {(failure.name, failure.error) for failure in failures} == {
        ("Embed", "INVALID_ARGUMENT")
    }
    summary = (out / "summary.md").read_text()
    assert "**INVALID LOAD**" in summary and "**PASS**" not in summary, summary
    assert "| error ratio | <= 0.00% | 0.00% |" in summary, summary
    assert "refused as INVALID_ARGUMENT" in done.stderr, done.stderr
