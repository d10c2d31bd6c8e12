"""``convert`` with ``s3://`` at either end: the shard loop of :func:`execute` with a remote
source's bytes fetched before each shard and given back after it, and a remote destination
filled shard by shard (see :mod:`modelport.convert.remote`)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from modelport._types import FileRecord
from modelport.convert.checkpoint import ConvertReport, execute
from modelport.convert.options import ConvertOptions
from modelport.convert.plan import plan_convert
from modelport.convert.remote import RemoteMirror
from modelport.convert.remote_dest import S3Destination
from modelport.convert.shards import ShardPlan
from modelport.errors import InputError


def convert_remote(src: str | Path, dst: str | Path, options: ConvertOptions, *,
                   progress: bool | None = None, store: dict[str, Any] | None = None
                   ) -> ConvertReport:
    """Convert with ``s3://`` at either end. A source of Hugging Face weights is read with
    ranged GETs: headers first, then each shard's tensor bytes just before the shard is
    written, given back once it is verified; a computed format's files are downloaded whole
    first (its tensors are computed from whole files). A destination gets each shard by a
    resumable multipart upload as soon as it is written and verified (the local copy is then
    removed), the other files and the index last; local scratch space stays about a shard at
    each end (plus the whole checkpoint for a computed format)."""
    if isinstance(dst, str) and not dst.startswith("s3://"):
        raise InputError(f"convert writes to s3:// or a local folder, not {dst.split('://')[0]}://",
                         hint="convert to a local folder, then modelport package and "
                         "modelport upload BUNDLE URL (which takes file://, gs://, ...)")
    mirror = RemoteMirror(src, **(store or {})) if isinstance(src, str) else None
    dest = S3Destination(dst, **(store or {})) if isinstance(dst, str) else None
    scratch = Path(tempfile.mkdtemp(prefix="modelport-out-")) if dest else None
    local_dst = scratch / "out" if scratch else Path(dst)
    try:
        root = mirror.root if mirror else Path(src)
        whole = mirror.fetch_whole() if mirror else None  # a computed format: whole files
        plan = plan_convert(root, local_dst, options)
        ranged = mirror if whole is None else None  # Hugging Face weights: by byte ranges
        source = plan.regions("reading from object storage") if ranged else None
        peak = [mirror.scratch_bytes() if mirror else 0]
        fetched: dict[str, dict[str, list[tuple[int, int]]]] = {}  # shard -> its byte ranges

        def before(shard: ShardPlan) -> None:
            if ranged:
                fetched[shard.filename] = ranged.fetch_tensors(source, shard.tensors)  # type: ignore[arg-type]
                peak[0] = max(peak[0], ranged.scratch_bytes())

        def after(shard: ShardPlan, path: Path, rec: FileRecord) -> None:
            if ranged:
                ranged.release(fetched.pop(shard.filename))
            if dest:
                dest.put_file(path, rec.path, rec.size, rec.sha256)
                path.unlink()  # uploaded and checked: the scratch space goes back

        rep = execute(plan, progress=progress, before_shard=before, after_shard=after)
        if dest:
            dest.put_rest(local_dst, [o for o in rep.outputs if o.role != "weights"])
            rep.dst = str(dst)
        if mirror:
            rep.src = str(src)
            for i in rep.inputs:
                i.path = str(src) + i.path[len(str(mirror.root)):]
            rep.remote_bytes_fetched = mirror.fetched
            rep.remote_requests = mirror.requests
            rep.remote_scratch_peak = max(peak[0], mirror.scratch_bytes())
            rep.remote_read = "ranges" if whole is None else "whole files"
            rep.warnings += [f"{r}: not copied (over 64 MiB and not weights)"
                             for r in mirror.not_mirrored]
            if whole is not None:
                rep.warnings.append(whole)
    except BaseException as e:
        if mirror:
            mirror.error_as_url(e)
        raise
    finally:
        if mirror:
            mirror.close()
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    return rep


__all__ = ["convert_remote"]
