"""Write a file and hash it in the same pass, the hash on a second core."""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from pathlib import Path
from types import TracebackType

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
        self._q: queue.Queue[memoryview | None] = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._hash, daemon=True)
        self._thread.start()
        self.sha256 = ""

    def _hash(self) -> None:
        while (chunk := self._q.get()) is not None:
            self._sha.update(chunk)

    def write(self, data: bytes | memoryview) -> None:
        mv = memoryview(data).cast("B")
        for i in range(0, len(mv), CHUNK_BYTES):
            chunk = mv[i: i + CHUNK_BYTES]
            done = 0
            while done < len(chunk):
                done += os.write(self._fd, chunk[done:])
            self._q.put(chunk)
            self.size += len(chunk)

    def close(self, *, fsync: bool = True) -> str:
        """Finish hashing, fsync and close; returns the sha256 hex digest."""
        self._q.put(None)
        self._thread.join()
        try:
            if fsync:
                os.fsync(self._fd)
        finally:
            os.close(self._fd)
        self.sha256 = self._sha.hexdigest()
        return self.sha256

    def abort(self) -> None:
        self._q.put(None)
        self._thread.join()
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


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while buf := f.read(CHUNK_BYTES):
            h.update(buf)
    return h.hexdigest()


__all__ = ["HashingWriter", "copy_hashed", "sha256_file"]
