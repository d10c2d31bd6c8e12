"""Digests that convert records are reused by package only while the file is unchanged:
proved by planting a digest (reused while size, mtime and inode hold) and by changing the
file (then hashed again). The truth is hashlib over the bytes on disk."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import modelport
from tests.conftest import st_folder


def _manifest_sha(bundle: Path, name: str) -> str:
    m = json.loads((bundle / "modelport.manifest.json").read_text())
    return next(f["sha256"] for f in m["files"] if f["path"] == name)


def test_recorded_digests_are_reused_only_while_the_file_is_unchanged(tmp_path: Path) -> None:
    out = tmp_path / "st"
    modelport.convert(st_folder(tmp_path / "src"), out, progress=False)
    cache = out / ".modelport" / "hashes.json"
    data = json.loads(cache.read_text())
    weights = out / "model.safetensors"
    true = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert data["model.safetensors"]["sha256"] == true  # what convert recorded is right
    # a planted digest with the file's own size, mtime and inode is taken as is: reused
    data["model.safetensors"]["sha256"] = "0" * 64
    cache.write_text(json.dumps(data))
    b1 = tmp_path / "b1"
    modelport.package(out, b1, [], link=False, force=True)
    assert _manifest_sha(b1, "model.safetensors") == "0" * 64
    # the same bytes rewritten (a new mtime): the cache no longer vouches, the file is hashed
    st = weights.stat()
    body = weights.read_bytes()
    weights.write_bytes(body)
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    b2 = tmp_path / "b2"
    modelport.package(out, b2, [], link=False, force=True)
    assert _manifest_sha(b2, "model.safetensors") == true
