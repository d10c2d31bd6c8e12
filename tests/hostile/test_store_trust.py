"""The second hostile campaign, part 2: nothing outside a bundle leaves, no secret is printed,
and a store URL is a store in the CLI as in the API (a real S3 server, SeaweedFS)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import modelport
from modelport._io.paths import open_no_follow
from modelport._io.redact import redact
from modelport.cli.main import cli
from modelport.errors import InputError
from modelport.package.localstore import LocalS3
from tests.conftest import st_folder

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
KEY = "AKIAIOSFODNN7EXAMPLE"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalS3]:
    server = LocalS3(tmp_path_factory.mktemp("weed"), bucket="models")
    with server:
        yield server


def _keys(s3: LocalS3, prefix: str = "") -> list[str]:
    import boto3

    c = boto3.client("s3", endpoint_url=s3.endpoint, aws_access_key_id=s3.access_key,
                     aws_secret_access_key=s3.secret_key, region_name="us-east-1")
    out = c.list_objects_v2(Bucket="models", Prefix=prefix).get("Contents", [])
    return sorted(o["Key"] for o in out)


def _linked_bundle(tmp: Path, how: str) -> Path:
    """A bundle whose tokenizer.json is a link to a file outside it, the manifest edited so
    that its size and sha256 are the outside file's (what an attacker would do)."""
    modelport.package(st_folder(tmp / "src"), tmp / "b", ["watsonx-saas"], force=True)
    b = tmp / "b"
    secret = tmp / "outside.txt"
    secret.write_text("root:x:0:0:secret\n")
    if how == "unlisted link":  # a link the manifest does not name: only the walk sees it
        (b / "notes.txt").symlink_to(secret)
        return b
    if how == "file link":
        (b / "tokenizer.json").unlink()
        (b / "tokenizer.json").symlink_to(secret)
        rel = "tokenizer.json"
    else:  # a folder inside the bundle that is a link to a folder outside it
        (tmp / "outdir").mkdir()
        (tmp / "outdir" / "extra.txt").write_bytes(secret.read_bytes())
        (b / "sub").symlink_to(tmp / "outdir")
        rel = "sub/extra.txt"
    m = json.loads((b / "modelport.manifest.json").read_text())
    m["files"] = [f for f in m["files"] if f["path"] != rel] + [{
        "path": rel, "role": "tokenizer" if rel == "tokenizer.json" else "other",
        "size": secret.stat().st_size,
        "sha256": hashlib.sha256(secret.read_bytes()).hexdigest()}]
    (b / "modelport.manifest.json").write_text(json.dumps(m))
    return b


