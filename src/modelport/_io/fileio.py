"""Positional writes that finish: ``os.pwrite`` may write fewer bytes than asked."""

from __future__ import annotations

import os


def pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    """Write all of ``data`` at ``offset`` of ``fd``."""
    view, done = memoryview(data).cast("B"), 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)


__all__ = ["pwrite_all"]
