"""One file into S3 as a multipart upload that resumes by part.

An interrupted run leaves its multipart upload open in the store. The next run finds it
(``list_multipart_uploads`` for the key, then ``list_parts``), reads the local file once, in
order, and for each part either keeps the part already stored — only when the store's ETag is
the MD5 of exactly the local bytes of that part and its size is the planned one — or sends it
with ``Content-MD5``, so the store itself rejects a part that arrives damaged. The sha256 of the
whole file is computed on the same read and must equal the manifest's; the object is only
completed after that. Stores whose part ETags are not MD5s simply get every part again.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

_MD5 = re.compile(r'^"?([0-9a-f]{32})"?$')
MIN_S3_PART = 5 * 2**20


@dataclass
class PartsSent:
    """What one file's upload did: parts sent and parts kept from an earlier run."""

    sha256: str = ""
    size: int = 0
    parts: int = 0
    sent_parts: int = 0
    kept_parts: int = 0
    kept_bytes: int = 0
    upload_id: str | None = None
    aborted: list[str] = field(default_factory=list)


def _md5_of_etag(etag: str) -> str | None:
    m = _MD5.match(etag.lower())
    return m.group(1) if m else None


def _stored_parts(c: Any, bucket: str, key: str, upload_id: str) -> dict[int, tuple[str, int]]:
    parts: dict[int, tuple[str, int]] = {}
    for page in c.get_paginator("list_parts").paginate(Bucket=bucket, Key=key,
                                                       UploadId=upload_id):
        for p in page.get("Parts", []):
            parts[int(p["PartNumber"])] = (str(p["ETag"]), int(p["Size"]))
    return parts


def _pending(c: Any, bucket: str, key: str) -> list[str]:
    ids: list[str] = []
    for page in c.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=key):
        ids += [u["UploadId"] for u in page.get("Uploads", []) if u["Key"] == key]
    return ids


def _resumable(parts: dict[int, tuple[str, int]], size: int, max_parts: int
               ) -> int | None:
    """The part size an earlier upload used, when its parts fit this file; else None."""
    if 1 not in parts:
        return None
    ps = parts[1][1]
    if ps < MIN_S3_PART or math.ceil(size / ps) > max_parts:
        return None
    n = math.ceil(size / ps)
    for num, (_, sz) in parts.items():
        if num > n or sz != min(ps, size - (num - 1) * ps):
            return None
    return ps


def put_multipart(c: Any, bucket: str, key: str, path: Path | Callable[[], BinaryIO],
                  size: int, sha256: str, part_bytes: int, concurrency: int,
                  progress: Any = None, max_parts: int = 10_000, resume: bool = True
                  ) -> PartsSent:
    """Upload ``path`` (or the file a callable opens: without following links, say) to ``key``
    with ``Metadata={"sha256": sha256}``, resuming an upload an earlier run left open
    (``resume=False``: abort it and start afresh). Raises ``ValueError`` when the local bytes
    do not hash to ``sha256`` (the upload is aborted, nothing completed)."""
    res = PartsSent(size=size)
    stored: dict[int, tuple[str, int]] = {}
    upload_id, ps = None, part_bytes
    best = -1
    for uid in _pending(c, bucket, key):  # keep the open upload with the most usable bytes
        parts = _stored_parts(c, bucket, key, uid)
        fit = _resumable(parts, size, max_parts)
        usable = sum(sz for _, sz in parts.values()) if fit and resume else -1
        if usable > best:
            if upload_id is not None:
                res.aborted.append(upload_id)
            upload_id, stored, best = uid, parts, usable
            ps = fit or part_bytes
        else:
            res.aborted.append(uid)
    if upload_id is not None and best < 0:  # an open upload whose parts do not fit this file
        res.aborted.append(upload_id)
        upload_id, stored, ps = None, {}, part_bytes
    for uid in res.aborted:
        c.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=uid)
    if upload_id is None:
        upload_id = c.create_multipart_upload(Bucket=bucket, Key=key,
                                              Metadata={"sha256": sha256})["UploadId"]
    res.upload_id = upload_id
    n = max(1, math.ceil(size / ps))
    res.parts = n
    etags: dict[int, str] = {}
    sha = hashlib.sha256()
    inflight: deque[tuple[int, str, Future[Any]]] = deque()

    def settle(limit: int) -> None:
        while len(inflight) > limit:
            num, md5, fut = inflight.popleft()
            etag = str(fut.result()["ETag"])
            got = _md5_of_etag(etag)
            if got is not None and got != md5:
                raise OSError(f"part {num} of {key}: the store's MD5 {got} differs from the "
                              f"bytes sent ({md5})")
            etags[num] = etag
            res.sent_parts += 1

    try:
        opened = path() if callable(path) else open(path, "rb")  # noqa: SIM115
        with opened as f, ThreadPoolExecutor(max_workers=concurrency) as pool:
            for num in range(1, n + 1):
                data = f.read(ps)
                sha.update(data)
                md5 = hashlib.md5(data, usedforsecurity=False)
                have = stored.get(num)
                if have is not None and have[1] == len(data) and \
                        _md5_of_etag(have[0]) == md5.hexdigest():
                    etags[num] = have[0]
                    res.kept_parts += 1
                    res.kept_bytes += len(data)
                else:
                    settle(concurrency - 1)
                    inflight.append((num, md5.hexdigest(), pool.submit(
                        c.upload_part, Bucket=bucket, Key=key, UploadId=upload_id,
                        PartNumber=num, Body=data,
                        ContentMD5=base64.b64encode(md5.digest()).decode())))
                if progress is not None:
                    progress.update(len(data))
            settle(0)
        res.sha256 = sha.hexdigest()
        if res.sha256 != sha256:
            c.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            raise ValueError(res.sha256)
        c.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": k, "ETag": etags[k]}
                                       for k in sorted(etags)]})
    except BaseException:
        for _, _, fut in inflight:
            fut.cancel()
        raise  # the upload stays open: the next run resumes it
    return res


__all__ = ["PartsSent", "put_multipart"]