@pytest.mark.hostile_class("links in bundles")
@pytest.mark.parametrize("how", ["file link", "folder link", "unlisted link"])
@pytest.mark.parametrize("verb", ["verify", "upload file://", "upload s3://"])
def test_links_in_bundles_are_refused(tmp_path: Path, s3: LocalS3, how: str, verb: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    b = _linked_bundle(tmp_path, how)
    for k, v in s3.env().items():
        monkeypatch.setenv(k, v)
    prefix = f"links/{tmp_path.name}"
    args = {"verify": ["verify", str(b)],
            "upload file://": ["upload", str(b), f"file://{tmp_path / 'store'}"],
            "upload s3://": ["upload", str(b), f"s3://models/{prefix}", "--endpoint-url",
                             s3.endpoint]}[verb]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2, r.output
    assert "symbolic link" in r.stderr
    assert {"file link": "tokenizer.json", "folder link": "sub",
            "unlisted link": "notes.txt"}[how] in r.stderr
    assert not (tmp_path / "store").exists()
    assert _keys(s3, prefix) == []


def test_a_link_swapped_in_after_the_check_is_not_followed(tmp_path: Path) -> None:
    """open_no_follow refuses links on every component, so a check-then-swap race loses."""
    b = tmp_path / "b"
    (b / "d").mkdir(parents=True)
    (tmp_path / "out.txt").write_text("secret")
    (b / "f").symlink_to(tmp_path / "out.txt")
    (b / "l").symlink_to(tmp_path)
    (b / "d" / "ok").write_text("fine")
    with pytest.raises(InputError, match="symbolic link"):
        open_no_follow(b, "f")
    with pytest.raises(InputError, match="symbolic link"):
        open_no_follow(b, "l/out.txt")
    with pytest.raises(InputError):
        open_no_follow(b, "../out.txt")
    with open_no_follow(b, "d/ok") as fh:
        assert fh.read() == b"fine"


@pytest.mark.hostile_class("secrets in URLs")
@pytest.mark.parametrize("args", [
    ["inspect", f"s3://{KEY}:{SECRET}@models/x"],
    ["check", f"s3://{KEY}:{SECRET}@models/x"],
    ["convert", f"s3://{KEY}:{SECRET}@models/x", "OUT"],
    ["convert", "SRC", f"s3://{KEY}:{SECRET}@models/x"],
    ["prepare", f"s3://{KEY}:{SECRET}@models/x", "--out", "OUT"],
    ["prepare", "SRC", "--out", "OUT", "--upload", f"s3://{KEY}:{SECRET}@models/x"],
    ["upload", "BUNDLE", f"s3://{KEY}:{SECRET}@models/x"],
    ["verify", f"s3://{KEY}:{SECRET}@models/x"],
    ["upload", "BUNDLE", "s3://models/x", "--endpoint-url", f"http://{KEY}:{SECRET}@127.0.0.1:9"],
    ["inspect", "s3://models/x", "--endpoint-url", f"http://{KEY}:{SECRET}@127.0.0.1:9"],
    ["convert", "SRC", "s3://models/x", "--endpoint-url", f"http://{KEY}:{SECRET}@127.0.0.1:9"],
    ["upload", "BUNDLE", f"file://{KEY}:{SECRET}@localhost/tmp/x"],
], ids=lambda a: " ".join(a[:2]) + (" endpoint" if "--endpoint-url" in a else ""))
def test_no_secret_is_printed(tmp_path: Path, args: list[str]) -> None:
    src = st_folder(tmp_path / "src")
    modelport.package(src, tmp_path / "bundle", ["watsonx-saas"], force=True)
    subst = {"SRC": str(src), "OUT": str(tmp_path / "out"), "BUNDLE": str(tmp_path / "bundle")}
    for json_flag in ([], ["--json"], ["--debug"]):
        r = CliRunner().invoke(cli, [subst.get(a, a) for a in args] + json_flag)
        assert r.exit_code == 2, r.output
        assert SECRET not in r.output and KEY not in r.output, r.output
        assert "credentials inside a URL" in r.stderr
        if not json_flag:
            assert len(r.stderr.strip().splitlines()) <= 2 and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.hostile_class("secrets in URLs")
def test_a_refused_secret_from_the_environment_is_not_printed(
        tmp_path: Path, s3: LocalS3, monkeypatch: pytest.MonkeyPatch) -> None:
    """Wrong credentials against a real server: one line with the store's code, no botocore
    internals, and the secret (from the environment) appears nowhere, --debug included."""
    modelport.package(st_folder(tmp_path / "src"), tmp_path / "b", ["watsonx-saas"], force=True)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    for extra in ([], ["--debug"]):
        r = CliRunner().invoke(cli, ["upload", str(tmp_path / "b"), "s3://models/s",
                                     "--endpoint-url", s3.endpoint, *extra])
        assert r.exit_code == 6, r.output
        assert SECRET not in r.output and KEY not in r.output
        if not extra:
            assert len(r.stderr.strip().splitlines()) == 2 and "botocore" not in r.stderr
            assert "403" in r.stderr and "check the credentials" in r.stderr, r.stderr


def test_redact() -> None:
    assert redact(f"s3://{KEY}:{SECRET}@b/x and http://u:p@h:9/") == \
        "s3://***@b/x and http://***@h:9/"
    assert redact("https://h/o?X-Amz-Signature=abcdef&X-Amz-Credential=AK%2F1&a=1") == \
        "https://h/o?X-Amz-Signature=***&X-Amz-Credential=***&a=1"
    assert redact("s3://bucket/prefix/model.safetensors") == \
        "s3://bucket/prefix/model.safetensors"
    assert redact("https://h/o?token=abc&sig=def x token=ghi") == \
        "https://h/o?token=***&sig=*** x token=***"
    # a tokenizer's settings are not secrets: the CLI prints them
    assert redact("special tokens: bos_token=<s>, eos_token=</s>") == \
        "special tokens: bos_token=<s>, eos_token=</s>"


@pytest.mark.hostile_class("store URLs in the CLI")
def test_cli_convert_to_a_bucket_uploads(tmp_path: Path, s3: LocalS3,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in s3.env().items():
        monkeypatch.setenv(k, v)
    src = st_folder(tmp_path / "src")
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, ["convert", str(src), "s3://models/cli-convert/m",
                                 "--endpoint-url", s3.endpoint, "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["dst"] == "s3://models/cli-convert/m"
    assert not (tmp_path / "s3:").exists()
    keys = _keys(s3, "cli-convert/m/")
    assert keys == ["cli-convert/m/config.json", "cli-convert/m/model.safetensors",
                    "cli-convert/m/tokenizer.json"]
    got = {o["path"]: o["sha256"] for o in rep["outputs"]}
    import boto3

    c = boto3.client("s3", endpoint_url=s3.endpoint, aws_access_key_id=s3.access_key,
                     aws_secret_access_key=s3.secret_key, region_name="us-east-1")
    body = c.get_object(Bucket="models", Key="cli-convert/m/model.safetensors")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == got["model.safetensors"]


@pytest.mark.hostile_class("store URLs in the CLI")
@pytest.mark.parametrize("args", [
    ["convert", "SRC", "s3:/models/x"],
    ["convert", "s3:/models/x", "OUT"],
    ["convert", "SRC", "file:///tmp/never"],
    ["convert", "SRC", "gs3://models/x"],
    ["normalize", "SRC", "--out", "s3://models/x"],
    ["package", "SRC", "--out", "s3://models/x"],
    ["prepare", "SRC", "--out", "s3://models/x"],
    ["quantize", "SRC", "--out", "s3:/models/x"],
    ["tokenizer", "SRC", "--out", "s3://models/x"],
    ["merge", "SRC", "SRC", "--out", "s3://models/x"],
    ["upload", "SRC", "/not/a/url"],
    ["prepare", "SRC", "--out", "OUT", "--upload", "s3:/models/x"],
], ids=lambda a: " ".join(a))
def test_store_urls_are_stores_never_folders(tmp_path: Path, args: list[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    src = st_folder(tmp_path / "src")
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    subst = {"SRC": str(src), "OUT": str(tmp_path / "out")}
    r = CliRunner().invoke(cli, [subst.get(a, a) for a in args])
    assert r.exit_code == 2, r.output
    assert len(r.stderr.strip().splitlines()) <= 2 and "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    # the library refuses the same, with the same parser
    lib = {
        "convert": lambda: modelport.convert(subst.get(args[1], args[1]),
                                             subst.get(args[2], args[2]), progress=False),
        "normalize": lambda: modelport.normalize(src, Path(args[-1])),  # Path folds it
        "upload": lambda: modelport.upload(src, args[-1], progress=False),
    }.get(args[0])
    if lib is not None:
        with pytest.raises(InputError):
            lib()


@pytest.mark.hostile_class("store URLs in the CLI")
def test_remote_findings_name_the_url_not_the_scratch_folder(
        tmp_path: Path, s3: LocalS3, monkeypatch: pytest.MonkeyPatch) -> None:
    """inspect/check of s3:// read through a scratch mirror that is gone when they return:
    every path, finding and hint must speak of the URL."""
    import boto3

    for k, v in s3.env().items():
        monkeypatch.setenv(k, v)
    c = boto3.client("s3", endpoint_url=s3.endpoint, aws_access_key_id=s3.access_key,
                     aws_secret_access_key=s3.secret_key, region_name="us-east-1")
    import io

    buf = io.BytesIO()
    torch.save({"w": torch.ones(4)}, buf)  # pickled weights: check's fix names a command
    c.put_object(Bucket="models", Key="scratch/p/pytorch_model.bin", Body=buf.getvalue())
    c.put_object(Bucket="models", Key="scratch/p/config.json", Body=json.dumps(
        {"model_type": "llama"}).encode())
    c.put_object(Bucket="models", Key="scratch/bad/config.json", Body=b"{nope")
    for args in (["inspect", "s3://models/scratch/p"], ["check", "s3://models/scratch/p"],
                 ["check", "s3://models/scratch/bad"], ["convert", "s3://models/scratch/bad",
                                                        str(tmp_path / "o")]):
        r = CliRunner().invoke(cli, [*args, "--endpoint-url", s3.endpoint])
        assert "modelport-remote-" not in r.output and "/tmp/" not in r.stdout, r.output
        assert "s3://models/scratch/" in r.output, r.output
        if "bad" in args[1]:
            assert r.exit_code == 2 and "config.json: is not valid JSON" in r.stderr
