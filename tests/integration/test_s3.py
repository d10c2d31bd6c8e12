"""package / upload / verify / prepare against a real S3 server (SeaweedFS, started here)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import modelport
from modelport.cli.main import cli
from modelport.errors import InputError, RemoteIntegrityError, StorageError, TargetCheckFailed
from modelport.package.localstore import LocalS3
from modelport.package.manifest import MANIFEST
from modelport.package.upload import UploadOptions
from tests.conftest import save_bin, tiny_model

pytestmark = pytest.mark.s3


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalS3]:
    server = LocalS3(tmp_path_factory.mktemp("weed"), bucket="models")
    with server:
        yield server


@pytest.fixture
def creds(s3: LocalS3, monkeypatch: pytest.MonkeyPatch) -> UploadOptions:
    for k, v in s3.env().items():
        monkeypatch.setenv(k, v)
    return UploadOptions(endpoint_url=s3.endpoint)


def _client(s3: LocalS3):  # type: ignore[no-untyped-def]
    import boto3

    return boto3.client("s3", endpoint_url=s3.endpoint, aws_access_key_id=s3.access_key,
                        aws_secret_access_key=s3.secret_key, region_name="us-east-1")


@pytest.fixture(scope="module")
def llama_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pickled llama checkpoint with a sentencepiece tokenizer and no tokenizer.json (nor
    tokenizer_config.json: config.json's model_type says LlamaTokenizer)."""
    d = tmp_path_factory.mktemp("src") / "llama"
    model = tiny_model("llama")
    model.config.architectures = ["LlamaForCausalLM"]
    model.config.save_pretrained(d)
    save_bin(model.state_dict(), d, shards=2)
    # a Llama-style sentencepiece BPE trained here, so that these tests need nothing from
    # ../shared and run in CI
    from tests.convert_tok import trained

    tok = tmp_path_factory.mktemp("tok")
    trained.spm(tok / "spm", trained.training_text(tok), "tokenizer.model",
                {"tokenizer_class": "LlamaTokenizer"}, model_type="bpe", byte_fallback=True,
                normalization_rule_name="identity", remove_extra_whitespaces=False)
    (d / "tokenizer.model").write_bytes((tok / "spm" / "tokenizer.model").read_bytes())
    return d


@pytest.fixture
def bundle(tmp_path: Path, llama_src: Path) -> Path:
    rep = modelport.prepare(llama_src, tmp_path / "bundle", ["watsonx-saas"])
    assert [s.verb for s in rep.steps if s.status == "done"] == [
        "inspect", "convert", "tokenizer", "package"]
    return tmp_path / "bundle"


def test_manifest_describes_the_bundle(bundle: Path) -> None:
    m = json.loads((bundle / MANIFEST).read_text())
    assert m["schema_version"] == 1 and m["model"]["model_type"] == "llama"
    assert {f["role"] for f in m["files"]} >= {"weights", "config", "tokenizer"}
    assert m["targets"][0]["ok"] and m["targets"][0]["hardware"]["tier"] == "WX-S"
    assert m["provenance"]["steps"][-1]["verb"] == "package"
    assert "reused" in m["provenance"]["steps"][-1]["detail"]
    assert modelport.verify(bundle).ok
    assert not list(bundle.glob("*.bin"))


