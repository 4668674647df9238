"""The locustfile's interceptor over a real channel to the real server: what it reports to
Locust for a success, a failure, a stream, and a server that is not there."""

from __future__ import annotations

import contextlib
from typing import Any

import grpc
from embedload.calls import GrpcStatusError, Target, open_channel, reporting_channel

from proto.embedding.v1 import embedding_pb2 as pb
from proto.embedding.v1 import embedding_pb2_grpc as pb_grpc
from tests.integration.harness import ServerThread
from tests.redis_servers import free_port


class Reports:
    """Collects what would go to Locust's ``events.request.fire``."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **report: Any) -> None:
        self.calls.append(report)


def stub_for(target: str, reports: Reports) -> tuple[grpc.Channel, pb_grpc.EmbeddingServiceStub]:
    channel = open_channel(Target.parse(target))
    return channel, pb_grpc.EmbeddingServiceStub(reporting_channel(channel, reports))


def test_a_call_is_reported_with_its_method_time_and_size(server: ServerThread) -> None:
    reports = Reports()
    channel, stub = stub_for(server.target, reports)
    with channel:
        response = stub.Embed(pb.EmbedRequest(model="tiny-mlm", texts=["the river bank"]))
    (report,) = reports.calls
    assert report["request_type"] == "grpc" and report["name"] == "Embed"
    assert report["response_length"] == response.ByteSize() > 0
    assert 0 < report["response_time"] < 30_000 and report["exception"] is None


def test_a_failure_is_reported_with_its_status_name(server: ServerThread) -> None:
    reports = Reports()
    channel, stub = stub_for(server.target, reports)
    with channel:
        try:
            stub.FillMask(pb.FillMaskRequest(model="no-such-model", texts=["a [MASK]"]))
        except grpc.RpcError as error:
            code = error.code()
    (report,) = reports.calls
    assert isinstance(report["exception"], GrpcStatusError)
    assert repr(report["exception"]) == code.name == "NOT_FOUND"
    assert report["name"] == "FillMask" and report["response_length"] == 0


def test_a_stream_is_one_report_when_it_ends(server: ServerThread) -> None:
    reports = Reports()
    channel, stub = stub_for(server.target, reports)
    requests = [pb.EmbedRequest(model="tiny-mlm", texts=[f"the bank {i}"]) for i in range(3)]
    with channel:
        responses = list(stub.EmbedStream(iter(requests)))
    (report,) = reports.calls
    assert report["name"] == "EmbedStream" and report["exception"] is None
    assert report["response_length"] == sum(r.ByteSize() for r in responses) and len(responses) == 3


def test_no_server_is_unavailable() -> None:
    reports = Reports()
    channel, stub = stub_for(f"127.0.0.1:{free_port()}", reports)
    with channel, contextlib.suppress(grpc.RpcError):
        stub.Embed(pb.EmbedRequest(model="tiny-mlm", texts=["x"]), timeout=5)
    (report,) = reports.calls
    assert repr(report["exception"]) == "UNAVAILABLE"
