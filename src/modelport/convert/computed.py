"""Safetensors shards whose tensors are computed one at a time (merged, reassembled,
permuted): the header first, then each tensor's bytes as it is produced, hashed as written;
the proof re-reads the file (safetensors' own parser, then its sha256 against the written)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelport._io.hashing import HashingWriter, sha256_file
from modelport._io.st_header import build_header
from modelport.errors import VerificationError

Entry = tuple[str, str, tuple[int, ...], int]  # (name, safetensors dtype, shape, nbytes)


def tensor_bytes(t: Any) -> Any:
    """A contiguous torch tensor's bytes as a numpy view (no copy)."""
    import torch

    return t.contiguous().reshape(-1).view(torch.uint8).numpy()


def write_shard(path: Path, entries: list[Entry], emit: Callable[[int, HashingWriter], None]
                ) -> HashingWriter:
    """Write ``entries`` to the new file ``path``; ``emit(i, writer)`` writes entry i's bytes.
    Removes the file on any error."""
    header, _ = build_header(entries, {"format": "pt"})
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


__all__ = ["Entry", "tensor_bytes", "verify_shard", "write_shard"]
