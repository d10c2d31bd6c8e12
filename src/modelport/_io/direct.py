"""Write a file around the page cache (``O_DIRECT``), hashing and proving it while it is
written.

Bytes are staged in a few reused, page-aligned blocks; a full block goes to the disk
directly (one thread), to sha256 (another) and, with ``verify``, is read back from the disk
(a third) and compared: a copied range with its source's bytes, byte for byte, and every
other byte with the staged block it was written from. A block is staged again only once
all three are done with it, so memory stays a few blocks, and the proof is done when the
last block is written, not in a second pass.

Why: a buffered write puts every byte in the page cache first — new pages on every shard,
which on a virtual machine whose host takes freed memory back cost more than the disk
(measured in docs/benchmarks.md) and which a cgroup (YARN, Kubernetes) charges to the
writer — and the re-read of a buffered file reads the page cache, not the disk.
"""

from __future__ import annotations

import errno
import hashlib
import mmap
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelport.errors import VerificationError

ALIGN = 4096  # O_DIRECT offsets and lengths: a multiple of the logical block size
BLOCK = 32 * 2**20
RING = 3

# a copied range of a block: (start in the block, length, the source bytes it must equal, a
# callback once it is proven); every other byte of the block must equal the staged one
Segment = tuple[int, int, Any, Callable[[], None] | None]


