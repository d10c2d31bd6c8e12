"""Multipart uploads resume by part: a run killed (SIGKILL) after some parts, then a rerun that
sends only the rest — counted on the client's request log and in the server's part list."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

import modelport
import modelport.package.upload as up
from modelport.package.localstore import LocalS3
from modelport.package.manifest import MANIFEST
from modelport.package.upload import UploadOptions

pytestmark = pytest.mark.s3
MIB = 2**20
PART = 5 * MIB

# a child that uploads, and kills itself (SIGKILL) right after the Nth part reached the store
KILLER = """
import os, signal, sys
import modelport.package.upload as up
after = int(sys.argv[3]); sent = []
real = up._client
def client(o):
    c = real(o)
    def hook(**kw):
        sent.append(1)
        if len(sent) == after:
            os.kill(os.getpid(), signal.SIGKILL)
    c.meta.events.register("after-call.s3.UploadPart", hook)
    return c
up._client = client
up.upload(sys.argv[1], sys.argv[2], up.UploadOptions(endpoint_url=sys.argv[4],
          part_size_bytes=5 * 2**20, concurrency=1), progress=False)
"""


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalS3]:
    with LocalS3(tmp_path_factory.mktemp("weed"), bucket="models") as server:
        yield server


@pytest.fixture
def opts(s3: LocalS3, monkeypatch: pytest.MonkeyPatch) -> UploadOptions:
    for k, v in s3.env().items():
        monkeypatch.setenv(k, v)
    return UploadOptions(endpoint_url=s3.endpoint, part_size_bytes=PART, concurrency=2)


def _bundle(tmp_path: Path, name: str, seed: int = 0, poke: int | None = None) -> Path:
    """A bundle with one 38 MiB weight file (8 parts of 5 MiB); ``poke`` changes one value."""
    d = tmp_path / f"{name}-src"
    d.mkdir()
    w = torch.randn(38 * MIB // 4, generator=torch.Generator().manual_seed(seed))
    if poke is not None:
        w[poke] += 1
    save_file({"w": w}, d / "model.safetensors", metadata={"format": "pt"})
    (d / "config.json").write_text(json.dumps({"model_type": "llama",
                                               "architectures": ["LlamaForCausalLM"]}))
    (d / "tokenizer.json").write_text("{}")
    modelport.package(d, tmp_path / name, ["watsonx-saas"], force=True)
    return tmp_path / name


def _kill_after(bundle: Path, url: str, s3: LocalS3, parts: int) -> None:
    r = subprocess.run([sys.executable, "-c", KILLER, str(bundle), url, str(parts), s3.endpoint],
                       env={**os.environ, **s3.env()}, capture_output=True, timeout=120)
    assert r.returncode == -signal.SIGKILL, r.stderr.decode()[-2000:]


def _client(s3: LocalS3) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=s3.endpoint, aws_access_key_id=s3.access_key,
                        aws_secret_access_key=s3.secret_key, region_name="us-east-1")


def _open_parts(s3: LocalS3, key: str) -> list[int]:
    c = _client(s3)
    ups = [u for u in c.list_multipart_uploads(Bucket="models").get("Uploads", [])
           if u["Key"] == key]
    assert len(ups) == 1
    parts = c.list_parts(Bucket="models", Key=key, UploadId=ups[0]["UploadId"])
    return sorted(p["PartNumber"] for p in parts.get("Parts", []))


@pytest.fixture
def count_parts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every UploadPart request the next upload makes, from the client's own event log."""
    sent: list[int] = []
    real = up._client

    def client(o: UploadOptions) -> Any:
        c = real(o)
        c.meta.events.register("before-parameter-build.s3.UploadPart",
                               lambda params, **kw: sent.append(params["PartNumber"]))
        return c

    monkeypatch.setattr(up, "_client", client)
    return sent


def test_killed_upload_resumes_with_the_missing_parts_only(
        tmp_path: Path, s3: LocalS3, opts: UploadOptions, count_parts: list[int]) -> None:
    bundle = _bundle(tmp_path, "b")
    url = "s3://models/resume/a"
    _kill_after(bundle, url, s3, parts=3)
    assert _open_parts(s3, "resume/a/model.safetensors") == [1, 2, 3]
    rep = modelport.upload(bundle, url, opts, progress=False)
    weights = next(o for o in rep.uploaded if o.key.endswith("model.safetensors"))
    size = (bundle / "model.safetensors").stat().st_size
    assert sorted(count_parts) == [4, 5, 6, 7, 8]  # the rerun sent only the rest
    assert (weights.parts_kept, weights.parts_sent) == (3, 5)
    assert rep.bytes_kept == 3 * PART
    assert rep.bytes_sent == sum(o.size for o in rep.uploaded if o.status == "uploaded") - 3 * PART
    assert modelport.verify(url, opts).ok
    assert not _client(s3).list_multipart_uploads(Bucket="models").get("Uploads")
    assert weights.size == size


def test_parts_of_other_bytes_are_sent_again(tmp_path: Path, s3: LocalS3, opts: UploadOptions,
                                             count_parts: list[int]) -> None:
    """The bundle changed between the runs (one value in part 2): part 2 is sent again, the
    stored metadata of the old upload is not trusted, and what arrives is the new file."""
    url = "s3://models/resume/b"
    _kill_after(_bundle(tmp_path, "old"), url, s3, parts=3)
    new = _bundle(tmp_path, "new", poke=(PART + 1000) // 4)
    rep = modelport.upload(new, url, opts, progress=False)
    assert sorted(count_parts) == [2, 4, 5, 6, 7, 8]  # 1 and 3 had the same bytes
    weights = next(o for o in rep.uploaded if o.key.endswith("model.safetensors"))
    assert (weights.parts_kept, weights.parts_sent) == (2, 6)
    assert modelport.verify(url, opts).ok
    head = _client(s3).head_object(Bucket="models", Key="resume/b/model.safetensors")
    m = json.loads((new / MANIFEST).read_text())
    sha = next(f["sha256"] for f in m["files"] if f["path"] == "model.safetensors")
    assert head["Metadata"]["sha256"] == sha
    assert rep.uploaded[-1].status == "manifest"


def test_open_uploads_of_other_keys_are_aborted(tmp_path: Path, s3: LocalS3,
                                                opts: UploadOptions) -> None:
    c = _client(s3)
    c.create_multipart_upload(Bucket="models", Key="resume/c/old-shard.safetensors")
    c.create_multipart_upload(Bucket="models", Key="elsewhere/x")
    rep = modelport.upload(_bundle(tmp_path, "c"), "s3://models/resume/c", opts, progress=False)
    left = {u["Key"] for u in c.list_multipart_uploads(Bucket="models").get("Uploads", [])}
    assert rep.aborted_multipart == 1 and left == {"elsewhere/x"}  # other prefixes untouched
