"""``upload`` and ``verify``: a bundle into S3-compatible storage, proven on arrival.

Works with IBM COS, OCI Object Storage's S3 endpoint, AWS and any S3 server
(``--endpoint-url``); credentials come the way boto3 users expect (environment, profile,
HMAC keys in ``~/.aws/credentials``). Each file is read once, in order, by a hashing reader
that feeds the multipart upload: the sha256 of exactly the bytes read must equal the
manifest's, each part is sent with its MD5 (the store rejects a damaged part), and the object's
size and ``sha256`` metadata are read back. The manifest goes last, so a consumer that sees it
knows the bundle is complete. A rerun skips objects whose size and recorded sha256 already
match, resumes the multipart uploads an interrupted run left open — only the parts missing or
different are sent (``_io/s3_multipart.py``) — and aborts open uploads of keys the manifest
does not list.
"""

from __future__ import annotations

import base64
import hashlib
import math
import os
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from modelport._io.hashing import CHUNK_BYTES, sha256_file
from modelport._io.paths import open_no_follow, refuse_links, walk_files
from modelport._io.s3 import parse_s3, s3_client, storage_error
from modelport._io.s3_multipart import PartsSent, put_multipart
from modelport._io.urls import local_path, location
from modelport._types import Record
from modelport.errors import InputError, RemoteIntegrityError, StorageError
from modelport.package.manifest import MANIFEST, Manifest, load_manifest, read_manifest

MIN_PART, MAX_PART, MAX_PARTS = 8 * 2**20, 5 * 2**30, 10_000


class UploadOptions(BaseModel):
    """Where and how to upload ."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint_url: str | None = Field(None, description="S3 endpoint (IBM COS, OCI, MinIO, ...)")
    region: str | None = None
    profile: str | None = Field(None, description="a profile of ~/.aws/credentials")
    part_size_bytes: int | None = Field(None, ge=5 * 2**20, le=MAX_PART,
                                        description="multipart part size (default: chosen per "
                                        "file, >= 8 MiB, <= 10,000 parts)")
    concurrency: int = Field(8, ge=1, le=64, description="parts in flight; memory bound: "
                             "concurrency x part size")
    retries: int = Field(5, ge=0)


class ObjectResult(Record):
    key: str
    size: int
    status: str  # uploaded, skipped (already there), manifest
    parts_sent: int = 0
    parts_kept: int = Field(0, description="parts an interrupted run had stored, kept "
                            "after their MD5 matched the local bytes")


class UploadReport(Record):
    url: str
    uploaded: list[ObjectResult]
    skipped: list[ObjectResult]
    aborted_multipart: int
    bytes_sent: int
    bytes_kept: int = Field(0, description="bytes of resumed uploads not sent again")
    seconds: float
    mib_per_s: float


class VerifyReport(Record):
    target: str
    checked: int
    missing: list[str]
    extra: list[str]
    changed: list[str]

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.changed)


def part_size(size: int, wanted: int | None = None) -> int:
    """Within S3's limits: at least 8 MiB (5 MiB minimum), at most 10,000 parts and 5 GiB."""
    need = math.ceil(size / MAX_PARTS)
    p = max(wanted or MIN_PART, need)
    p = math.ceil(p / 2**20) * 2**20
    if p > MAX_PART:
        raise InputError(f"a {size}-byte file needs parts over 5 GiB", hint="S3 objects are "
                         "limited to 10,000 parts of at most 5 GiB")
    return p


def _client(o: UploadOptions) -> Any:
    return s3_client(o.endpoint_url, o.region, o.profile, o.retries,
                     max(10, o.concurrency * 2))


def _check_local(bundle: Path, m: Manifest) -> None:
    """Every listed file is in the bundle, a regular file of its size; no link anywhere."""
    refuse_links(bundle)
    for f in m.files:
        p = bundle / f.path
        if not p.is_file():
            raise InputError(f"{f.path} is in the manifest but not in the bundle", path=bundle,
                             hint="re-create the bundle with modelport package")
        with open_no_follow(bundle, f.path) as fh:
            size = os.fstat(fh.fileno()).st_size
        if size != f.size:
            raise InputError(f"{f.path} has {size} bytes, the manifest says "
                             f"{f.size}", path=bundle, hint="re-create the bundle")