def test_upload_verify_resume(bundle: Path, creds: UploadOptions, s3: LocalS3) -> None:
    url = "s3://models/t1/llama"
    first = modelport.upload(bundle, url, creds, progress=False)
    assert first.uploaded[-1].status == "manifest"
    again = modelport.upload(bundle, url, creds, progress=False)
    assert [o.status for o in again.uploaded] == ["manifest"]  # nothing uploaded twice
    assert len(again.skipped) == len(first.uploaded) - 1
    v = modelport.verify(url, creds)
    assert v.ok and v.checked == len(first.uploaded) - 1
    c = _client(s3)
    import hashlib

    for f in (p for p in bundle.rglob("*") if p.is_file()):  # digest metadata, by hashlib
        key = "t1/llama/" + f.relative_to(bundle).as_posix()
        head = c.head_object(Bucket="models", Key=key)
        assert head["ContentLength"] == f.stat().st_size
        assert head["Metadata"]["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest(), key
    c.put_object(Bucket="models", Key="t1/llama/config.json", Body=b"{}")  # changed on server
    c.put_object(Bucket="models", Key="t1/llama/stray.txt", Body=b"x")
    v = modelport.verify(url, creds)
    assert v.changed == ["config.json"] and v.extra == ["stray.txt"] and not v.ok
    r = CliRunner().invoke(cli, ["verify", url, "--endpoint-url", s3.endpoint])
    assert r.exit_code == 1 and "changed: config.json" in r.stdout
    fixed = modelport.upload(bundle, url, creds, progress=False)  # a rerun repairs it
    assert [o.key for o in fixed.uploaded] == ["t1/llama/config.json", f"t1/llama/{MANIFEST}"]


def test_local_changes_are_caught(bundle: Path, creds: UploadOptions) -> None:
    cfg = bundle / "config.json"
    data = cfg.read_bytes()
    cfg.unlink()
    cfg.write_bytes(data.replace(b"llama", b"LLAMA"))  # same size, other bytes
    assert modelport.verify(bundle).changed == ["config.json"]
    with pytest.raises(RemoteIntegrityError, match=r"config\.json"):
        modelport.upload(bundle, "s3://models/t2/x", creds, progress=False)
    (bundle / "config.json").unlink()
    with pytest.raises(InputError, match="not in the bundle"):
        modelport.upload(bundle, "s3://models/t2/x", creds, progress=False)


def test_manifest_edited_or_traversal(bundle: Path, creds: UploadOptions) -> None:
    m = json.loads((bundle / MANIFEST).read_text())
    m["files"][0]["path"] = "../../etc/passwd"
    (bundle / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(InputError, match="leaves the bundle"):
        modelport.upload(bundle, "s3://models/t3/x", creds, progress=False)
    (bundle / MANIFEST).write_text("{not json")
    r = CliRunner().invoke(cli, ["verify", str(bundle)])
    assert r.exit_code == 2 and "invalid manifest" in r.stderr


@pytest.mark.parametrize(("case", "match"), [
    ("credentials", "credentials"), ("bucket", "bucket"), ("endpoint", "unreachable")])
def test_store_errors(bundle: Path, s3: LocalS3, monkeypatch: pytest.MonkeyPatch, case: str,
                      match: str) -> None:
    for k, v in s3.env().items():
        monkeypatch.setenv(k, v)
    opts = UploadOptions(endpoint_url=s3.endpoint, retries=0)
    url = "s3://models/t4/x"
    if case == "credentials":
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "wrong")
    elif case == "bucket":
        url = "s3://no-such-bucket/x"
    else:
        opts = UploadOptions(endpoint_url="http://127.0.0.1:9", retries=0)
    with pytest.raises(StorageError, match=match):
        modelport.upload(bundle, url, opts, progress=False)
    r = CliRunner().invoke(cli, ["upload", str(bundle), url, "--endpoint-url",
                                 opts.endpoint_url or ""])
    assert r.exit_code == 6 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2


def test_server_stopped_mid_upload_then_rerun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                              ) -> None:
    """The server is stopped right after the 6th part lands (no timer: the upload's own
    part calls say when): the first file is complete, the second has 2 of its 4 parts. The
    rerun skips the first, keeps the second's 2 parts (sent once), and the bucket verifies."""
    g = torch.Generator().manual_seed(0)
    d = tmp_path / "big"
    d.mkdir()
    from safetensors.torch import save_file

    import modelport.package.upload as up

    for i in range(4):  # 4 x (24 MiB + a header): 4 parts of at most 8 MiB each
        save_file({f"w{i}": torch.randn(6 * 2**20, generator=g)},
                  d / f"model-{i + 1:05d}-of-00004.safetensors", metadata={"format": "pt"})
    (d / "config.json").write_text(json.dumps({"model_type": "llama",
                                               "architectures": ["LlamaForCausalLM"]}))
    (d / "tokenizer.json").write_text("{}")
    modelport.normalize(d, in_place=True)  # adds the index
    modelport.package(d, tmp_path / "b", ["watsonx-saas"], force=True)
    server = LocalS3(tmp_path / "weed", bucket="models")
    server.start()
    landed: list[int] = []
    real_client = up._client

    def stopping_client(o: UploadOptions):  # type: ignore[no-untyped-def]
        c = real_client(o)
        part = c.upload_part

        def upload_part(**kw):  # type: ignore[no-untyped-def]
            res = part(**kw)
            landed.append(kw["PartNumber"])
            if len(landed) == 6:
                server.stop()  # the interrupt, after exactly six parts
            return res
        c.upload_part = upload_part
        return c

    try:
        for k, v in server.env().items():
            monkeypatch.setenv(k, v)
        opts = UploadOptions(endpoint_url=server.endpoint, retries=0, concurrency=1)
        monkeypatch.setattr(up, "_client", stopping_client)
        with pytest.raises(StorageError):
            modelport.upload(tmp_path / "b", "s3://models/big", opts, progress=False)
        assert landed == [1, 2, 3, 4, 1, 2]  # it landed mid-way through the second file
        monkeypatch.setattr(up, "_client", real_client)
        server.start()  # same data folder, same ports
        rep = modelport.upload(tmp_path / "b", "s3://models/big", opts, progress=False)
        assert modelport.verify("s3://models/big", opts).ok
        assert rep.uploaded[-1].status == "manifest"
        assert len(rep.skipped) == 1  # the file completed before the stop
        resumed = [o for o in rep.uploaded if o.parts_kept]
        assert [(o.parts_kept, o.parts_sent) for o in resumed] == [(2, 2)]
        assert rep.bytes_kept == 2 * 8 * 2**20
    finally:
        server.stop()


