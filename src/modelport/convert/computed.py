"""Safetensors shards whose tensors are computed one at a time (merged, reassembled,
permuted): the header first, then each tensor's bytes as it is produced, hashed as written;
the proof re-reads the file (safetensors' own parser, then its sha256 against the written)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelport._io.hashing import HashingWriter, sha256_file
from modelport._io.st_header import build_header
from modelport._types import FileRecord
from modelport.convert.shards import INDEX_NAME, ShardPlan, index_bytes, shard_metadata
from modelport.errors import VerificationError

Entry = tuple[str, str, tuple[int, ...], int]  # (name, safetensors dtype, shape, nbytes)


def tensor_bytes(t: Any) -> Any:
    """A contiguous torch tensor's bytes as a numpy view (no copy)."""
    import torch

    return t.contiguous().reshape(-1).view(torch.uint8).numpy()


def write_shard(path: Path, entries: list[Entry], emit: Callable[[int, HashingWriter], None],
                metadata: dict[str, str] | None = None) -> HashingWriter:
    """Write ``entries`` to the new file ``path``; ``emit(i, writer)`` writes entry i's bytes.
    Removes the file on any error."""
    header, _ = build_header(entries, metadata or {"format": "pt"})
    w = HashingWriter(path)
    try:
        w.write(header)
        for i in range(len(entries)):
            emit(i, w)
        w.close()
    except BaseException:
        w.abort()
        path.unlink(missing_ok=True)
        raise
    return w


def verify_shard(path: Path, names: set[str], sha: str) -> None:
    """safetensors' own parser accepts the file with exactly ``names``, and its bytes on disk
    hash to the bytes written."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        if set(f.keys()) != names:
            raise VerificationError("tensor names differ after writing", path=path)
    if sha256_file(path) != sha:
        raise VerificationError("the bytes on disk differ from the bytes written", path=path,
                                hint="check the disk; nothing was kept")


def write_proven(path: Path, sh: ShardPlan, entry: Callable[[Any], Entry],
                 emit: Callable[[Any, HashingWriter], None], verify: bool,
                 aliases: dict[str, str] | None = None) -> FileRecord:
    """Write one planned shard at ``path`` (its metadata: ``format: pt`` and the aliases whose
    kept tensor it holds) and prove it; its file record."""
    entries = [entry(it) for it in sh.tensors]
    w = write_shard(path, entries, lambda i, w, g=sh.tensors: emit(g[i], w),
                    shard_metadata(sh, aliases or {}))
    if verify:
        verify_shard(path, {e[0] for e in entries}, w.sha256)
    return FileRecord(path=sh.filename, role="weights", size=w.size, sha256=w.sha256,
                      tensors=len(entries))


def write_shards(folder: Path, shards: list[ShardPlan], entry: Callable[[Any], Entry],
                 emit: Callable[[Any, HashingWriter], None], verify: bool,
                 aliases: dict[str, str] | None = None,
                 after_shard: Callable[[ShardPlan, Path, FileRecord], None] | None = None
                 ) -> tuple[list[FileRecord], dict[str, str]]:
    """Write every planned shard (``entry(item)`` names and sizes each item, ``emit`` writes
    its bytes) and prove it, then the index when there is more than one shard;
    ``after_shard`` runs on each proven shard (an upload). Returns the file records and the
    weight map."""
    outputs: list[FileRecord] = []
    for sh in shards:
        outputs.append(write_proven(folder / sh.filename, sh, entry, emit, verify, aliases))
        if after_shard is not None:
            after_shard(sh, folder / sh.filename, outputs[-1])
    if len(shards) > 1:
        data = index_bytes(shards)
        (folder / INDEX_NAME).write_bytes(data)
        outputs.append(FileRecord(path=INDEX_NAME, role="index", size=len(data),
                                  sha256=hashlib.sha256(data).hexdigest()))
    return outputs, {entry(it)[0]: sh.filename for sh in shards for it in sh.tensors}


__all__ = ["Entry", "tensor_bytes", "verify_shard", "write_proven", "write_shard",
           "write_shards"]