def _memcmp() -> Any:
    import ctypes

    try:
        f = ctypes.CDLL(None).memcmp
    except (OSError, AttributeError):
        return None
    f.restype, f.argtypes = ctypes.c_int, [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    return f


_MEMCMP = _memcmp()


def same(a: Any, b: Any) -> bool:
    """Byte equality of two uint8 numpy arrays: libc's memcmp (no memory allocated, the GIL
    released), else numpy."""
    import numpy as np

    if a.nbytes != b.nbytes:
        return False
    if _MEMCMP is None or not (a.flags.c_contiguous and b.flags.c_contiguous):
        return bool(np.array_equal(a, b))
    return a.nbytes == 0 or _MEMCMP(a.ctypes.data, b.ctypes.data, a.nbytes) == 0


def open_direct(path: Path) -> int | None:
    """A new file opened for ``O_DIRECT`` writes, or None where the file system or the
    platform has none (the caller writes through the page cache)."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return None
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | flag, 0o644)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        path.unlink(missing_ok=True)
        return None


def block_size(shard_bytes: int) -> int:
    """The staging block for shards of up to ``shard_bytes``: a sixteenth of it, between
    1 MiB and :data:`BLOCK` (the blocks, four with the read-back's, stay a quarter of a
    shard at most)."""
    return min(BLOCK, max(2**20, shard_bytes // 16 // ALIGN * ALIGN))


class Staging:
    """The blocks a :class:`DirectWriter` stages in and reads back into, made once per
    convert and handed from shard to shard (memory this process has used is filled many
    times faster than fresh memory on a host that takes freed pages back)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.blocks = [_Block(size) for _ in range(RING)]
        self.readback = mmap.mmap(-1, size)


class _Block:
    __slots__ = ("base", "buf", "n", "segments", "users")

    def __init__(self, size: int) -> None:
        self.buf = mmap.mmap(-1, size)  # anonymous: page-aligned, reused for every block
        self.n = 0
        self.base = 0
        self.segments: list[Segment] = []
        self.users = 0


class DirectWriter:
    """The interface of :class:`~modelport._io.hashing.HashingWriter` (``write``,
    ``copy_from``, ``start_sync``, ``close``, ``abort``, ``size``, ``sha256``) over an
    ``O_DIRECT`` file descriptor from :func:`open_direct`; with ``verify``, :meth:`close`
    raises :class:`VerificationError` when a byte read back from the disk differs."""

    def __init__(self, path: Path, fd: int, verify: bool = True,
                 staging: Staging | None = None) -> None:
        self.path, self._fd, self._verify = path, fd, verify
        staging = staging or Staging(BLOCK)
        self._block = staging.size
        self.fingerprints: list[Any] = []  # none to re-read after close: proven as written
        self.size = 0
        self.sha256 = ""
        self.mismatch: str | None = None
        self._sha = hashlib.sha256()
        self._free: queue.Queue[_Block] = queue.Queue()
        for b in staging.blocks:
            b.n, b.segments, b.users = 0, [], 0
            self._free.put(b)
        self._cur = self._free.get()
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._queues: list[queue.Queue[_Block | None]] = []
        self._threads: list[threading.Thread] = []
        for work in (self._to_disk, self._hash) + ((self._prove,) if verify else ()):
            q: queue.Queue[_Block | None] = queue.Queue()
            t = threading.Thread(target=self._run, args=(work, q), daemon=True)
            self._queues.append(q)
            self._threads.append(t)
            t.start()
        self._rfd = os.open(path, os.O_RDONLY | os.O_DIRECT) if verify else -1
        self._rbuf = staging.readback if verify else None
        self._closed = False
        self._synced: threading.Thread | None = None

    # -- the threads --------------------------------------------------------------------
    def _run(self, work: Callable[[_Block], None], q: queue.Queue[_Block | None]) -> None:
        while (b := q.get()) is not None:
            try:
                if self._error is None:
                    work(b)
            except BaseException as e:
                self._error = self._error or e
            finally:
                with self._lock:
                    b.users -= 1
                    done = b.users == 0
                if done:
                    b.segments, b.n = [], 0
                    self._free.put(b)

    def _padded(self, b: _Block) -> int:
        return -(-b.n // ALIGN) * ALIGN

    def _to_disk(self, b: _Block) -> None:
        view = memoryview(b.buf)[: self._padded(b)]
        done = 0
        while done < len(view):
            k = os.pwrite(self._fd, view[done:], b.base + done)
            if k <= 0:
                raise OSError(errno.EIO, "the disk took no bytes", str(self.path))
            done += k
        view.release()
        if self._verify:
            with self._lock:
                b.users += 1
            self._queues[2].put(b)

    def _hash(self, b: _Block) -> None:
        view = memoryview(b.buf)[: b.n]
        self._sha.update(view)
        view.release()

    def _prove(self, b: _Block) -> None:
        import numpy as np

        assert self._rbuf is not None
        got = memoryview(self._rbuf)[: self._padded(b)]
        done = 0
        while done < len(got):
            k = os.preadv(self._rfd, [got[done:]], b.base + done)
            if k <= 0:
                break
            done += k
        back = np.frombuffer(self._rbuf, dtype=np.uint8, count=b.n)
        mine = np.frombuffer(b.buf, dtype=np.uint8, count=b.n)
        if done < b.n:
            self.mismatch = self.mismatch or f"bytes {b.base + done}.. (not read back)"
        at = 0  # each byte compared once: a copied one with its source, any other with mine
        for start, length, source, proven in [*b.segments, (b.n, 0, b"", None)]:
            if not same(back[at: start], mine[at: start]):
                self.mismatch = self.mismatch or f"bytes {b.base + at}..{b.base + start}"
            if not same(back[start: start + length], np.frombuffer(source, dtype=np.uint8)):
                self.mismatch = self.mismatch or f"bytes {b.base + start}.. (a copied range)"
            if proven is not None:
                proven()
            at = start + length
        got.release()

    # -- the writing thread -------------------------------------------------------------
    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def _room(self) -> memoryview:
        """The free part of the current block (a new block when it is full)."""
        if self._cur.n == self._block:
            self._ship()
            self._cur = self._free.get()
            self._check()
        return memoryview(self._cur.buf)[self._cur.n:]

    def _ship(self) -> None:
        """The current block to the disk and the hash (the last one padded with zeros to the
        disk's block size: ftruncate cuts them off)."""
        b = self._cur
        b.base = self.size - b.n
        pad = memoryview(b.buf)[b.n: self._padded(b)]
        pad[:] = bytes(len(pad))
        pad.release()
        b.users = 2
        self._queues[0].put(b)
        self._queues[1].put(b)
        self._check()

    def write(self, data: Any, *, fingerprint: bool = False,
              hashed: Callable[[], None] | None = None) -> None:
        """Append ``data`` (staged: ``hashed`` runs at once, the buffer is free again); it
        is proven against the staged bytes."""
        mv = memoryview(data).cast("B")
        while len(mv):
            room = self._room()
            k = min(len(room), len(mv))
            room[:k] = mv[:k]
            room.release()
            self._cur.n += k
            self.size += k
            mv = mv[k:]
        if hashed is not None:
            hashed()

    def copy_from(self, src_fd: int, offset: int, view: memoryview,
                  hashed: Callable[[], None] | None = None) -> None:
        """Append ``len(view)`` bytes that lie at ``offset`` in ``src_fd``, read into the
        staged block (``pread``: no page faults); proven against ``view`` (a map of the same
        bytes) once read back, after which ``hashed`` runs."""
        n, done = len(view), 0
        while done < n:
            room = self._room()
            want = min(len(room), n - done)
            k = os.preadv(src_fd, [room[:want]], offset + done)
            room.release()
            if k <= 0:
                raise OSError(errno.EIO, "source ended early (truncated while reading?)")
            b = self._cur
            last = done + k == n
            if self._verify:  # for the read-back's comparison
                b.segments.append((b.n, k, view[done: done + k], hashed if last else None))
            b.n += k
            self.size += k
            done += k
        if hashed is not None and (not self._verify or n == 0):
            hashed()

    def start_sync(self) -> None:
        """Write the last block, set the file's true size, and begin fsync on a thread."""
        if self._closed:
            return
        self._closed = True
        if self._cur.n:
            self._ship()
        self._drain(0)  # every block on the disk: the file may be read (parsed) now
        os.ftruncate(self._fd, self.size)
        self._synced = threading.Thread(target=os.fsync, args=(self._fd,), daemon=True)
        self._synced.start()

    def _drain(self, i: int) -> None:
        self._queues[i].put(None)
        self._threads[i].join()

    def close(self) -> str:
        """Finish: every block written, hashed and proven, fsync'd; the sha256. Raises the
        first write error, or VerificationError when the disk gave other bytes back."""
        try:
            self.start_sync()
            for i in range(1, len(self._threads)):
                self._drain(i)
            if self._synced is not None:
                self._synced.join()
        finally:
            self._close_fds()
        self._check()
        if self.mismatch is not None:
            raise VerificationError(f"the disk gave back other bytes than were written "
                                    f"({self.mismatch})", path=self.path,
                                    hint="check the disk; nothing was kept")
        self.sha256 = self._sha.hexdigest()
        return self.sha256

    def abort(self) -> None:
        self._error = self._error or OSError(errno.ECANCELED, "aborted")
        for i, t in enumerate(self._threads):
            if t.is_alive():
                self._queues[i].put(None)
                t.join()
        if self._synced is not None:
            self._synced.join()
        self._close_fds()

    def _close_fds(self) -> None:
        for fd in (self._fd, self._rfd):
            if fd >= 0:
                os.close(fd)
        self._fd = self._rfd = -1


__all__ = ["ALIGN", "BLOCK", "DirectWriter", "Staging", "block_size", "open_direct"]
