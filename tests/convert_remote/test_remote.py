"""convert reads s3://bucket/prefix sources with ranged GETs (a real SeaweedFS server): a
pickled sharded model and a safetensors model give the bytes of a local convert; the bytes
fetched are counted (at most the files' sizes), the local scratch space stays about one shard,
and a broken or missing source is one clear error."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import modelport
from modelport.errors import CheckpointError, InputError
from modelport.package.localstore import LocalS3
from tests.conftest import save_bin, tiny_model

pytestmark = pytest.mark.s3
SHARD = 120_000


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalS3]:
    with LocalS3(tmp_path_factory.mktemp("weed"), bucket="models") as server:
        yield server


@pytest.fixture
def store(s3: LocalS3, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    for k, v in s3.env().items():
        monkeypatch.setenv(k, v)
    return {"endpoint_url": s3.endpoint}


def _client(s3: LocalS3) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=s3.endpoint, aws_access_key_id=s3.access_key,
                        aws_secret_access_key=s3.secret_key, region_name="us-east-1")


def _upload(s3: LocalS3, folder: Path, prefix: str) -> int:
    c = _client(s3)
    total = 0
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            c.upload_file(str(p), "models", f"{prefix}/{p.relative_to(folder).as_posix()}")
            total += p.stat().st_size
    return total


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _model(folder: Path, kind: str) -> Path:
    model = tiny_model("llama")
    model.config.architectures = ["LlamaForCausalLM"]
    model.config.save_pretrained(folder)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if kind == "pickle":
        save_bin(state, folder, shards=3)
    else:
        from safetensors.torch import save_file

        names = list(state)
        half = len(names) // 2
        parts = [names[:half], names[half:]]
        wm = {}
        for i, part in enumerate(parts):
            f = f"model-{i + 1:05d}-of-00002.safetensors"
            save_file({k: state[k] for k in part}, folder / f, metadata={"format": "pt"})
            wm.update(dict.fromkeys(part, f))
        (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": wm}))
    (folder / "tokenizer.json").write_text("{}")
    return folder


@pytest.mark.parametrize("kind", ["pickle", "safetensors"])
def test_convert_from_a_bucket(kind: str, tmp_path: Path, s3: LocalS3,
                               store: dict[str, Any]) -> None:
    src = _model(tmp_path / "m", kind)
    size = _upload(s3, src, f"remote/{kind}")
    local = modelport.convert(src, tmp_path / "local", max_shard_size=SHARD, progress=False)
    rep = modelport.convert(f"s3://models/remote/{kind}", tmp_path / "out",
                            max_shard_size=SHARD, progress=False, store=store)
    assert [o.path for o in rep.outputs] == [o.path for o in local.outputs]
    for o, lo in zip(rep.outputs, local.outputs, strict=True):
        assert o.sha256 == lo.sha256, o.path  # byte for byte
        assert (tmp_path / "out" / o.path).read_bytes() == (tmp_path / "local" / o.path
                                                            ).read_bytes()
    assert rep.src == f"s3://models/remote/{kind}"
    assert all(i.path.startswith("s3://models/") for i in rep.inputs)
    # every byte at most once: the files' sizes bound what was fetched
    assert rep.remote_bytes_fetched is not None and rep.remote_bytes_fetched <= size
    weights = sum(i.size for i in rep.inputs)
    assert rep.remote_bytes_fetched >= 0.9 * local.total_bytes  # the tensors were fetched
    # the sparse mirror held about a shard of source bytes, never the model
    assert rep.remote_scratch_peak is not None and rep.remote_scratch_peak < weights
    from transformers import AutoModelForCausalLM

    a = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    b = AutoModelForCausalLM.from_pretrained(tmp_path / "local").eval()
    ids = torch.randint(0, 200, (1, 9))
    with torch.no_grad():
        assert torch.equal(a(ids).logits, b(ids).logits)


def test_inspect_check_and_prepare_from_a_bucket(tmp_path: Path, s3: LocalS3,
                                                 store: dict[str, Any]) -> None:
    from click.testing import CliRunner

    from modelport.cli.main import cli
    from tests.spark.conftest import write_wordlevel_tokenizer

    src = _model(tmp_path / "m", "pickle")
    write_wordlevel_tokenizer(src)
    size = _upload(s3, src, "remote/full")
    url = "s3://models/remote/full"
    info = modelport.inspect(url, store=store)
    local = modelport.inspect(src)
    assert (info.tensors, info.parameters, info.path) == (local.tensors, local.parameters, url)
    assert info.remote_bytes_fetched is not None
    assert info.remote_bytes_fetched < size // 3  # headers, zip directories, small files
    rep = modelport.check(url, ["watsonx-saas"], store=store)
    assert rep.path == url
    assert [f.rule_id for t in rep.targets for f in t.findings] == [
        f.rule_id for t in modelport.check(src, ["watsonx-saas"]).targets for f in t.findings]
    cmds = [f.command for t in rep.targets for f in t.findings if f.command]
    assert cmds and all(c.split()[1] in ("convert", "prepare") and url in c for c in cmds)
    out = modelport.prepare(url, tmp_path / "bundle", ["watsonx-saas"], store=store,
                            progress=False)
    assert out.steps[0].verb == "fetch" and out.manifest.provenance.source == url
    assert modelport.verify(tmp_path / "bundle").ok
    assert not list(tmp_path.glob(".*modelport-work"))
    r = CliRunner().invoke(cli, ["convert", url, str(tmp_path / "cli"), "--endpoint-url",
                                 s3.endpoint])
    assert r.exit_code == 0, r.output
    assert "ranged GETs; local scratch peak" in r.output
    r = CliRunner().invoke(cli, ["inspect", url, "--endpoint-url", s3.endpoint, "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["path"] == url


def test_broken_and_missing_remote_sources(tmp_path: Path, s3: LocalS3,
                                           store: dict[str, Any]) -> None:
    src = _model(tmp_path / "m", "pickle")
    shard = src / "pytorch_model-00002-of-00003.bin"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    _upload(s3, src, "remote/broken")
    with pytest.raises(CheckpointError, match="00002-of-00003"):
        modelport.convert("s3://models/remote/broken", tmp_path / "o", progress=False,
                          store=store)
    assert not (tmp_path / "o").exists()
    with pytest.raises(InputError, match="no objects"):
        modelport.convert("s3://models/remote/nothing-here", tmp_path / "o", store=store)


def test_bucket_to_bucket(tmp_path: Path, s3: LocalS3, store: dict[str, Any]) -> None:
    """Both ends in the store: each shard is uploaded once written and verified, its local
    copy removed; the index last; the objects are the bytes of a local convert."""
    src = _model(tmp_path / "m", "pickle")
    _upload(s3, src, "remote/b2b-src")
    local = modelport.convert(src, tmp_path / "local", max_shard_size=SHARD, progress=False)
    rep = modelport.convert("s3://models/remote/b2b-src", "s3://models/remote/b2b-out",
                            max_shard_size=SHARD, progress=False, store=store)
    assert rep.dst == "s3://models/remote/b2b-out"
    c = _client(s3)
    for o in local.outputs:
        body = c.get_object(Bucket="models", Key=f"remote/b2b-out/{o.path}")["Body"].read()
        assert body == (tmp_path / "local" / o.path).read_bytes(), o.path
        head = c.head_object(Bucket="models", Key=f"remote/b2b-out/{o.path}")
        assert head["Metadata"]["sha256"] == o.sha256
    listed = c.list_objects_v2(Bucket="models", Prefix="remote/b2b-out/")["Contents"]
    assert {x["Key"].rsplit("/", 1)[1] for x in listed} == {o.path for o in local.outputs}


def test_any_fsspec_url_is_read_the_same_way(tmp_path: Path) -> None:
    """file:// through fsspec (gs://, abfs://, oci:// take the same path with their
    packages): ranged reads, the bytes of a local convert, fewer bytes than the files hold."""
    src = _model(tmp_path / "m", "pickle")
    local = modelport.convert(src, tmp_path / "local", max_shard_size=SHARD, progress=False)
    rep = modelport.convert(f"file://{src}", tmp_path / "out", max_shard_size=SHARD,
                            progress=False)
    assert [o.sha256 for o in rep.outputs] == [o.sha256 for o in local.outputs]
    size = sum(p.stat().st_size for p in src.iterdir())
    assert rep.remote_bytes_fetched is not None and rep.remote_bytes_fetched <= size
    info = modelport.inspect(f"file://{src}")
    assert info.tensors == modelport.inspect(src).tensors


class _ResettingProxy:
    """A TCP proxy to the S3 server that resets a connection (RST) once it has passed
    ``cut_after`` bytes of response, ``resets`` times; ``done`` counts the resets that landed
    (each one inside a response body bigger than ``cut_after``)."""

    def __init__(self, upstream: str, cut_after: int, resets: int) -> None:
        import socket
        import threading
        from urllib.parse import urlparse

        u = urlparse(upstream)
        self.up = (u.hostname or "127.0.0.1", u.port or 80)
        self.cut_after, self.left, self.done = cut_after, resets, 0
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.endpoint = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while not self.stop:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(self.up)
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, a, b, response: bool) -> None:  # type: ignore[no-untyped-def]
        import socket
        import struct

        passed = 0
        try:
            while data := a.recv(65536):
                passed += len(data)
                if response and passed > self.cut_after:
                    with self.lock:
                        cut = self.left > 0
                        self.left -= cut
                        self.done += cut
                    if cut:  # send part, then reset both ends mid-body (shutdown first:
                        b.sendall(data[: len(data) // 2])  # it wakes the other pump's recv)
                        for s in (a, b):
                            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                         struct.pack("ii", 1, 0))
                            s.shutdown(socket.SHUT_RDWR)
                            s.close()
                        return
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self) -> None:
        self.stop = True
        self.sock.close()


def test_reads_survive_connections_reset_mid_body(tmp_path: Path, s3: LocalS3,
                                                  store: dict[str, Any]) -> None:
    """Through a proxy that resets connections in the middle of response bodies, convert
    from a bucket resumes each cut read where it stopped and writes the local bytes."""
    from safetensors.torch import save_file

    src = tmp_path / "m"
    model = tiny_model("llama")
    model.config.save_pretrained(src)
    big = {k: v.contiguous() for k, v in model.state_dict().items()}
    big["extra.weight"] = torch.randn(512, 1024)  # 2 MiB: a body the proxy cuts
    save_file(big, src / "model.safetensors", metadata={"format": "pt"})
    _upload(s3, src, "remote/reset")
    local = modelport.convert(src, tmp_path / "local", progress=False)
    proxy = _ResettingProxy(s3.endpoint, cut_after=256 * 1024, resets=3)
    try:
        rep = modelport.convert("s3://models/remote/reset", tmp_path / "out", progress=False,
                                store={"endpoint_url": proxy.endpoint})
    finally:
        proxy.close()
    assert proxy.done == 3  # the resets landed, mid-body
    assert [o.sha256 for o in rep.outputs] == [o.sha256 for o in local.outputs]
    assert rep.remote_requests is not None and rep.remote_requests >= 3
    # inspect (headers) and prepare (the whole model) read through the same resumed reads
    model.save_pretrained(tmp_path / "plain")  # prepare's model: one config.json names
    _upload(s3, tmp_path / "plain", "remote/plain")
    local = modelport.convert(tmp_path / "plain", tmp_path / "plain-local", progress=False)
    for verb in ("inspect", "prepare"):
        proxy = _ResettingProxy(s3.endpoint, cut_after=512, resets=2)
        try:
            where = {"endpoint_url": proxy.endpoint}
            if verb == "inspect":
                got = modelport.inspect("s3://models/remote/reset", store=where)
                assert got.parameters == modelport.inspect(src).parameters
            else:
                out = modelport.prepare("s3://models/remote/plain", tmp_path / "bundle",
                                        ["databricks-custom-gpu"], store=where, progress=False)
                assert modelport.verify(tmp_path / "bundle").ok
                weights = {o.path: o.sha256 for o in local.outputs if o.role == "weights"}
                assert {f.path: f.sha256 for f in out.manifest.files
                        if f.path in weights} == weights
        finally:
            proxy.close()
        assert proxy.done == 2, verb


def test_a_computed_format_goes_to_a_bucket(tmp_path: Path, s3: LocalS3,
                                            store: dict[str, Any]) -> None:
    """A Megatron checkpoint (tensors computed from 2 ranks) converts into a bucket shard by
    shard, the objects the bytes of a local convert."""
    from tests.convert_meta.test_megatron import _llama, write_megatron

    run = write_megatron(_llama(), tmp_path / "run", 2)
    local = modelport.convert(run, tmp_path / "local", max_shard_size="100KB", progress=False)
    rep = modelport.convert(run, "s3://models/remote/mg-out", max_shard_size="100KB",
                            progress=False, store=store)
    assert [o.path for o in rep.outputs] == [o.path for o in local.outputs]
    c = _client(s3)
    assert sum(o.role == "weights" for o in local.outputs) > 1
    for o in local.outputs:
        body = c.get_object(Bucket="models", Key=f"remote/mg-out/{o.path}")["Body"].read()
        assert body == (tmp_path / "local" / o.path).read_bytes(), o.path


def _zero(d: Path) -> Path:
    from tests.convert_zero.writers import write_zero

    return write_zero(d, 3, "bf16", "llama", 2)  # DeepSpeed's own writer, 2 CPU ranks


@pytest.mark.parametrize("fmt", ["dcp", "zero", "meta", "gguf", "llama2c", "megatron"])
def test_a_computed_format_is_read_from_a_bucket_whole(tmp_path: Path, s3: LocalS3,
                                                       store: dict[str, Any], fmt: str) -> None:
    """A computed format in a bucket is downloaded whole, then converted: every output file
    (shards, index, config.json, tokenizer) has the bytes of a local convert of the same
    files, ``inspect`` from the bucket finds the same tensors, and Spark's job refuses it in
    one line before any task runs (each task would download it again)."""
    from modelport.errors import UnsupportedError
    from modelport.spark.distributed import convert_distributed
    from tests.functional.test_format_matrix import FORMATS

    src = _zero(tmp_path / "run") if fmt == "zero" else FORMATS[fmt](tmp_path / "run")
    folder = src if src.is_dir() else src.parent
    local = modelport.convert(src, tmp_path / "local", max_shard_size="100KB", progress=False)
    size = _upload(s3, folder, f"remote/{fmt}-src")
    url = f"s3://models/remote/{fmt}-src"
    rep = modelport.convert(url, tmp_path / "got", max_shard_size="100KB", progress=False,
                            store=store)
    assert rep.remote_read == "whole files"
    assert rep.remote_bytes_fetched is not None and rep.remote_bytes_fetched >= size
    assert any("downloaded to scratch first" in w for w in rep.warnings), rep.warnings
    assert sum(o.role == "weights" for o in rep.outputs) > 1
    assert {o.path: o.sha256 for o in rep.outputs} == {o.path: o.sha256 for o in local.outputs}
    for o in local.outputs:  # hashed here, not by modelport
        assert _sha(tmp_path / "got" / o.path) == _sha(tmp_path / "local" / o.path), o.path
    remote, here = modelport.inspect(url, store=store), modelport.inspect(src)
    assert (remote.tensors, remote.parameters) == (here.tensors, here.parameters) != (0, 0)
    with pytest.raises(UnsupportedError, match="every task would download again"):
        convert_distributed(None, url, str(tmp_path / "spark"), **store)
    assert not (tmp_path / "spark").exists()
