"""convert_distributed on Spark (local mode): one task per shard, folder to folder and into a
real S3 server; identical tensors to a local convert; a task killed mid-shard and retried."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import modelport
from modelport.package.localstore import LocalS3
from modelport.spark import convert_distributed
from tests.spark.conftest import llama_folder

pytestmark = [pytest.mark.spark]
SHARD = 150_000  # bytes: the tiny llama in 3 shards


def _die_once(path: Path) -> None:
    """Kill the Python worker after the shard's bytes are written, on the first attempt only
    (Spark then retries the task)."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    if ctx is not None and ctx.attemptNumber() == 0 and ctx.partitionId() == 1:
        os._exit(17)



def _tensors(folder: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(f))
    return out


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return llama_folder(tmp_path_factory.mktemp("src") / "llama", shards=3)


@pytest.fixture(scope="module")
def local(src: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("local") / "out"
    modelport.convert(src, out, max_shard_size=SHARD, progress=False)
    return out


def test_folder_to_folder_with_a_killed_task(spark, src: Path, local: Path, tmp_path: Path
                                             ) -> None:
    out = tmp_path / "dist"
    rep = convert_distributed(spark, src, str(out), max_shard_size=SHARD,
                              _after_write=_die_once)
    n = len(list(local.glob("*.safetensors")))
    assert n >= 3 and len(rep.shards) == n and all(s.status == "written" for s in rep.shards)
    retried = [s for s in rep.shards if s.partition == 1]
    assert retried[0].attempt == 1  # the killed task ran again, and wrote its shard anew
    names = sorted(p.name for p in local.iterdir() if not p.name.startswith("."))
    assert sorted(p.name for p in out.iterdir()) == names  # no partial file left either
    for name in names:  # the same bytes as a local convert
        assert (out / name).read_bytes() == (local / name).read_bytes(), name
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(_tensors(out))
    # a rerun finds every shard complete and keeps it
    again = convert_distributed(spark, src, str(out), max_shard_size=SHARD, overwrite=True)
    assert {s.status for s in again.shards} == {"kept"}
    assert [s.sha256 for s in again.shards] == [s.sha256 for s in rep.shards]


def _client(s3: LocalS3):  # type: ignore[no-untyped-def]
    import boto3

    return boto3.client("s3", endpoint_url=s3.endpoint, aws_access_key_id=s3.access_key,
                        aws_secret_access_key=s3.secret_key, region_name="us-east-1")


def test_folder_and_bucket_to_bucket(spark, src: Path, local: Path) -> None:
    with LocalS3(local.parent.parent / "weed-dist", bucket="models") as s3:
        url = "s3://models/dist/llama"
        rep = convert_distributed(spark, src, url, max_shard_size=SHARD,
                                  endpoint_url=s3.endpoint)
        assert rep.files[-1].path == "model.safetensors.index.json"  # written last
        client = _client(s3)
        for f in rep.files:
            body = client.get_object(Bucket="models", Key=f"dist/llama/{f.path}")["Body"].read()
            assert body == (local / f.path).read_bytes(), f.path
        again = convert_distributed(spark, src, url, max_shard_size=SHARD,
                                    endpoint_url=s3.endpoint)
        assert {s.status for s in again.shards} == {"kept"}
        # bucket to bucket: the source read with ranged GETs, each task its shard's bytes
        for p in src.iterdir():
            client.upload_file(str(p), "models", f"dist/src/{p.name}")
        b2b = convert_distributed(spark, "s3://models/dist/src", "s3://models/dist/b2b",
                                  max_shard_size=SHARD, endpoint_url=s3.endpoint)
        assert [f.path for f in b2b.files] == [f.path for f in rep.files]
        for f in b2b.files:
            body = client.get_object(Bucket="models", Key=f"dist/b2b/{f.path}")["Body"].read()
            assert body == (local / f.path).read_bytes(), f.path


def _pause_for_the_server(flag: Path, path: Path) -> None:
    """Partition 1, first attempt: say so, then wait until the test has stopped the server
    (the task's upload then meets a dead endpoint)."""
    import time

    from pyspark import TaskContext

    ctx = TaskContext.get()
    if ctx is not None and ctx.partitionId() == 1 and ctx.attemptNumber() == 0:
        (flag / "written").touch()
        for _ in range(600):
            if (flag / "stopped").exists():
                return
            time.sleep(0.05)


def test_object_server_restarted_mid_job(spark, src: Path, local: Path, tmp_path: Path
                                         ) -> None:
    """The S3 server dies while a task is writing: the job fails with the store's error;
    after a restart, a rerun keeps the shards that had arrived and writes the rest."""
    import functools
    import threading
    import time

    flags = tmp_path / "flags"
    flags.mkdir()
    s3 = LocalS3(tmp_path / "weed", bucket="models")
    s3.start()
    try:
        def stopper() -> None:
            for _ in range(1200):
                if (flags / "written").exists():
                    s3.stop()
                    (flags / "stopped").touch()
                    return
                time.sleep(0.05)

        th = threading.Thread(target=stopper)
        th.start()
        with pytest.raises(Exception, match=r"(?s)put|Connect|endpoint|Storage"):
            convert_distributed(spark, src, "s3://models/restart", max_shard_size=SHARD,
                                endpoint_url=s3.endpoint,
                                _after_write=functools.partial(_pause_for_the_server, flags))
        th.join()
        s3.start()  # the same data folder and ports
        rep = convert_distributed(spark, src, "s3://models/restart", max_shard_size=SHARD,
                                  endpoint_url=s3.endpoint)
        assert "written" in {x.status for x in rep.shards}  # what had not arrived
        client = _client(s3)
        for f in rep.files:
            body = client.get_object(Bucket="models", Key=f"restart/{f.path}")["Body"].read()
            assert body == (local / f.path).read_bytes(), f.path
        assert not client.list_multipart_uploads(Bucket="models").get("Uploads")
    finally:
        s3.stop()


def test_a_broken_source_fails_on_the_driver(spark, src: Path, tmp_path: Path) -> None:
    from modelport.errors import CheckpointError

    bad = tmp_path / "bad"
    bad.mkdir()
    for p in src.iterdir():
        (bad / p.name).write_bytes(p.read_bytes())
    shard = bad / "pytorch_model-00002-of-00003.bin"
    shard.write_bytes(shard.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="00002-of-00003"):
        convert_distributed(spark, bad, str(tmp_path / "o"), max_shard_size=SHARD)
    assert not (tmp_path / "o").exists()


def test_a_computed_format_is_distributed_shard_by_shard(spark, tmp_path: Path) -> None:
    """A Megatron checkpoint on 2 ranks: each task opens it, computes its shard's tensors and
    proves them (a task killed after writing is retried); the driver writes config.json and
    the index; the folder has the bytes of a local convert."""
    from tests.convert_meta.test_megatron import _llama, write_megatron

    run = write_megatron(_llama(), tmp_path / "run", 2)
    local = tmp_path / "local"
    modelport.convert(run, local, max_shard_size="100KB", progress=False)
    out = tmp_path / "dist"
    rep = convert_distributed(spark, str(run), str(out), max_shard_size="100KB",
                              _after_write=_die_once)
    names = sorted(p.name for p in local.iterdir() if not p.name.startswith("."))
    assert len(rep.shards) > 2 and sorted(p.name for p in out.iterdir()) == names
    assert [s.attempt for s in rep.shards if s.partition == 1] == [1]
    for name in names:
        assert (out / name).read_bytes() == (local / name).read_bytes(), name
    # a rerun computes each shard's tensors again and keeps the shards that hold them
    again = convert_distributed(spark, str(run), str(out), max_shard_size="100KB",
                                overwrite=True)
    assert {s.status for s in again.shards} == {"kept"}
    assert [s.sha256 for s in again.shards] == [s.sha256 for s in rep.shards]
    # a shard whose bytes changed (same size) is written again, the others kept
    victim = out / rep.shards[0].path
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF
    victim.write_bytes(bytes(data))
    third = convert_distributed(spark, str(run), str(out), max_shard_size="100KB",
                                overwrite=True)
    assert [s.status for s in third.shards] == ["written"] + ["kept"] * (len(rep.shards) - 1)
    assert victim.read_bytes() == (local / victim.name).read_bytes()