def test_prepare_cli_with_upload(llama_src: Path, tmp_path: Path, s3: LocalS3,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in s3.env().items():
        monkeypatch.setenv(k, v)
    r = CliRunner().invoke(cli, ["prepare", str(llama_src), "--out", str(tmp_path / "b"),
                                 "--upload", "s3://models/cli/llama", "--endpoint-url",
                                 s3.endpoint])
    assert r.exit_code == 0, r.output
    assert "all match" in r.stdout and "tokenizer    done" in r.stdout
    assert not [p for p in tmp_path.iterdir() if "modelport-work" in p.name]


def test_the_api_takes_the_endpoint_as_keyword_arguments(llama_src: Path, tmp_path: Path,
                                                          s3: LocalS3,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """As the docs write it: ``prepare(..., upload_url=, endpoint_url=)`` uploads through that
    endpoint, and ``verify``, ``inspect``, ``check`` and ``convert`` of the ``s3://`` bundle take
    the same keyword (no AWS_ENDPOINT_URL, no options object)."""
    for k, v in s3.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    url, ep = "s3://models/api/llama", s3.endpoint
    rep = modelport.prepare(llama_src, tmp_path / "b", upload_url=url, endpoint_url=ep,
                            progress=False)
    assert rep.verify is not None and rep.verify.ok
    assert modelport.verify(url, endpoint_url=ep).ok
    assert modelport.inspect(url, endpoint_url=ep).tensors == rep.manifest.model.tensors
    assert modelport.check(url, "watsonx-saas", endpoint_url=ep).ok
    got = modelport.convert(url, tmp_path / "back", endpoint_url=ep, progress=False)
    assert got.remote_read == "ranges" and got.tensors_written == rep.manifest.model.tensors


def test_package_refuses_on_check_errors(tmp_path: Path) -> None:
    d = tmp_path / "m"
    d.mkdir()
    save_bin({"w": torch.ones(2)}, d)
    (d / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(TargetCheckFailed, match="error"):
        modelport.package(d, tmp_path / "b", ["oci-genai"])
    assert not (tmp_path / "b").exists()
    m = modelport.package(d, tmp_path / "b", ["oci-genai"], force=True)
    assert m.provenance.forced


def test_file_store_through_fsspec(bundle: Path, tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'store' / 'llama'}"
    rep = modelport.upload(bundle, url, progress=False)
    assert rep.uploaded[-1].status == "manifest" and rep.bytes_sent > 0
    again = modelport.upload(bundle, url, progress=False)
    assert again.bytes_sent == 0 and len(again.skipped) == len(rep.uploaded) - 1
    assert modelport.verify(url).ok
    (tmp_path / "store" / "llama" / "config.json").write_text("{}")
    assert modelport.verify(url).changed == ["config.json"]
    with pytest.raises(InputError, match="unknown store ftp://"):  # the one URL parser
        modelport.upload(bundle, "ftp://host/x", progress=False)


def test_check_data_reads_a_bucket_prefix(s3: LocalS3, creds: UploadOptions) -> None:
    import json

    good = {"messages": [{"role": "user", "content": "hi"},
                         {"role": "assistant", "content": "hello"}]}
    c = _client(s3)
    c.put_object(Bucket="models", Key="ft/train-0.jsonl",
                 Body=(json.dumps(good) + "\n").encode() * 3)
    c.put_object(Bucket="models", Key="ft/train-1.jsonl",
                 Body=(json.dumps(good) + "\n{broken\n").encode())
    rep = modelport.check_data("s3://models/ft", endpoint_url=s3.endpoint, context_length=1)
    assert rep.sources == ["s3://models/ft/train-0.jsonl", "s3://models/ft/train-1.jsonl"]
    assert rep.examples == 4 and not rep.ok
    (f,) = [f for f in rep.findings if f.kind == "json.invalid"]
    assert f.lines == ["s3://models/ft/train-1.jsonl:2"]
