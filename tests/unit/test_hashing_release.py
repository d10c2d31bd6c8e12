"""The hash thread runs a caller's callback once a copied view is hashed (the writer unmaps
the source's pages there); a callback that fails never stops the hash short."""

from __future__ import annotations

import hashlib
import mmap
import os
from pathlib import Path

from modelport._io.hashing import HashingWriter


def test_a_failing_release_callback_does_not_cut_the_hash(tmp_path: Path) -> None:
    data = os.urandom(3 * 2**20 + 17)
    src = tmp_path / "src"
    src.write_bytes(data)
    called: list[int] = []

    def fail() -> None:
        called.append(1)
        raise ValueError("madvise refused")

    fd = os.open(src, os.O_RDONLY)
    m = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    try:
        w = HashingWriter(tmp_path / "out")
        w.copy_from(fd, 0, memoryview(m), hashed=fail)
        w.write(b"tail")
        sha = w.close()
    finally:
        m.close()
        os.close(fd)
    assert called == [1]
    assert sha == hashlib.sha256(data + b"tail").hexdigest()
    assert (tmp_path / "out").read_bytes() == data + b"tail"
