"""A shard followed by another leaves the page cache once it is proven and on the disk
(`write_shards` in convert/writer.py): a model larger than memory does not push every other
cached file out, and the next shard's writes take the pages just freed. The last shard stays
cached for whatever reads the model next."""

from __future__ import annotations

import ctypes
import mmap
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import modelport
from modelport.convert import writer
from tests.conftest import files_match_report
from tests.functional.test_convert_atomic import _src


def _cached_pages(path: Path) -> int:
    """How many of ``path``'s pages the page cache holds (``mincore`` over a map of it, which
    faults nothing in)."""
    size = path.stat().st_size
    libc = ctypes.CDLL(None, use_errno=True)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        addr = np.frombuffer(m, dtype=np.uint8).ctypes.data
        vec = (ctypes.c_ubyte * (-(-size // mmap.PAGESIZE)))()
        assert libc.mincore(ctypes.c_void_p(addr), ctypes.c_size_t(size), vec) == 0, \
            os.strerror(ctypes.get_errno())
        return sum(v & 1 for v in vec)


@pytest.fixture
def droppable(tmp_path: Path) -> None:
    """This file system gives a synced file's pages back when asked (tmpfs keeps them: its
    pages are the file)."""
    probe = tmp_path / "probe"
    with open(probe, "wb") as f:
        f.write(os.urandom(4 * 2**20))
        f.flush()
        os.fsync(f.fileno())
    assert _cached_pages(probe) > 0, "a file just written should be cached"
    fd = os.open(probe, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    if _cached_pages(probe) > 16:
        pytest.skip("this file system keeps a synced file's pages in memory")
    probe.unlink()


def test_every_shard_but_the_last_leaves_the_page_cache_once_proven(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, droppable: None) -> None:
    src, state = _src(tmp_path, n=6, size=256)
    proven: list[str] = []
    dropped: list[tuple[str, bool]] = []
    real_prove, real_drop = writer.prove_shard, writer.drop_cached

    def prove(path: Path, *a: object, **k: object) -> object:
        rec = real_prove(path, *a, **k)  # type: ignore[arg-type]
        proven.append(path.name)
        return rec

    def drop(path: Path) -> None:
        dropped.append((path.name, path.name in proven))  # proven (and synced) first
        real_drop(path)

    monkeypatch.setattr(writer, "prove_shard", prove)
    monkeypatch.setattr(writer, "drop_cached", drop)
    rep = modelport.convert(src, tmp_path / "out", max_shard_size="600KB", progress=False)
    shards = sorted((tmp_path / "out").glob("*.safetensors"))
    assert len(shards) == 3 and dropped == [(p.name, True) for p in shards[:2]]
    cached = {p.name: _cached_pages(p) for p in shards[:2]}
    assert all(n <= 16 for n in cached.values()), cached  # of ~150 pages each
    files_match_report(tmp_path / "out", rep.outputs)  # read again from the disk: the same
    got = {k: v for p in shards for k, v in load_file(p).items()}
    assert got.keys() == state.keys() and all(torch.equal(got[k], state[k]) for k in state)
