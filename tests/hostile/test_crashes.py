"""kill -9 in the middle of package and upload (convert and normalize --in-place have their
own kill tests), and full disks: never a complete-looking wrong output; reruns finish with
the same result as an uninterrupted run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import modelport
from modelport.package.localstore import LocalS3
from modelport.package.upload import UploadOptions
from tests.conftest import kill_when, tree_snapshot

ROOT = Path(__file__).resolve().parents[2]


def _model(d: Path, n: int = 6) -> Path:
    g = torch.Generator().manual_seed(0)
    d.mkdir()
    for i in range(n):
        save_file({f"w{i}": torch.randn(3 * 2**20, generator=g)},  # 12 MiB each
                  d / f"model-{i + 1:05d}-of-{n:05d}.safetensors", metadata={"format": "pt"})
    (d / "config.json").write_text(json.dumps({"model_type": "llama",
                                               "architectures": ["LlamaForCausalLM"]}))
    (d / "tokenizer.json").write_text("{}")
    modelport.normalize(d, in_place=True)
    return d


def _manifest_files(b: Path) -> list[dict]:
    return json.loads((b / "modelport.manifest.json").read_text())["files"]


@pytest.mark.hostile_class("kill -9 and full disk")
def test_kill_package_then_rerun(tmp_path: Path) -> None:
    """Killed while its temp folder holds some files and no manifest: no bundle appears,
    only the hidden temp folder; the rerun removes it and writes the reference bundle."""
    src = _model(tmp_path / "src")
    modelport.package(src, tmp_path / "ref", link=False)
    code = ("import sys, modelport; modelport.package(sys.argv[1], sys.argv[2], link=False, "
            "overwrite=True)")

    def mid_copy() -> bool:
        for t in tmp_path.glob(".b.modelport-tmp-*"):
            names = [p.name for p in t.iterdir()]
            if names and "modelport.manifest.json" not in names:
                return True
        return False

    landed = 0
    for _ in range(5):
        landed += kill_when([sys.executable, "-c", code, str(src), str(tmp_path / "b")],
                            mid_copy, cwd=ROOT)
        if landed:
            break
    assert landed, "the kill never landed mid-copy"
    assert not (tmp_path / "b").exists()  # nothing complete-looking
    assert [p for p in tmp_path.iterdir() if ".modelport-tmp-" in p.name]  # it was mid-way
    modelport.package(src, tmp_path / "b", link=False, overwrite=True)
    assert modelport.verify(tmp_path / "b").ok
    assert _manifest_files(tmp_path / "b") == _manifest_files(tmp_path / "ref")
    assert not [p for p in tmp_path.iterdir() if ".modelport-tmp-" in p.name]


@pytest.mark.hostile_class("kill -9 and full disk")
def test_kill_upload_then_rerun(tmp_path: Path) -> None:
    """Killed once the first object is stored and before the manifest: the bucket has no
    manifest (so no consumer takes it for complete); the rerun keeps what arrived (skipped
    objects or kept parts) and the bucket verifies."""
    src = _model(tmp_path / "src")
    modelport.package(src, tmp_path / "b")
    with LocalS3(tmp_path / "weed") as s3:
        opts = UploadOptions(endpoint_url=s3.endpoint)
        code = ("import sys, modelport; from modelport.package.upload import UploadOptions; "
                "modelport.upload(sys.argv[1], 's3://models/k', "
                "UploadOptions(endpoint_url=sys.argv[2], concurrency=1), progress=False)")
        import os

        import boto3

        c = boto3.client("s3", endpoint_url=s3.endpoint, **{
            "aws_access_key_id": s3.access_key, "aws_secret_access_key": s3.secret_key,
            "region_name": "us-east-1"})
        os.environ.update(s3.env())

        def keys() -> set[str]:
            return {o["Key"] for o in c.list_objects_v2(Bucket="models", Prefix="k/")
                    .get("Contents", [])}

        def first_object() -> bool:
            return bool(keys())

        assert kill_when([sys.executable, "-c", code, str(tmp_path / "b"), s3.endpoint],
                         first_object, cwd=ROOT, env=s3.env())
        stored = keys()
        assert stored and "k/modelport.manifest.json" not in stored
        rep = modelport.upload(tmp_path / "b", "s3://models/k", opts, progress=False)
        assert modelport.verify("s3://models/k", opts).ok
        assert rep.uploaded[-1].status == "manifest"
        assert {o.key for o in rep.skipped} >= stored  # what arrived was not sent again


@pytest.mark.hostile_class("kill -9 and full disk")
@pytest.mark.parametrize("verb", ["normalize", "package", "tokenizer"])
def test_full_disk(tmp_path: Path, verb: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    save_file({"w": torch.randn(2**18)}, src / "model.safetensors")  # 1 MiB, no metadata
    (src / "config.json").write_text(json.dumps({"model_type": "llama",
                                                 "architectures": ["LlamaForCausalLM"]}))
    (src / "vocab.txt").write_text("[UNK]\n[CLS]\n[SEP]\n" + "\n".join(
        f"w{i}" for i in range(20000)) + "\n")
    (src / "tokenizer.json").write_text("{}") if verb == "package" else None
    before = tree_snapshot(src)
    args = {"normalize": ["normalize", str(src), "--out", str(tmp_path / "out")],
            "package": ["package", str(src), "--out", str(tmp_path / "out"), "--copy",
                        "--force"],
            "tokenizer": ["tokenizer", str(src), "--out", str(tmp_path / "out"),
                          "--family", "bert"]}[verb]
    code = ("import resource, signal, sys\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))\n"
            "from modelport.cli.main import main\n"
            "sys.argv = ['modelport'] + sys.argv[1:]\nmain()\n")
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                       timeout=300, cwd=ROOT)
    assert r.returncode == 2, r.stderr
    assert "cannot write" in r.stderr or "File too large" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) <= 2, r.stderr
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if ".modelport-" in p.name]
    assert tree_snapshot(src) == before
