"""The one safetensors shard writer: every route's tensors, copied or computed, written while
hashing, then proven, then indexed.

A *feed* (:mod:`modelport.convert.feeds`) hands the writer each planned tensor's bytes. A
tensor whose bytes lie in source files (``regions``: one range of one file, or several whose
concatenation is the tensor, as a checkpoint split on its first dimension) is copied by the
kernel and proven by comparing the written bytes with the source's, byte for byte; a tensor
computed when the writer reaches it (reassembled across columns, permuted, dequantized,
merged; ``computed`` true) is written once and never cached, fingerprinted (xxh3) while it is
hashed, and proven by reading its range of the file again against that fingerprint. Both
kinds also pass safetensors' own parser (the names, dtypes, shapes and ``format: pt``). A
shard may hold both kinds (a LoRA merge copies the base's untouched tensors; a DCP checkpoint
copies its row-split tensors and computes its column-split ones). A shard at least
``DIRECT_SHARE`` computed is written around the page cache instead
(:mod:`modelport._io.direct`), and every byte of it is proven by reading the disk back while
the shard is written. A shard through the page cache is finished (hashed, proven, synced)
beside the writing of the next one, then leaves the page cache (:func:`write_shards`).
"""

from __future__ import annotations

import mmap
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from modelport._io.direct import DirectWriter, Staging, block_size, open_direct
from modelport._io.hashing import HashingWriter, fingerprint_range
from modelport._io.pages import drop_cached, drop_pages
from modelport._io.scratch import Scratch
from modelport._io.st_header import TORCH_TO_ST, build_header, read_header
from modelport._types import FileRecord
from modelport.convert.feeds import Feed
from modelport.convert.shards import INDEX_NAME, ShardPlan, index_bytes, shard_metadata
from modelport.errors import ModelportError, VerificationError


def _equal(a: memoryview, b: Any) -> bool:
    """Byte equality of two buffers (numpy compares 8 bytes at a time, ~15 GB/s)."""
    import numpy as np

    b = memoryview(b).cast("B")
    if a.nbytes != b.nbytes:
        return False
    step = 256 * 2**20
    for i in range(0, a.nbytes, step):
        x = np.frombuffer(a[i: i + step], dtype=np.uint8)
        y = np.frombuffer(b[i: i + step], dtype=np.uint8)
        if x.size % 8 == 0:
            x, y = x.view(np.uint64), y.view(np.uint64)
        if not np.array_equal(x, y):
            return False
    return True


def _entries(shard: ShardPlan) -> list[tuple[str, str, tuple[int, ...], int]]:
    return [(t.name, TORCH_TO_ST[t.dtype], tuple(t.shape), t.nbytes) for t in shard.tensors]


# a shard at least this share computed is written around the page cache (measured in
# docs/benchmarks.md: faster for the Meta layout, 46% computed; slower for a shard only
# copied, which the kernel copies page to page)
DIRECT_SHARE = 0.25


def _writer(path: Path, made: int, total: int, verify: bool, staging: Staging
            ) -> HashingWriter | DirectWriter:
    """The writer for a shard of ``total`` bytes, ``made`` of them computed:
    :class:`DirectWriter` when that is enough and the file system has ``O_DIRECT``, else
    :class:`HashingWriter` (through the page cache)."""
    fd = open_direct(path) if made and made >= DIRECT_SHARE * total else None
    if fd is None:
        return HashingWriter(path)
    try:
        return DirectWriter(path, fd, verify, staging)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise


def write_shard(path: Path, shard: ShardPlan, feed: Feed, metadata: dict[str, str],
                progress: Any = None, scratch: Scratch | None = None, verify: bool = True,
                staging: Staging | None = None) -> HashingWriter | DirectWriter:
    """Write ``shard`` to the new file ``path`` (:func:`_writer` chooses how); the returned
    writer is still hashing and syncing (:func:`prove_shard` finishes it). Computed tensors
    are made in ``scratch``'s buffers, and staged, where the shard is written around the
    page cache, in ``staging``'s blocks. Removes the file on any error."""
    header, _ = build_header(_entries(shard), metadata)
    spans = [feed.regions(t) for t in shard.tensors]  # asked once: they decide the writer
    total = sum(t.nbytes for t in shard.tensors)
    w = _writer(path, sum(t.nbytes for t, r in zip(shard.tensors, spans, strict=True)
                          if r is None), total, verify, staging or Staging(block_size(total)))
    scratch = scratch or Scratch()
    try:
        w.write(header, fingerprint=True)  # proven by its re-read, as a computed tensor
        for t, regions in zip(shard.tensors, spans, strict=True):
            if regions is not None:
                last = len(regions) - 1
                for i, (src_fd, offset, view) in enumerate(regions):
                    w.copy_from(src_fd, offset, view,
                                hashed=(lambda t=t: feed.release(t)) if i == last else None)
                if not regions:
                    feed.release(t)
            else:
                slot, buf = scratch.take(t.nbytes)
                try:
                    data = feed.tensor_bytes(t, buf)
                except BaseException:
                    scratch.give_back(slot)
                    raise
                w.write(data, fingerprint=True, hashed=lambda s=slot: scratch.give_back(s))
            if progress is not None:
                progress.update(t.nbytes)
        w.start_sync()  # the direct writer's last block goes to the disk here
    except BaseException:
        w.abort()
        path.unlink(missing_ok=True)
        raise
    return w


