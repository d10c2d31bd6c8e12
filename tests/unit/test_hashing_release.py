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


def test_a_written_buffer_is_handed_back_only_once_hashed(tmp_path: Path) -> None:
    # the callback overwrites the buffer: were it run before the hash read every byte, the
    # sha256 would be of the overwritten bytes
    data = bytearray(os.urandom(2 * 32 * 2**20 + 5))  # three chunks of the hash queue
    want = hashlib.sha256(bytes(data)).hexdigest()
    w = HashingWriter(tmp_path / "out")
    w.write(memoryview(data), hashed=lambda: data.__setitem__(slice(None), bytes(len(data))))
    assert w.close() == want
    assert not any(data)  # the callback ran


def test_the_writer_reuses_a_scratch_buffer_only_after_give_back() -> None:
    import threading

    from modelport._io.scratch import Scratch

    s = Scratch()
    a, buf_a = s.take(10)
    b, _ = s.take(20)
    assert a != b
    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(s.take(8)))
    t.start()
    t.join(0.3)
    assert t.is_alive() and not got  # slot a is still being hashed: the taker waits
    s.give_back(a)
    t.join(5)
    slot, buf = got[0]  # type: ignore[misc]
    assert slot == a and buf.nbytes == 8
    assert buf.ctypes.data == buf_a.ctypes.data  # the same memory, not a fresh allocation