def upload(bundle: str | Path, url: str, options: UploadOptions | None = None, *,
           progress: bool | None = None, **kwargs: Any) -> UploadReport:
    """Upload a bundle to ``s3://bucket/prefix``; resumable and verified.

    Raises:
        InputError: bad URL, or the bundle does not match its manifest.
        StorageError: credentials, bucket, endpoint or network; RemoteIntegrityError: what
            arrived differs from the manifest (the object is deleted).
    """
    o = options or UploadOptions(**kwargs)
    bundle = local_path(bundle, what="bundle")
    loc = location(url, what="upload URL")
    if not isinstance(loc, str):
        raise InputError(f"upload URL {str(url)!r} is not a store URL",
                         hint="e.g. s3://bucket/models/llama, or file:///path for a folder")
    t0 = time.perf_counter()
    m = load_manifest(bundle)
    _check_local(bundle, m)
    if not url.startswith("s3://"):
        return _upload_other(bundle, url, m, progress, t0)
    bucket, prefix = parse_s3(url)
    c = _client(o)
    key = lambda rel: f"{prefix}/{rel}" if prefix else rel  # noqa: E731
    try:
        c.head_bucket(Bucket=bucket)
        aborted = 0
        keys = {key(f.path) for f in m.files}
        # open uploads under the bundle's prefix for keys it does not have: an earlier
        # bundle's leftovers (never at a bucket's root, where they may be someone else's)
        pages = c.get_paginator("list_multipart_uploads").paginate(
            Bucket=bucket, Prefix=f"{prefix}/") if prefix else []
        for page in pages:
            for u in page.get("Uploads", []):
                if u["Key"] not in keys:
                    c.abort_multipart_upload(Bucket=bucket, Key=u["Key"],
                                             UploadId=u["UploadId"])
                    aborted += 1
    except Exception as e:
        raise storage_error(e, url, "open") from e
    total = sum(f.size for f in m.files)
    bar = None
    if progress is not False:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="upload",
                   disable=None if progress is None else not progress, leave=False)
    uploaded: list[ObjectResult] = []
    skipped: list[ObjectResult] = []
    sent = kept = 0
    try:
        for f in sorted(m.files, key=lambda f: -f.size):
            k = key(f.path)
            try:
                head = c.head_object(Bucket=bucket, Key=k)
                if head["ContentLength"] == f.size and head.get("Metadata", {}).get(
                        "sha256") == f.sha256:
                    skipped.append(ObjectResult(key=k, size=f.size, status="skipped"))
                    if bar is not None:
                        bar.update(f.size)
                    continue
            except Exception as e:
                if "404" not in str(e) and "Not Found" not in str(e):
                    raise storage_error(e, url, f"head {k}") from e
            try:
                res = _put(c, bucket, k, bundle, f.path, f.size, f.sha256,
                           part_size(f.size, o.part_size_bytes), o.concurrency, bar)
            except ValueError as e:
                raise RemoteIntegrityError(
                    f"{f.path}: the local bytes hash to {str(e)[:12]}…, the manifest says "
                    f"{f.sha256[:12]}…", url=url, op="verify",
                    hint="the local file changed after packaging: re-create the bundle") from e
            except Exception as e:
                raise storage_error(e, url, f"put {k}") from e
            aborted += len(res.aborted)
            head = c.head_object(Bucket=bucket, Key=k)
            if res.kept_parts and head.get("Metadata", {}).get("sha256") != f.sha256:
                # the open upload was begun for other contents of this file: the parts whose
                # MD5 matched were kept and the rest sent, so the bytes are right (their
                # sha256 was checked on the way), but the metadata it was created with is not
                head = _replace_sha_metadata(c, bucket, k, f.size, f.sha256, res, o, bundle,
                                             f.path)
            if head["ContentLength"] != f.size or head.get("Metadata", {}).get(
                    "sha256") != f.sha256:
                c.delete_object(Bucket=bucket, Key=k)
                raise RemoteIntegrityError(
                    f"{f.path}: stored {head['ContentLength']} bytes with sha256 metadata "
                    f"{head.get('Metadata', {}).get('sha256', '-')[:12]}…; the manifest says "
                    f"{f.size} / {f.sha256[:12]}…", url=url, op="verify",
                    hint="the object was deleted; run upload again")
            sent += f.size - res.kept_bytes
            kept += res.kept_bytes
            uploaded.append(ObjectResult(key=k, size=f.size, status="uploaded",
                                         parts_sent=res.sent_parts, parts_kept=res.kept_parts))
        with open_no_follow(bundle, MANIFEST) as fh:
            data = fh.read()
        if read_manifest(data, str(bundle / MANIFEST)) != m:
            raise InputError(f"{MANIFEST} changed during the upload", path=bundle,
                             hint="run upload again")
        c.put_object(Bucket=bucket, Key=key(MANIFEST), Body=data,
                     Metadata={"sha256": hashlib.sha256(data).hexdigest()})
        uploaded.append(ObjectResult(key=key(MANIFEST), size=len(data), status="manifest"))
    except (StorageError, InputError):
        raise
    except Exception as e:
        raise storage_error(e, url, "upload") from e
    finally:
        if bar is not None:
            bar.close()
    secs = time.perf_counter() - t0
    return UploadReport(url=url, uploaded=uploaded, skipped=skipped, aborted_multipart=aborted,
                        bytes_sent=sent, bytes_kept=kept, seconds=round(secs, 3),
                        mib_per_s=round(sent / 2**20 / secs, 1) if secs else 0.0)


