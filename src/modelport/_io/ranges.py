"""Byte ranges of a file: merged, subtracted, the gaps between them, and blocks given back
(the sparse mirrors of object storage keep only what they fetched)."""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Iterable
from typing import Any

_FALLOC_FL_KEEP_SIZE, _FALLOC_FL_PUNCH_HOLE = 0x01, 0x02


def merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, non-empty, non-overlapping ranges covering the same bytes."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(r for r in ranges if r[1] > r[0]):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def missing(present: list[tuple[int, int]], start: int, end: int) -> list[tuple[int, int]]:
    """The parts of [start, end) that ``present`` does not cover."""
    gaps, pos = [], start
    for a, b in merge(present):
        if b <= pos or a >= end:
            continue
        if a > pos:
            gaps.append((pos, a))
        pos = max(pos, b)
    if pos < end:
        gaps.append((pos, end))
    return gaps


def subtract(present: list[tuple[int, int]], a: int, b: int) -> list[tuple[int, int]]:
    """``present`` without [a, b)."""
    out = []
    for x, y in merge(present):
        if y <= a or x >= b:
            out.append((x, y))
            continue
        if x < a:
            out.append((x, a))
        if y > b:
            out.append((b, y))
    return out


_libc: Any = None


def punch(fd: int, offset: int, length: int) -> None:
    """Give the blocks of [offset, offset + length) back (the file keeps its size)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        _libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    if _libc.fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, length):
        # no hole punching on this file system: overwrite is pointless, keep the bytes
        return


__all__ = ["merge", "missing", "punch", "subtract"]
