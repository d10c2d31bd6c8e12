"""Execute a conversion plan: write shards streaming, hash while writing, verify, rename."""

from __future__ import annotations

import math
import mmap
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelport._io.atomic import atomic_dir
from modelport._io.hashcache import record as record_hashes
from modelport._io.hashing import HashingWriter, copy_hashed
from modelport._io.st_header import TORCH_TO_ST, build_header, read_header
from modelport._io.urls import location
from modelport._types import FileRecord, SkippedItem, file_role
from modelport.convert.options import ConvertOptions
from modelport.convert.plan import ConvertPlan, plan_convert
from modelport.convert.report import ConvertReport, InputFile
from modelport.convert.shards import INDEX_NAME, ShardPlan, index_bytes, shard_metadata
from modelport.convert.sources import Reader, SourceTensor
from modelport.errors import CheckpointError, ModelportError, VerificationError


def _equal(a: memoryview, b: memoryview) -> bool:
    """Byte equality of two buffers (numpy compares 8 bytes at a time, ~15 GB/s)."""
    if a.nbytes != b.nbytes:
        return False
    if a.nbytes == 0:
        return True
    import numpy as np

    step = 256 * 2**20
    for i in range(0, a.nbytes, step):
        x = np.frombuffer(a[i: i + step], dtype=np.uint8)
        y = np.frombuffer(b[i: i + step], dtype=np.uint8)
        if x.size % 8 == 0:
            x, y = x.view(np.uint64), y.view(np.uint64)
        if not np.array_equal(x, y):
            return False
    return True


def write_shard(path: Path, shard: ShardPlan, reader: Reader, progress: object,
                 metadata: dict[str, str]) -> HashingWriter:
    """Write a shard; the returned writer is still hashing (finish it with ``close()``)."""
    entries = [(t.name, TORCH_TO_ST[t.dtype], t.shape, t.nbytes) for t in shard.tensors]
    header, _ = build_header(entries, metadata)
    w = HashingWriter(path)
    try:
        w.write(header)
        for t in shard.tensors:
            region = reader.file_region(t)
            if region is not None:
                w.copy_from(region[0], region[1], reader.tensor_bytes(t))
            else:
                w.write(reader.tensor_bytes(t))
            if progress is not None:
                progress.update(t.nbytes)  # type: ignore[attr-defined]
    except BaseException:
        w.abort()
        raise
    w.start_sync()
    return w


def verify_shard(path: Path, shard: ShardPlan, reader: Reader) -> None:
    """Re-open the written file with safetensors and compare every tensor with the source."""
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:  # an independent parser of our output
        names = set(f.keys())
        meta = f.metadata() or {}
        for t in shard.tensors:
            if t.name not in names:
                raise VerificationError(f"tensor {t.name!r} missing after write", path=path)
            sl = f.get_slice(t.name)
            if tuple(sl.get_shape()) != t.shape or sl.get_dtype() != TORCH_TO_ST[t.dtype]:
                raise VerificationError(
                    f"tensor {t.name!r} reads back as {sl.get_dtype()}{sl.get_shape()}, "
                    f"expected {TORCH_TO_ST[t.dtype]}{list(t.shape)}", path=path)
    if names != {t.name for t in shard.tensors} or meta.get("format") != "pt":
        raise VerificationError("header differs from the plan", path=path)
    header = read_header(path)
    with open(path, "rb") as fh:
        m = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if header.file_size else None
    mv = memoryview(m) if m is not None else memoryview(b"")
    try:
        for t in shard.tensors:
            e = header.tensors[t.name]
            got = mv[header.data_start + e.begin: header.data_start + e.end]
            if not _equal(got, reader.tensor_bytes(t)):
                raise VerificationError(f"tensor {t.name!r} bytes differ from the source",
                                        path=path, hint="this is a modelport bug; please report it")
    finally:
        got = None
        mv.release()
        if m is not None:
            try:
                m.close()
            except BufferError:  # a slice is still referenced by a traceback; GC unmaps it
                pass


def _progress(total: int, enabled: bool | None, desc: str) -> object:
    if enabled is False:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                disable=None if enabled is None else not enabled, leave=False)