def _replace_sha_metadata(c: Any, bucket: str, k: str, size: int, sha: str, res: PartsSent,
                          o: UploadOptions, bundle: Path, rel: str) -> Any:
    """Set the object's sha256 metadata: a server-side copy onto itself (no bytes sent) up to
    S3's 5 GiB copy limit, else the file is sent again."""
    if size <= MAX_PART:
        c.copy_object(Bucket=bucket, Key=k, CopySource={"Bucket": bucket, "Key": k},
                      Metadata={"sha256": sha}, MetadataDirective="REPLACE")
    else:
        c.delete_object(Bucket=bucket, Key=k)
        again = _put(c, bucket, k, bundle, rel, size, sha, part_size(size, o.part_size_bytes),
                     o.concurrency, None, resume=False)
        res.sent_parts += again.sent_parts
        res.kept_parts, res.kept_bytes = 0, 0
    return c.head_object(Bucket=bucket, Key=k)


def _put(c: Any, bucket: str, k: str, bundle: Path, rel: str, size: int, sha: str, ps: int,
         concurrency: int, bar: Any, resume: bool = True) -> PartsSent:
    """One object: a single PUT below one part (with its MD5), else a resumable multipart.
    The file is opened without following links (``open_no_follow``)."""
    if size >= ps:
        return put_multipart(c, bucket, k, lambda: open_no_follow(bundle, rel), size, sha, ps,
                             concurrency, bar, resume=resume)
    with open_no_follow(bundle, rel) as fh:
        data = fh.read()
    got = hashlib.sha256(data).hexdigest()
    if got != sha or len(data) != size:
        raise ValueError(got)
    md5 = hashlib.md5(data, usedforsecurity=False).digest()
    c.put_object(Bucket=bucket, Key=k, Body=data, Metadata={"sha256": sha},
                 ContentMD5=base64.b64encode(md5).decode())
    if bar is not None:
        bar.update(size)
    return PartsSent(sha256=got, size=size, parts=1, sent_parts=1)


