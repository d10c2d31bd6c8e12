"""Pages of a read-only file mapping are given back once used; any other memory is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modelport._io.pages import drop_view


def _rss_file_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssFile:"))


def test_mapped_pages_stop_counting_and_the_bytes_stay(tmp_path: Path) -> None:
    data = np.random.default_rng(0).integers(0, 255, 64 * 2**20, dtype=np.uint8)
    data.tofile(tmp_path / "x")
    m = np.memmap(tmp_path / "x", mode="r")
    half = m[: 32 * 2**20]
    before = _rss_file_kib()
    total = int(half.sum())  # faults 32 MiB of file pages in
    read = _rss_file_kib()
    assert read - before > 30 * 1024
    assert drop_view(half, m)
    assert read - _rss_file_kib() > 30 * 1024  # as the kernel counts it
    assert int(half.sum()) == total and np.array_equal(m, data)  # read again from the cache


def test_memory_that_is_not_a_read_only_map_is_refused(tmp_path: Path) -> None:
    data = np.arange(2**20, dtype=np.uint8)
    data.tofile(tmp_path / "x")
    m = np.memmap(tmp_path / "x", mode="r")
    copy = np.array(m[:4096])
    assert not drop_view(copy, m) and np.array_equal(copy, data[:4096])  # a copy: kept
    w = np.memmap(tmp_path / "x", mode="r+")
    assert not drop_view(w[:4096], w)  # writable: its changes could be lost
    assert not drop_view(m[:4096], copy)  # not inside the map it names
    assert np.array_equal(np.fromfile(tmp_path / "x", dtype=np.uint8), data)