def _parse(path: Path, shard: ShardPlan) -> None:
    """safetensors' own parser reads exactly the planned names, dtypes and shapes."""
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:  # an independent parser of our output
        names = set(f.keys())
        meta = f.metadata() or {}
        for t in shard.tensors:
            if t.name not in names:
                raise VerificationError(f"tensor {t.name!r} missing after write", path=path)
            sl = f.get_slice(t.name)
            if tuple(sl.get_shape()) != tuple(t.shape) or sl.get_dtype() != TORCH_TO_ST[t.dtype]:
                raise VerificationError(
                    f"tensor {t.name!r} reads back as {sl.get_dtype()}{sl.get_shape()}, "
                    f"expected {TORCH_TO_ST[t.dtype]}{list(t.shape)}", path=path)
    if names != {t.name for t in shard.tensors} or meta.get("format") != "pt":
        raise VerificationError("header differs from the plan", path=path)


def _differs(path: Path, shard: ShardPlan, feed: Feed, which: Callable[[Any], bool]
             ) -> str | None:
    """The first tensor among ``which`` whose bytes in ``path`` differ from the feed's."""
    header = read_header(path)
    with open(path, "rb") as fh:
        m = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if header.file_size else None
    mv = memoryview(m) if m is not None else memoryview(b"")
    got: memoryview | None = None
    try:
        for t in shard.tensors:
            if not which(t):
                continue
            e = header.tensors[t.name]
            got = mv[header.data_start + e.begin: header.data_start + e.end]
            regions = feed.regions(t)
            parts = [v for _, _, v in regions] if regions is not None else \
                [feed.tensor_bytes(t)]
            pos = 0
            for part in parts:
                n = memoryview(part).nbytes
                if not _equal(got[pos: pos + n], part):
                    return str(t.name)
                pos += n
            if pos != len(got):
                return str(t.name)
            if m is not None:  # read once: neither file's pages stay
                drop_pages(m, header.data_start + e.begin, e.end - e.begin)
            feed.release(t)
        return None
    finally:
        if got is not None:
            got.release()
        mv.release()
        if m is not None:
            try:
                m.close()
            except BufferError:  # a slice is still referenced by a traceback; GC unmaps it
                pass


def _refingerprint_differs(path: Path, w: HashingWriter | DirectWriter) -> bool:
    """Whether a computed range of ``path`` reads back other than it was written (each
    range's xxh3, taken while writing, against the file's bytes there)."""
    if not w.fingerprints:
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        return any(fingerprint_range(fd, offset, length) != fp.hexdigest()
                   for offset, length, fp in w.fingerprints)
    finally:
        os.close(fd)


def prove_shard(path: Path, shard: ShardPlan, feed: Feed, w: HashingWriter | DirectWriter,
                verify: bool) -> FileRecord:
    """Finish ``w`` and, with ``verify``, prove the shard (see the module docstring; a
    :class:`DirectWriter` has compared every byte it read back from the disk by the time it
    closes); its file record."""
    try:
        if verify:
            _parse(path, shard)
            bad = None if isinstance(w, DirectWriter) else \
                _differs(path, shard, feed, lambda t: not feed.computed(t))
            if bad is not None:
                raise VerificationError(f"tensor {bad!r} bytes differ from the source", path=path,
                                        hint="this is a modelport bug; please report it")
    finally:
        sha = w.close()
    if verify and _refingerprint_differs(path, w):
        raise VerificationError("the bytes on disk differ from the bytes written", path=path,
                                hint="check the disk; nothing was kept")
    return FileRecord(path=shard.filename, role="weights", size=w.size, sha256=sha,
                      tensors=len(shard.tensors))


