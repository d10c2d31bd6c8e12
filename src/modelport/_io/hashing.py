"""Write a file and hash it in the same pass, the hash on a second core."""

from __future__ import annotations

import errno
import hashlib
import mmap
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

CHUNK_BYTES = 32 * 2**20


class HashingWriter:
    """Writes buffers to a new file while a thread computes their sha256.

    hashlib releases the GIL on large buffers, so hashing runs beside the writes. At most
    ``depth`` chunks are queued; each is a view of the caller's buffer, not a copy, so the
    caller must keep buffers unchanged until :meth:`close` returns.
    """

    def __init__(self, path: Path, depth: int = 4) -> None:
        self.path = path
        self.size = 0
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._sha = hashlib.sha256()
        # views of mapped files cost no memory: they queue without bound, so the kernel copy
        # runs ahead of the hash; copies made by write() are bounded by ``depth`` chunks
        self._q: queue.Queue[tuple[memoryview, bool, Callable[[], None] | None, Any] | None] = \
            queue.Queue()
        self._held = threading.Semaphore(depth)
        self._thread = threading.Thread(target=self._hash, daemon=True)
        self._thread.start()
        self._syncer: threading.Thread | None = None
        self.sha256 = ""
        # (offset, length, xxh3_128 of the bytes written there): ranges written with
        # ``fingerprint=True``, fingerprinted on the hash thread (see :meth:`write`)
        self.fingerprints: list[tuple[int, int, Any]] = []

    def _hash(self) -> None:
        while (item := self._q.get()) is not None:
            chunk, owned, hashed, fp = item
            self._sha.update(chunk)
            if fp is not None:
                fp.update(chunk)
            if owned:
                self._held.release()
            if hashed is not None:  # the source's pages are hashed: the caller may drop them
                try:
                    hashed()
                except Exception:  # noqa: S110 - dropping pages only saves memory; the hash
                    pass  # must go on (an error here would stop it short, silently)

    _copy_range_ok = True  # flips off on a kernel or file system without copy_file_range

    def copy_from(self, src_fd: int, offset: int, view: memoryview,
                  hashed: Callable[[], None] | None = None) -> None:
        """Append ``len(view)`` bytes that lie at ``offset`` in ``src_fd``.

        The kernel copies them (``copy_file_range``: no page faults, no user-space copy) while
        the hash thread reads ``view``, a mapping of the same bytes; ``hashed`` runs on that
        thread once the last of them is hashed (the caller unmaps their pages, so a mapped
        source never stays resident). Falls back to write().
        """
        n = len(view)
        done = 0
        if HashingWriter._copy_range_ok:
            try:
                while done < n:
                    k = os.copy_file_range(src_fd, self._fd, n - done, offset + done)
                    if k == 0:
                        raise OSError(errno.EIO, "source ended early (truncated while reading?)")
                    done += k
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    raise
                HashingWriter._copy_range_ok = False
        if done < n:
            self._write_all(view[done:])
        last = max(0, (n - 1) // CHUNK_BYTES * CHUNK_BYTES)
        for i in range(0, n, CHUNK_BYTES):
            self._q.put((view[i: i + CHUNK_BYTES], False, hashed if i == last else None, None))
        if n == 0 and hashed is not None:
            hashed()
        self.size += n

    def _write_all(self, mv: memoryview) -> None:
        for i in range(0, len(mv), CHUNK_BYTES):
            chunk = mv[i: i + CHUNK_BYTES]
            done = 0
            while done < len(chunk):
                done += os.write(self._fd, chunk[done:])

    def write(self, data: bytes | memoryview, *, fingerprint: bool = False,
              hashed: Callable[[], None] | None = None) -> None:
        """Append ``data``. With ``fingerprint``, the hash thread also takes the bytes' xxh3
        (about 20× faster than sha256) into :attr:`fingerprints`: a caller that cannot make
        the bytes again proves the file later by re-reading only that range. ``hashed`` runs
        on the hash thread once the last of them is hashed (the caller may then reuse
        ``data``'s buffer)."""
        mv = memoryview(data).cast("B")
        fp = None
        if fingerprint:
            import xxhash

            fp = xxhash.xxh3_128()
            self.fingerprints.append((self.size, len(mv), fp))
        last = max(0, (len(mv) - 1) // CHUNK_BYTES * CHUNK_BYTES)
        for i in range(0, len(mv), CHUNK_BYTES):
            chunk = mv[i: i + CHUNK_BYTES]
            done = 0
            while done < len(chunk):
                done += os.write(self._fd, chunk[done:])
            self._held.acquire()
            self._q.put((chunk, True, hashed if i == last else None, fp))
            self.size += len(chunk)
        if not len(mv) and hashed is not None:
            self._q.put((mv, False, hashed, None))  # in order: after what is queued before

    def start_sync(self) -> None:
        """Begin fsync on a thread (it releases the GIL), so the caller can verify meanwhile."""
        if self._syncer is None:
            self._syncer = threading.Thread(target=os.fsync, args=(self._fd,), daemon=True)
            self._syncer.start()

    def close(self, *, fsync: bool = True) -> str:
        """fsync and close (while the hash thread catches up), then return the sha256."""
        self._q.put(None)
        try:
            if self._syncer is not None:
                self._syncer.join()
            elif fsync:
                os.fsync(self._fd)
        finally:
            os.close(self._fd)
            self._thread.join()
        self.sha256 = self._sha.hexdigest()
        return self.sha256

    def abort(self) -> None:
        self._q.put(None)
        self._thread.join()
        if self._syncer is not None:
            self._syncer.join()
        os.close(self._fd)

    def __enter__(self) -> HashingWriter:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if et is None:
            if not self.sha256:
                self.close()
        else:
            self.abort()


def copy_hashed(src: Path, dst: Path) -> tuple[int, str]:
    """Copy a file into a new file, hashing it on the way; returns (size, sha256)."""
    with open(src, "rb") as f, HashingWriter(dst) as w:
        while buf := f.read(CHUNK_BYTES):
            w.write(buf)
        w.close()
        return w.size, w.sha256


def fingerprint_range(fd: int, offset: int, length: int) -> str:
    """xxh3_128 of ``length`` bytes at ``offset`` of the open file ``fd``, read through a map."""
    import xxhash

    h = xxhash.xxh3_128()
    if length:
        lo = offset // mmap.ALLOCATIONGRANULARITY * mmap.ALLOCATIONGRANULARITY
        with mmap.mmap(fd, offset + length - lo, access=mmap.ACCESS_READ, offset=lo) as m:
            view = memoryview(m)
            h.update(view[offset - lo:])
            view.release()
    return h.hexdigest()


def sha256_file(path: Path | BinaryIO, start: int = 0) -> str:
    """sha256 of a file (a path, or a file already open) from byte ``start`` to its end,
    through a map (no copies; hashlib releases the GIL, so several files hash on several
    cores)."""
    h = hashlib.sha256()
    with open(path, "rb") if isinstance(path, (str, os.PathLike)) else path as f:
        if os.fstat(f.fileno()).st_size > start:
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                view = memoryview(m)
                h.update(view[start:])
                view.release()
    return h.hexdigest()


__all__ = ["HashingWriter", "copy_hashed", "fingerprint_range", "sha256_file"]
