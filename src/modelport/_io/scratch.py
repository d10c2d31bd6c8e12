"""Reused buffers for bytes made in memory (computed tensors) on their way to a file."""

from __future__ import annotations

import threading
from typing import Any


class Scratch:
    """Two buffers that computed tensors are made in, in turn, reused: memory this process
    has just used is filled many times faster than fresh memory on a host that takes freed
    pages back (measured: docs/benchmarks.md), and resident memory stays flat. A buffer is
    handed out again once its writer is done with it: :meth:`give_back` runs on the hash
    thread once it has read the bytes, or at once where they were copied out (staged)."""

    def __init__(self) -> None:
        self._bufs: list[Any] = [None, None]
        self._free = [threading.Event(), threading.Event()]
        for e in self._free:
            e.set()
        self._turn = 0

    def take(self, nbytes: int) -> tuple[int, Any]:
        """(slot, a uint8 array of ``nbytes``), waiting until that slot has been hashed."""
        import numpy as np

        i, self._turn = self._turn, self._turn ^ 1
        self._free[i].wait()
        self._free[i].clear()
        if self._bufs[i] is None or self._bufs[i].nbytes < nbytes:
            self._bufs[i] = None  # the smaller one goes before the larger is made
            self._bufs[i] = np.empty(nbytes, dtype=np.uint8)
        return i, self._bufs[i][:nbytes]

    def give_back(self, i: int) -> None:
        self._free[i].set()


__all__ = ["Scratch"]
