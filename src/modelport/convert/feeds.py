"""Where the writer gets each planned tensor's bytes: the :class:`Feed` protocol, and the
feed of the computed routes (:class:`Computed`)."""

from __future__ import annotations

import mmap
import os
from pathlib import Path
from typing import Any, Protocol

from modelport._io.pages import drop_pages
from modelport.convert.opened import items
from modelport.errors import CheckpointError, ModelportError

Region = tuple[int, int, Any]  # (fd, offset, a view of the same bytes)


class Feed(Protocol):
    """Where the writer gets a planned tensor's bytes (``t`` has name, dtype, shape, nbytes)."""

    def regions(self, t: Any) -> list[Region] | None:
        """The source ranges whose concatenation is ``t``'s bytes in C order, if there are
        such: each the open file, the offset and a view (a map) of those bytes."""

    def tensor_bytes(self, t: Any, out: Any = None) -> Any:
        """``t``'s bytes in C order (a buffer); a computed tensor is computed by this call,
        into ``out`` (a reused uint8 array of at least ``t.nbytes``) when the feed can."""

    def computed(self, t: Any) -> bool:
        """Whether ``t``'s bytes are made when asked for (proven by hash, not by re-reading)."""

    def release(self, t: Any) -> None:
        """Unmap the pages of ``t``'s source bytes once read (a mapped source never stays
        resident); a no-op for a feed that maps nothing."""

    def close(self) -> None:
        """Give back what the feed holds open."""


def tensor_bytes(t: Any) -> Any:
    """A torch tensor's bytes as a numpy view (no copy when it is contiguous)."""
    import torch

    return t.contiguous().reshape(-1).view(torch.uint8).numpy()


class Computed:
    """The feed of a computed route (:class:`~modelport.convert.opened.Produced` tensors): a
    tensor whose ``regions()`` names source byte ranges is copied from them; any other is
    made when the writer reaches it — by its ``fill`` into the writer's reused buffer, or as
    its ``value()`` — and dropped once written."""

    def __init__(self) -> None:
        self._files: dict[Path, tuple[int, mmap.mmap | None]] = {}
        self._spans: dict[int, list[tuple[Path, int, int]] | None] = {}

    def _open(self, path: Path) -> tuple[int, mmap.mmap | None]:
        if path not in self._files:
            fd = os.open(path, os.O_RDONLY)
            size = os.fstat(fd).st_size
            m = mmap.mmap(fd, 0, access=mmap.ACCESS_READ) if size else None
            self._files[path] = (fd, m)
        return self._files[path]

    def _spans_of(self, t: Any) -> list[tuple[Path, int, int]] | None:
        key = id(t)  # asked once per tensor: the answer may read the source's small records
        if key not in self._spans:
            spans = t.regions() if getattr(t, "regions", None) is not None else None
            if spans is not None and sum(n for _, _, n in spans) != t.nbytes:
                raise ModelportError(f"{t.name}: its source ranges hold "
                                     f"{sum(n for _, _, n in spans)} of {t.nbytes} bytes",
                                     hint="this is a modelport bug; please report it")
            self._spans[key] = spans
        return self._spans[key]

    def regions(self, t: Any) -> list[Region] | None:
        spans = self._spans_of(t)
        if spans is None:
            return None
        out: list[Region] = []
        for path, offset, length in spans:
            fd, m = self._open(path)
            view = memoryview(m)[offset: offset + length] if m is not None else memoryview(b"")
            if len(view) != length:
                raise CheckpointError(f"{path.name} ends before a tensor it should hold "
                                      f"({t.name})", path=path, hint="the file is truncated")
            out.append((fd, offset, view))
        return out

    def tensor_bytes(self, t: Any, out: Any = None) -> Any:
        if getattr(t, "fill", None) is None:
            return tensor_bytes(t.value())
        if out is None:
            import numpy as np

            out = np.empty(t.nbytes, dtype=np.uint8)
        t.fill(items(out[: t.nbytes], t.dtype, t.shape))
        return out[: t.nbytes]

    def computed(self, t: Any) -> bool:
        return self._spans_of(t) is None

    def release(self, t: Any) -> None:  # runs on the hash thread: lookups only
        for path, offset, length in self._spans.get(id(t)) or []:
            m = self._files[path][1]
            if m is not None:
                drop_pages(m, offset, length)

    def close(self) -> None:
        self._spans.clear()
        for fd, m in self._files.values():
            if m is not None:
                try:
                    m.close()
                except BufferError:  # a view is still alive somewhere; the GC will unmap it
                    pass
            os.close(fd)
        self._files.clear()


__all__ = ["Computed", "Feed", "Region", "tensor_bytes"]