def execute(plan: ConvertPlan, *, progress: bool | None = None,
            before_shard: Callable[[ShardPlan], None] | None = None,
            after_shard: Callable[[ShardPlan, Path, FileRecord], None] | None = None
            ) -> ConvertReport:
    """Write the plan's outputs into a temp folder, verify them, then rename into place.
    ``before_shard`` / ``after_shard`` run around each shard (a remote source fetches its
    tensors' bytes before and gives the scratch space back after; a remote destination
    uploads the written, verified shard)."""
    if plan.opened is not None:  # a computed route: its tensors one at a time
        from modelport.convert.opened import write_opened

        try:
            return write_opened(plan.opened, plan.shards, plan.dst, plan.options, after_shard)
        finally:
            plan.close()
    t0 = time.perf_counter()
    src = plan.regions("this writer")
    reader = Reader(src.files)
    outputs: list[FileRecord] = []
    tensor_map: dict[str, str] = {}
    verify_s = 0.0
    bar = _progress(plan.total_bytes, progress, "convert")
    try:
        with atomic_dir(plan.dst, overwrite=plan.options.overwrite) as tmp:
            for shard in plan.shards:
                if before_shard is not None:
                    before_shard(shard)
                meta = shard_metadata(shard, plan.aliases)
                w = write_shard(tmp / shard.filename, shard, reader, bar, meta)
                try:
                    if plan.options.verify:  # on this core, while the other one hashes
                        v0 = time.perf_counter()
                        verify_shard(tmp / shard.filename, shard, reader)
                        verify_s += time.perf_counter() - v0
                finally:
                    w.close()
                outputs.append(FileRecord(path=shard.filename, role="weights", size=w.size,
                                          sha256=w.sha256, tensors=len(shard.tensors)))
                if after_shard is not None:
                    after_shard(shard, tmp / shard.filename, outputs[-1])
                for t in shard.tensors:
                    tensor_map[t.name] = shard.filename
            if len(plan.shards) > 1:
                with HashingWriter(tmp / INDEX_NAME) as w:
                    w.write(index_bytes(plan.shards))
                    w.close()
                outputs.append(FileRecord(path=INDEX_NAME, role="index", size=w.size,
                                          sha256=w.sha256))
            if plan.options.copy_other_files and src.root is not None:
                for rel in src.copy_files:
                    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                    size, sha = copy_hashed(src.root / rel, tmp / rel)
                    outputs.append(FileRecord(path=rel, role=file_role(rel), size=size,
                                              sha256=sha))
            record_hashes(tmp, {o.path: o.sha256 for o in outputs})
    except OSError as e:
        if isinstance(e, ModelportError):
            raise
        raise CheckpointError(f"cannot write output: {e.strerror or e}", path=plan.dst,
                              hint="check free space and permissions; nothing was left behind"
                              ) from e
    finally:
        reader.close()
        if bar is not None:
            bar.close()  # type: ignore[attr-defined]
    for dropped, kept in plan.aliases.items():
        tensor_map[dropped] = f"alias of {kept}"
    dtypes: dict[str, int] = {}
    for t in src.tensors:
        dtypes[t.dtype] = dtypes.get(t.dtype, 0) + 1
    written: list[SourceTensor] = [t for s in plan.shards for t in s.tensors]
    return ConvertReport(
        src=str(src.src), dst=str(plan.dst),
        inputs=[InputFile(path=str(f.path), format=f.format, size=os.path.getsize(f.path))
                for f in src.files],
        state_dict_key=src.state_dict_key,
        tensors_in=len(src.tensors), tensors_written=len(written),
        parameters=sum(math.prod(t.shape) for t in written),
        total_bytes=plan.total_bytes, dtypes=dtypes, outputs=outputs,
        aliases=plan.aliases, overlapping_views=plan.overlapping, tensor_map=tensor_map,
        renamed=plan.renamed,
        skipped_entries=[SkippedItem(name=s.name, reason=s.reason) for s in src.skipped_entries],
        skipped_files=[SkippedItem(name=s.name, reason=s.reason) for s in src.skipped_files],
        warnings=plan.warnings, verified=plan.options.verify,
        seconds=round(time.perf_counter() - t0, 3), verify_seconds=round(verify_s, 3),
    )


def convert(
    src: str | Path, dst: str | Path, options: ConvertOptions | None = None, *,
    progress: bool | None = None, store: dict[str, Any] | None = None, **kwargs: object,
) -> ConvertReport:
    """Convert a pickled or safetensors checkpoint into verified safetensors shards.

    Args:
        src: a model folder, a single ``.bin``/``.pt``/``.pth``/``.ckpt``/``.safetensors``
            file, a ``torch.distributed.checkpoint`` folder (``.metadata`` + ``.distcp``), a
            DeepSpeed ZeRO checkpoint (a folder with ``latest``, or ``global_stepN/``), Meta's
            or Mistral's original layout, a ``.gguf`` file (or a folder holding one), or a
            llama2.c ``ckpt.pt``; :mod:`modelport.convert.formats` decides which.
        dst: the output folder (created; must not exist unless ``overwrite``).
        options: a :class:`ConvertOptions`; keyword arguments build one when omitted.
        progress: show a progress bar (None: only on a terminal or notebook).
        store: for ``s3://bucket/prefix`` sources: ``endpoint_url``, ``region``, ``profile``
            (credentials as boto3 finds them).

    Returns:
        A :class:`ConvertReport` listing every file written with its sha256 and the fate of
        every input tensor name.

    Raises:
        InputError, CheckpointError, UnsafeCheckpointError, UnsupportedError,
        VerificationError: nothing is left at ``dst`` in every case.

    Example:
        >>> report = modelport.convert("llama-bin/", "llama-st/", max_shard_size="2GB")
        >>> report.outputs[0].sha256
    """
    if options is None:
        options = ConvertOptions(**kwargs)  # type: ignore[arg-type]
    elif kwargs:  # validated (model_copy would take "2GB" as it is)
        options = ConvertOptions(**{**options.model_dump(), **kwargs})
    src, dst = location(src, what="SRC"), location(dst, what="DST")
    if isinstance(src, str) or isinstance(dst, str):
        from modelport.convert.remote_convert import convert_remote

        return convert_remote(src, dst, options, progress=progress, store=store)
    return execute(plan_convert(src, dst, options), progress=progress)


__all__ = ["INDEX_NAME", "ConvertReport", "convert", "execute",
           "shard_metadata", "verify_shard", "write_shard"]
