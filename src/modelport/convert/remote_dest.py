"""``s3://bucket/prefix`` as convert's output (:class:`S3Destination`): each file by a
resumable, MD5-checked multipart upload whose bytes must hash to the sha256 computed when it
was written, read back by size and metadata; the index last."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from modelport._io.hashing import CHUNK_BYTES
from modelport._io.s3 import storage_error
from modelport.convert.remote import open_store
from modelport.errors import InputError, StorageError


class S3Destination:
    """``s3://bucket/prefix`` as convert's output: each file by a resumable, MD5-checked
    multipart upload whose bytes must hash to the sha256 computed when it was written; the
    index goes last, so a reader that sees it sees every shard."""

    def __init__(self, url: str, *, endpoint_url: str | None = None, region: str | None = None,
                 profile: str | None = None) -> None:
        if not url.startswith("s3://"):
            raise InputError(f"convert writes to s3:// or a local folder, not {url!r}",
                             hint="write locally, then modelport upload (fsspec stores)")
        self.url = url.rstrip("/")
        self.bucket, self.prefix, self._c, _ = open_store(self.url, endpoint_url, region,
                                                           profile)

    def _key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def put_file(self, path: Path, rel: str, size: int, sha256: str) -> None:
        """``path`` as ``rel``: multipart from 8 MiB (resuming an interrupted upload), else one
        PUT; the bytes sent must hash to ``sha256``, and the stored size and metadata are
        read back."""
        from modelport._io.s3_multipart import put_multipart

        if size < 8 * 2**20:
            data = path.read_bytes()
            if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
                raise StorageError(f"{rel} changed on local disk after it was written",
                                   url=self.url, op="put")
            self.put_bytes(rel, data)
            return
        try:
            put_multipart(self._c, self.bucket, self._key(rel), path, size, sha256,
                          max(8 * 2**20, -(-size // 10_000)), 4)
        except ValueError as e:
            raise StorageError(f"{rel} changed on local disk after it was written",
                               url=self.url, op="put") from e
        except Exception as e:
            raise storage_error(e, f"{self.url}/{rel}", "put") from e
        self._check(rel, size, sha256)

    def put_bytes(self, rel: str, data: bytes) -> str:
        """``data`` as ``rel`` in one PUT with its MD5 and sha256; returns the sha256."""
        sha = hashlib.sha256(data).hexdigest()
        md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        try:
            self._c.put_object(Bucket=self.bucket, Key=self._key(rel), Body=data,
                               Metadata={"sha256": sha}, ContentMD5=md5)
        except Exception as e:
            raise storage_error(e, f"{self.url}/{rel}", "put") from e
        self._check(rel, len(data), sha)
        return sha

    def _check(self, rel: str, size: int, sha256: str) -> None:
        try:
            head = self._c.head_object(Bucket=self.bucket, Key=self._key(rel))
        except Exception as e:
            raise storage_error(e, f"{self.url}/{rel}", "head") from e
        if head["ContentLength"] != size or head.get("Metadata", {}).get("sha256") != sha256:
            raise StorageError(f"{rel}: the store holds {head['ContentLength']} bytes, "
                               f"{size} were written", url=self.url, op="verify")

    def stored_sha(self, rel: str, size: int) -> str | None:
        """The sha256 of ``rel`` when it is stored complete: ``size`` bytes that hash to the
        sha256 its metadata records (a retried task's or a rerun's shard); else None."""
        try:
            head = self._c.head_object(Bucket=self.bucket, Key=self._key(rel))
        except Exception:
            return None
        want = head.get("Metadata", {}).get("sha256")
        if head["ContentLength"] != size or not want:
            return None
        h = hashlib.sha256()
        body = self._c.get_object(Bucket=self.bucket, Key=self._key(rel))["Body"]
        for chunk in iter(lambda: body.read(CHUNK_BYTES), b""):
            h.update(chunk)
        return want if h.hexdigest() == want else None

    def put_rest(self, folder: Path, records: Iterable[Any]) -> None:
        """Every other output file, the index last."""
        index = "model.safetensors.index.json"
        recs = sorted(records, key=lambda r: r.path == index)
        for r in recs:
            self.put_file(folder / r.path, r.path, r.size, r.sha256)


__all__ = ["S3Destination"]
