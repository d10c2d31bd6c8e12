"""``convert_distributed``: one Spark task per output shard.

The driver plans from the headers only (the same plan as ``convert``), including each shard's
exact size. A task re-plans from the same headers (it must find the same shard, or it refuses),
writes its shard under a temporary name, verifies it against the source tensor by tensor and
only then gives it its final name: ``os.replace`` for a folder, or a resumable, MD5-checked
multipart upload for ``s3://`` (the shard is written to the executor's scratch space first:
one shard per running task). A retried task (Spark retries failed tasks) that finds its shard
complete — the planned size, and for ``s3://`` the sha256 its metadata records re-computed from
the stored bytes — verifies it and keeps it instead of writing it again (a computed format's
shard in a folder is kept when every byte equals its tensors computed again). Every
format of the registry is taken: a computed one (DCP, ZeRO, Meta, GGUF, llama2.c, Megatron) is
opened by each task, which computes only its shard's tensors; the driver writes the files the
format implies (config.json, tokenizer) and, last, the index: a reader that sees the index sees
every shard. An ``s3://`` source must be Hugging Face weights (read by byte ranges): a
computed format there is refused before any task runs (each would download it whole).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelport._io.atomic import fsync_dir, write_bytes_atomic
from modelport._io.hashing import copy_hashed, sha256_file
from modelport._io.st_header import TORCH_TO_ST, build_header
from modelport._io.urls import location
from modelport._types import FileRecord, Record, file_role
from modelport.convert.feeds import Feed
from modelport.convert.options import ConvertOptions
from modelport.convert.plan import ConvertPlan, plan_convert
from modelport.convert.remote import RemoteMirror
from modelport.convert.remote_dest import S3Destination
from modelport.convert.shards import INDEX_NAME, index_bytes, shard_metadata
from modelport.convert.writer import holds, prove_shard, write_shard
from modelport.errors import InputError, UnsupportedError, VerificationError


class ShardResult(Record):
    path: str
    size: int
    sha256: str
    tensors: int
    status: str  # written, kept (a complete shard found by a retried task or a rerun)
    seconds: float
    partition: int
    attempt: int


class DistributedConvertReport(Record):
    src: str
    out: str
    shards: list[ShardResult]
    files: list[FileRecord]
    tensors_written: int
    total_bytes: int
    aliases: dict[str, str]
    warnings: list[str]
    seconds: float


def _planned(plan: ConvertPlan) -> list[dict[str, Any]]:
    specs = []
    for i, s in enumerate(plan.shards):
        meta = shard_metadata(s, plan.aliases)
        entries = [(t.name, TORCH_TO_ST[t.dtype], t.shape, t.nbytes) for t in s.tensors]
        header, _ = build_header(entries, meta)
        specs.append({"index": i, "filename": s.filename, "names": [t.name for t in s.tensors],
                      "size": len(header) + s.nbytes})
    return specs


def write_planned_shard(src: str, out: str, spec: dict[str, Any], conv: dict[str, Any],
                        store: dict[str, Any], scratch: str | None,
                        after_write: Callable[[Path], None] | None = None) -> dict[str, Any]:
    """One task: write, verify and place the shard ``spec`` (see the module docstring)."""
    t0 = time.perf_counter()
    from pyspark import TaskContext

    ctx = TaskContext.get()
    remote = isinstance(location(out), str)  # the driver's strings, through the one parser
    work = Path(tempfile.mkdtemp(prefix="modelport-shard-", dir=scratch))
    mirror = RemoteMirror(src, scratch_dir=work, **store) \
        if isinstance(location(src), str) else None
    try:
        plan = plan_convert(mirror.root if mirror else src, work / "plan",
                            ConvertOptions(**conv))
        shard = plan.shards[spec["index"]] if spec["index"] < len(plan.shards) else None
        if shard is None or shard.filename != spec["filename"] or \
                [t.name for t in shard.tensors] != spec["names"]:
            raise InputError("the source changed since the driver planned it", path=src,
                             hint="run the job again on an unchanging source")
        if mirror is not None:  # this shard's tensor bytes only, with ranged GETs
            mirror.fetch_tensors(plan.regions("reading from object storage"), shard.tensors)
        # a computed format (plan.opened) computes its tensors again here; regions are read
        feed = plan.feed()
        status = "written"
        try:
            if remote:
                dest = S3Destination(out, **store)
                sha = dest.stored_sha(shard.filename, spec["size"])
                if sha is None:
                    sha = _write_verified(work / shard.filename, shard, plan, feed,
                                          after_write)
                    dest.put_file(work / shard.filename, shard.filename, spec["size"], sha)
                else:
                    status = "kept"
            else:
                final = Path(out) / shard.filename
                complete = final.is_file() and final.stat().st_size == spec["size"]
                if complete and holds(final, shard, feed, plan.aliases):  # every byte: keep it
                    sha, status = sha256_file(final), "kept"
                else:
                    for stale in final.parent.glob(f".{final.name}.*.partial"):
                        stale.unlink(missing_ok=True)  # an earlier attempt killed mid-write
                    part = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.partial")
                    try:
                        sha = _write_verified(part, shard, plan, feed, after_write)
                        os.replace(part, final)
                    finally:
                        part.unlink(missing_ok=True)
                    fsync_dir(final.parent)
        finally:
            feed.close()
            plan.close()
    finally:
        import shutil

        if mirror is not None:
            mirror.close()
        shutil.rmtree(work, ignore_errors=True)
    return {"path": shard.filename, "size": spec["size"], "sha256": sha,
            "tensors": len(shard.tensors), "status": status,
            "seconds": round(time.perf_counter() - t0, 3),
            "partition": ctx.partitionId() if ctx else spec["index"],
            "attempt": ctx.attemptNumber() if ctx else 0}


def _write_verified(path: Path, shard: Any, plan: ConvertPlan, feed: Feed,
                    after_write: Callable[[Path], None] | None) -> str:
    """The one writer's shard and its proof (``after_write``: a test's fault injection point,
    once the bytes are written)."""
    w = write_shard(path, shard, feed, shard_metadata(shard, plan.aliases))
    if after_write is not None:
        try:
            after_write(path)
        except BaseException:
            w.abort()
            raise
    return prove_shard(path, shard, feed, w, True).sha256


def convert_distributed(spark: Any, src: str | Path, out: str, options: ConvertOptions | None
                        = None, *, endpoint_url: str | None = None, region: str | None = None,
                        profile: str | None = None, scratch_dir: str | None = None,
                        _after_write: Callable[[Path], None] | None = None, **kwargs: Any
                        ) -> DistributedConvertReport:
    """Convert ``src`` (a path every executor can read, or ``s3://bucket/prefix``: each task
    then reads the headers and only its shard's tensor bytes with ranged GETs) into verified
    safetensors shards at ``out`` (a folder path or ``s3://bucket/prefix``), one Spark task
    per output shard.

    Returns a report with one :class:`ShardResult` per shard (``written`` or ``kept``) and the
    files the driver wrote. Raises what ``convert`` raises for the source; a failed task fails
    the job after Spark's retries, leaving no file under a final name that is not complete.
    """
    t0 = time.perf_counter()
    o = options or ConvertOptions(**kwargs)
    conv = o.model_dump()
    store = {"endpoint_url": endpoint_url, "region": region, "profile": profile}
    where = location(out, what="out", stores=("s3",))  # the one parser: never a folder "s3:"
    remote = isinstance(where, str)
    out = str(where)
    src_loc = location(src, what="src")
    source = str(src_loc)
    # an s3:// source: the driver plans from the headers (ranged reads), as convert does
    mirror = RemoteMirror(source, scratch_dir=scratch_dir, **store) \
        if isinstance(src_loc, str) else None
    plan: ConvertPlan | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="modelport-plan-") as tmp:
            dst = Path(tmp) / "out" if remote else Path(out)
            if not remote and dst.exists() and any(dst.iterdir()) and not o.overwrite:
                raise InputError("exists and is not empty", path=dst,
                                 hint="choose a new folder, or pass overwrite=True")
            if mirror is not None and not mirror.format.regions:
                raise UnsupportedError(
                    f"a {mirror.format.label} in object storage is read from whole files, "
                    "which every task would download again", path=source,
                    hint=f"convert it once: modelport convert {source} DST (downloads it "
                    "whole), or give the executors a shared path to it")
            plan = plan_convert(mirror.root if mirror else src, Path(tmp) / "plan", o)
        specs = _planned(plan)
        if not remote:
            Path(out).mkdir(parents=True, exist_ok=True)
        rdd = spark.sparkContext.parallelize(specs, max(1, len(specs)))
        rows = rdd.map(lambda spec: write_planned_shard(source, out, spec, conv, store,
                                                        scratch_dir, _after_write)).collect()
        shards = sorted((ShardResult(**r) for r in rows), key=lambda r: r.path)
        for r, spec in zip(shards, sorted(specs, key=lambda s: s["filename"]), strict=True):
            if r.size != spec["size"]:
                raise VerificationError(f"{r.path}: {r.size} bytes, planned {spec['size']}",
                                        path=out)
        files = [FileRecord(path=r.path, role="weights", size=r.size, sha256=r.sha256,
                            tensors=r.tensors) for r in shards]
        files += _driver_files(plan, out, store, shards)
    finally:
        if plan is not None:
            plan.close()
        if mirror is not None:
            mirror.close()
    return DistributedConvertReport(
        src=source, out=out, shards=shards, files=files,
        tensors_written=sum(r.tensors for r in shards), total_bytes=plan.total_bytes,
        aliases=plan.aliases, warnings=plan.warnings,
        seconds=round(time.perf_counter() - t0, 3))


def _driver_files(plan: ConvertPlan, out: str, store: dict[str, Any],
                  shards: list[ShardResult]) -> list[FileRecord]:
    """config, tokenizer and other small files, then the index last."""
    with tempfile.TemporaryDirectory(prefix="modelport-side-") as side:
        return _put_files(plan, _side_files(plan, Path(side)), out, store, shards)


def _side_files(plan: ConvertPlan, side: Path) -> list[tuple[str, Path]]:
    """(name in the output, file here): copied files, and for a computed format the files its
    opener writes (config.json, tokenizer) written into ``side``."""
    if plan.source is not None:
        root = plan.source.root
        return [(rel, root / rel) for rel in plan.source.copy_files] if root is not None else []
    op = plan.opened
    assert op is not None
    items = [(p.name, p) for p in op.copy_files] if plan.options.copy_other_files else []
    if op.side is not None:
        op.side(side)
    return items + [(p.relative_to(side).as_posix(), p) for p in sorted(side.rglob("*"))
                    if p.is_file()]


def _put_files(plan: ConvertPlan, files: list[tuple[str, Path]], out: str,
               store: dict[str, Any], shards: list[ShardResult]) -> list[FileRecord]:
    index = None
    if len(shards) > 1:
        index = index_bytes(plan.shards)
    records = []
    if isinstance(location(out), str):
        dest = S3Destination(out, **store)
        items = [(rel, p.read_bytes()) for rel, p in files]  # small files
        if index is not None:
            items.append((INDEX_NAME, index))
        for rel, data in items:
            records.append(FileRecord(path=rel, role="index" if rel == INDEX_NAME else
                                      file_role(rel), size=len(data),
                                      sha256=dest.put_bytes(rel, data)))
        return records
    for rel, p in files:
        dest = Path(out) / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(f".{dest.name}.partial")
        size, sha = copy_hashed(p, part)
        os.replace(part, dest)
        records.append(FileRecord(path=rel, role=file_role(rel), size=size, sha256=sha))
    if index is not None:
        write_bytes_atomic(Path(out) / INDEX_NAME, index)
        records.append(FileRecord(path=INDEX_NAME, role="index", size=len(index),
                                  sha256=hashlib.sha256(index).hexdigest()))
    fsync_dir(Path(out))
    return records


__all__ = ["DistributedConvertReport", "ShardResult", "convert_distributed",
           "write_planned_shard"]