def _upload_other(bundle: Path, url: str, m: Manifest, progress: bool | None, t0: float
                  ) -> UploadReport:
    from modelport.package.stores import upload_fs

    bar = None
    if progress is not False:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(f.size for f in m.files), unit="B", unit_scale=True,
                   unit_divisor=1024, desc="upload", leave=False,
                   disable=None if progress is None else not progress)
    try:
        up, skip, sent = upload_fs(bundle, url, m.files, bar)
    finally:
        if bar is not None:
            bar.close()
    sizes = m.file_map()
    secs = time.perf_counter() - t0
    return UploadReport(
        url=url, uploaded=[ObjectResult(key=p, size=sizes[p].size, status="uploaded")
                           for p in up] + [ObjectResult(key=MANIFEST, size=0, status="manifest")],
        skipped=[ObjectResult(key=p, size=sizes[p].size, status="skipped") for p in skip],
        aborted_multipart=0, bytes_sent=sent, seconds=round(secs, 3),
        mib_per_s=round(sent / 2**20 / secs, 1) if secs else 0.0)


def verify(target: str | Path, options: UploadOptions | None = None, **kwargs: Any
           ) -> VerifyReport:
    """Re-read a local bundle, an ``s3://`` one or one in another store (``file://``,
    ``gs://``, ...) and check every file against the manifest (streaming sha256, nothing
    downloaded to disk)."""
    target = location(target, what="bundle")
    if isinstance(target, str) and target.startswith("s3://"):
        return _verify_remote(target, options or UploadOptions(**kwargs))
    if isinstance(target, str):
        from modelport.package.stores import verify_fs

        n, missing, extra, changed = verify_fs(str(target))
        return VerifyReport(target=str(target), checked=n, missing=missing, extra=extra,
                            changed=changed)
    bundle = local_path(target, what="bundle")
    refuse_links(bundle)
    m = load_manifest(bundle)
    missing, changed = [], []
    for f in m.files:
        if not (bundle / f.path).is_file():
            missing.append(f.path)
            continue
        with open_no_follow(bundle, f.path) as fh:
            if os.fstat(fh.fileno()).st_size != f.size or sha256_file(fh) != f.sha256:
                changed.append(f.path)
    listed = {f.path for f in m.files} | {MANIFEST}
    extra = [r for r in walk_files(bundle) if r not in listed]
    return VerifyReport(target=str(bundle), checked=len(m.files), missing=missing, extra=extra,
                        changed=changed)


def _verify_remote(url: str, o: UploadOptions) -> VerifyReport:
    bucket, prefix = parse_s3(url)
    c = _client(o)
    key = lambda rel: f"{prefix}/{rel}" if prefix else rel  # noqa: E731
    try:
        data = c.get_object(Bucket=bucket, Key=key(MANIFEST))["Body"].read()
        m = read_manifest(data, f"{url}/{MANIFEST}")
        present: dict[str, int] = {}
        for page in c.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=f"{prefix}/" if prefix else ""):
            for obj in page.get("Contents", []):
                present[obj["Key"]] = obj["Size"]
        missing, changed = [], []
        for f in m.files:
            k = key(f.path)
            if k not in present:
                missing.append(f.path)
                continue
            if present[k] != f.size:
                changed.append(f.path)
                continue
            body = c.get_object(Bucket=bucket, Key=k)["Body"]
            h = hashlib.sha256()
            for chunk in iter(lambda b=body: b.read(CHUNK_BYTES), b""):
                h.update(chunk)
            if h.hexdigest() != f.sha256:
                changed.append(f.path)
    except (InputError, StorageError):
        raise
    except Exception as e:
        raise storage_error(e, url, "verify") from e
    listed = {key(f.path) for f in m.files} | {key(MANIFEST)}
    strip = len(prefix) + 1 if prefix else 0
    extra = sorted(k[strip:] for k in present if k not in listed)
    return VerifyReport(target=url, checked=len(m.files), missing=missing, extra=extra,
                        changed=changed)
