"""The committed gRPC stubs are what grpcio-tools generates from proto/ (else: `make proto`)."""

from __future__ import annotations

import shutil
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[2]
PROTO = "proto/embedding/v1/embedding.proto"


def test_generated_stubs_are_up_to_date(tmp_path: Path) -> None:
    (tmp_path / "proto/embedding/v1").mkdir(parents=True)
    shutil.copy(ROOT / PROTO, tmp_path / PROTO)
    include = str(Path(protoc.__file__).parent / "_proto")
    arguments = [
        "protoc",
        f"-I{tmp_path}",
        f"-I{include}",
        f"--python_out={tmp_path}",
        f"--pyi_out={tmp_path}",
        f"--grpc_python_out={tmp_path}",
        str(tmp_path / PROTO),
    ]
    assert protoc.main(arguments) == 0
    for name in ("embedding_pb2.py", "embedding_pb2.pyi", "embedding_pb2_grpc.py"):
        generated = (tmp_path / "proto/embedding/v1" / name).read_text()
        committed = (ROOT / "proto/embedding/v1" / name).read_text()
        assert generated == committed, f"{name} is stale: run `make proto`"
