"""Give back the resident pages of a read-only file mapping once its bytes are used, and
the cached pages of a file once it is on the disk."""

from __future__ import annotations

import ctypes
import mmap
import os
from pathlib import Path
from typing import Any

_MADV_DONTNEED = 4  # Linux; the pages stay in the page cache and fault back in when read


def drop_pages(m: mmap.mmap, offset: int, length: int) -> None:
    """Unmap from this process the pages of ``[offset, offset + length)`` of ``m``, a
    read-only map of a file (its contents cannot be lost: they fault back in from the page
    cache when read again); they stop counting as resident, as YARN and ``top`` count."""
    lo = offset // mmap.PAGESIZE * mmap.PAGESIZE
    hi = min(len(m), offset + length)
    if hi > lo:
        m.madvise(mmap.MADV_DONTNEED, lo, hi - lo)


def drop_view(view: Any, mapping: Any) -> bool:
    """Unmap from this process the pages under the numpy array ``view``, which must lie
    inside ``mapping`` (a numpy memmap of a file opened read-only): its pages stop counting as
    resident (as YARN and ``top`` count memory). Refuses (False) for any other memory, whose
    contents ``MADV_DONTNEED`` would lose."""
    import numpy as np

    if not isinstance(mapping, np.memmap) or getattr(mapping, "mode", "") != "r":
        return False
    lo, hi = mapping.ctypes.data, mapping.ctypes.data + mapping.nbytes
    a = np.asarray(view)
    start, end = a.ctypes.data, a.ctypes.data + a.nbytes
    if a.nbytes == 0 or start < lo or end > hi:
        return False
    page = mmap.PAGESIZE
    start = max(lo, start // page * page)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start),
                            _MADV_DONTNEED) == 0
    except (OSError, AttributeError):  # no libc madvise here: the pages just stay
        return False


def drop_cached(path: Path) -> None:
    """Ask the kernel to drop ``path``'s pages from the page cache (``POSIX_FADV_DONTNEED``):
    for a file already synced to the disk, whose bytes a later read fetches again. Its pages
    return to the free list at once, to be taken by the next file written, instead of
    staying until the kernel evicts them (evicting, for a model larger than memory, every
    other file cached). Does nothing where the call or the file is missing."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # gone already: an s3:// destination removes each shard once
        return  # uploaded (convert/remote_convert.py), which frees its pages
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except (AttributeError, OSError):  # no fadvise here: the pages stay until evicted
        pass
    finally:
        os.close(fd)


__all__ = ["drop_cached", "drop_pages", "drop_view"]