def holds(path: Path, shard: ShardPlan, feed: Feed, aliases: dict[str, str]) -> bool:
    """Whether the file at ``path`` is ``shard`` as the writer would write it now: the same
    header (names, dtypes, shapes, metadata) and every byte (a rerun keeps such a shard)."""
    try:
        header = read_header(path)
    except ModelportError:
        return False
    if set(header.tensors) != {t.name for t in shard.tensors} or \
            (header.metadata or {}) != shard_metadata(shard, aliases):
        return False
    for t in shard.tensors:
        e = header.tensors[t.name]
        if (e.dtype, tuple(e.shape)) != (TORCH_TO_ST[t.dtype], tuple(t.shape)):
            return False
    return _differs(path, shard, feed, lambda t: True) is None


def _prove_timed(path: Path, shard: ShardPlan, feed: Feed, w: HashingWriter | DirectWriter,
                 verify: bool) -> tuple[FileRecord, float]:
    t0 = time.perf_counter()
    return prove_shard(path, shard, feed, w, verify), time.perf_counter() - t0


def write_shards(folder: Path, shards: list[ShardPlan], feed: Feed, *, verify: bool,
                 aliases: dict[str, str] | None = None, progress: Any = None,
                 before_shard: Callable[[ShardPlan], None] | None = None,
                 after_shard: Callable[[ShardPlan, Path, FileRecord], None] | None = None
                 ) -> tuple[list[FileRecord], dict[str, str], float]:
    """Write and prove every planned shard in ``folder``, then the index when there is more
    than one. ``before_shard`` runs before each (a remote source fetches its bytes),
    ``after_shard`` on each proven shard (a remote destination uploads it). Returns the file
    records, the weight map (tensor name -> shard) and the seconds the proofs took.

    Where nothing runs between shards (no ``before_shard`` or ``after_shard``), a shard
    written through the page cache is finished — hashed, proven, synced — on a second thread
    while the next shard is written: two shards' sha256 run on two cores. At most one shard
    is finishing at a time, and an error in either stops both. Once proven and synced, a
    shard that another follows leaves the page cache: the next shards' writes take its pages,
    and a model larger than memory does not evict every other cached file."""
    outputs: list[FileRecord] = []
    proving = 0.0
    scratch = Scratch()  # both reused from shard to shard (a staging block is touched only
    # by a shard written around the page cache)
    staging = Staging(block_size(max((sum(t.nbytes for t in sh.tensors) for sh in shards),
                                     default=0)))
    ahead = ThreadPoolExecutor(1) if len(shards) > 1 and before_shard is None \
        and after_shard is None else None
    pending: tuple[ShardPlan, Path, Future[tuple[FileRecord, float]]] | None = None

    def done(sh: ShardPlan, path: Path, proven: tuple[FileRecord, float]) -> None:
        nonlocal proving
        outputs.append(proven[0])
        proving += proven[1]
        if after_shard is not None:
            after_shard(sh, path, proven[0])
        if sh is not shards[-1]:  # proven and on the disk: its pages go to the next shard's
            drop_cached(path)  # writes (the last stays cached for what reads the model next)

    try:
        for sh in shards:
            if before_shard is not None:
                before_shard(sh)
            path = folder / sh.filename
            w = write_shard(path, sh, feed, shard_metadata(sh, aliases or {}), progress,
                            scratch, verify, staging)
            if pending is not None:
                try:
                    done(pending[0], pending[1], pending[2].result())
                except BaseException:
                    w.abort()
                    raise
                pending = None
            # a shard around the page cache shares the staging blocks with the next: not ahead
            if ahead is not None and isinstance(w, HashingWriter):
                pending = (sh, path, ahead.submit(_prove_timed, path, sh, feed, w, verify))
            else:
                done(sh, path, _prove_timed(path, sh, feed, w, verify))
        if pending is not None:
            done(pending[0], pending[1], pending[2].result())
            pending = None
    finally:
        if ahead is not None:
            ahead.shutdown(wait=True)  # a proof still running ends before its files go
    if len(shards) > 1:
        with HashingWriter(folder / INDEX_NAME) as w:
            w.write(index_bytes(shards))
            w.close()
        outputs.append(FileRecord(path=INDEX_NAME, role="index", size=w.size, sha256=w.sha256))
    return outputs, {t.name: sh.filename for sh in shards for t in sh.tensors}, proving


__all__ = ["holds", "prove_shard", "write_shard", "write_shards"]
