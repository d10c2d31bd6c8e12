"""The writer that goes around the page cache (``O_DIRECT``; `_io/direct.py`), for shards that
are mostly computed: the same bytes as the page-cache writer, and a proof that reads the disk
back — a byte the disk loses, a copied byte that is not its source's, or a write the disk
refuses fails the convert and leaves nothing behind."""

from __future__ import annotations

import errno
import hashlib
import json
import mmap
import os
from pathlib import Path

import pytest

import modelport
from modelport._io import direct
from modelport.convert import writer
from modelport.errors import OutputWriteError, VerificationError
from tests.conftest import files_match_report
from tests.convert_meta.test_meta import _hf, _meta


def _leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if ".modelport-" in p.name or p.name == "out"]


@pytest.fixture
def meta(tmp_path: Path) -> Path:
    _meta(_hf(2), tmp_path / "meta", 2)  # q/k permuted, wo/w2/embeddings split on columns
    return tmp_path / "meta"


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The shards the writer around the page cache will write, as it opens each."""
    made: list[Path] = []
    real = direct.DirectWriter.__init__

    def init(self: direct.DirectWriter, path: Path, *a: object, **k: object) -> None:
        made.append(path)
        real(self, path, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(direct.DirectWriter, "__init__", init)
    return made


@pytest.fixture
def direct_used(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every shard goes around the page cache (any computed byte is enough), in blocks of
    32 KiB so that a tiny model spans many; the shards written so."""
    monkeypatch.setattr(writer, "DIRECT_SHARE", 0.0)
    monkeypatch.setattr(direct, "BLOCK", 32 * 1024)
    return _spy(monkeypatch)


def test_direct_and_page_cache_writers_write_the_same_bytes(
        tmp_path: Path, meta: Path, direct_used: list[Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    rep = modelport.convert(meta, tmp_path / "direct", progress=False)
    assert len(direct_used) == 1
    files_match_report(tmp_path / "direct", rep.outputs)  # the sha256s are of the files
    monkeypatch.setattr(writer, "DIRECT_SHARE", 2.0)  # never: the page cache
    modelport.convert(meta, tmp_path / "cached", progress=False)
    assert len(direct_used) == 1
    a = (tmp_path / "direct" / "model.safetensors").read_bytes()
    b = (tmp_path / "cached" / "model.safetensors").read_bytes()
    assert len(a) > 8 * direct.BLOCK and len(a) % direct.ALIGN  # many blocks, a ragged end
    assert a == b


def _offset_in(path: Path, name: str) -> int:
    """The file offset of the middle of tensor ``name`` (from the safetensors header)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        begin, end = json.loads(f.read(n))[name]["data_offsets"]
    return 8 + n + (begin + end) // 2


@pytest.mark.parametrize("tensor", ["model.layers.1.self_attn.q_proj.weight",  # computed
                                    "model.layers.1.self_attn.v_proj.weight"])  # copied
def test_a_byte_the_disk_loses_fails_the_proof(tmp_path: Path, meta: Path,
                                                direct_used: list[Path],
                                                monkeypatch: pytest.MonkeyPatch,
                                                tensor: str) -> None:
    modelport.convert(meta, tmp_path / "first", progress=False)
    at = _offset_in(tmp_path / "first" / "model.safetensors", tensor)
    real = os.pwrite
    lost: list[int] = []

    def lossy(fd: int, data: object, offset: int) -> int:
        n = len(memoryview(data))  # type: ignore[arg-type]
        if not offset <= at < offset + n:
            return real(fd, data, offset)  # type: ignore[arg-type]
        bad = mmap.mmap(-1, n)  # page-aligned, as O_DIRECT needs
        bad[:] = bytes(memoryview(data))  # type: ignore[arg-type]
        bad[at - offset] ^= 0xFF  # what reaches the disk is not what was handed to it
        lost.append(at)
        return real(fd, bad, offset)

    monkeypatch.setattr(os, "pwrite", lossy)
    with pytest.raises(VerificationError, match="the disk gave back other bytes"):
        modelport.convert(meta, tmp_path / "out", progress=False)
    assert lost == [at]
    assert len(direct_used) == 2 and _leftovers(tmp_path) == []


def test_a_copied_byte_that_is_not_its_sources_fails_the_proof(
        tmp_path: Path, meta: Path, direct_used: list[Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = direct.DirectWriter.copy_from
    changed: list[int] = []

    def copy_then_change(self: direct.DirectWriter, *a: object, **k: object) -> None:
        real(self, *a, **k)  # type: ignore[arg-type]
        if not changed and self._cur.n:  # the byte just staged: disk and stage agree
            self._cur.buf[self._cur.n - 1] ^= 0xFF
            changed.append(self.size)

    monkeypatch.setattr(direct.DirectWriter, "copy_from", copy_then_change)
    with pytest.raises(VerificationError, match="a copied range"):
        modelport.convert(meta, tmp_path / "out", progress=False)
    assert changed and _leftovers(tmp_path) == []


def test_a_write_the_disk_refuses_fails_the_convert(tmp_path: Path, meta: Path,
                                                    direct_used: list[Path],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.pwrite

    def full(fd: int, data: object, offset: int) -> int:
        if offset >= 2 * direct.BLOCK:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data, offset)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(OutputWriteError, match="No space left"):
        modelport.convert(meta, tmp_path / "out", progress=False)
    assert direct_used and _leftovers(tmp_path) == []


def test_without_o_direct_the_page_cache_writer_takes_the_shard(
        tmp_path: Path, meta: Path, direct_used: list[Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.open

    def no_direct(path: object, flags: int, *a: object) -> int:
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")  # as tmpfs before Linux 6.6
        return real(path, flags, *a)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", no_direct)
    rep = modelport.convert(meta, tmp_path / "out", progress=False)
    assert direct_used == []
    files_match_report(tmp_path / "out", rep.outputs)


@pytest.mark.parametrize("verify", [True, False])
def test_the_direct_writer_keeps_every_byte_and_its_sha256(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, verify: bool) -> None:
    monkeypatch.setattr(direct, "BLOCK", 8192)
    src = tmp_path / "src"
    src.write_bytes(os.urandom(50_000))
    parts = [os.urandom(5), os.urandom(20_000), b"", os.urandom(3)]
    path = tmp_path / "out"
    fd = direct.open_direct(path)
    assert fd is not None
    w = direct.DirectWriter(path, fd, verify)
    handed: list[int] = []
    with open(src, "rb") as f:
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        w.write(parts[0], hashed=lambda: handed.append(0))
        w.copy_from(f.fileno(), 7, memoryview(m)[7: 40_007], hashed=lambda: handed.append(1))
        w.write(parts[1])
        w.write(parts[2], hashed=lambda: handed.append(2))
        w.write(parts[3])
        sha = w.close()
        m.close()
    want = parts[0] + src.read_bytes()[7: 40_007] + parts[1] + parts[3]
    assert path.read_bytes() == want  # the exact size: the padding of the last block cut off
    assert sha == hashlib.sha256(want).hexdigest()
    assert sorted(handed) == [0, 1, 2]  # the copied range's pages handed back, proven or not


def test_a_mostly_computed_shard_goes_around_the_page_cache_and_a_copied_one_does_not(
        tmp_path: Path, meta: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = _spy(monkeypatch)
    modelport.convert(meta, tmp_path / "meta-out", progress=False)  # half its bytes computed
    assert len(made) == 1
    modelport.convert(tmp_path / "meta-out", tmp_path / "again", progress=False)  # copied
    assert len(made) == 1
    assert (tmp_path / "meta-out" / "model.safetensors").read_bytes() == \
        (tmp_path / "again" / "model.safetensors").read_bytes()


@pytest.mark.hostile_class("kill -9 and full disk")
def test_a_full_disk_around_the_page_cache_is_a_clear_error_and_no_output(
        tmp_path: Path, meta: Path) -> None:
    import subprocess
    import sys

    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))\n"
        "from modelport._io import direct\n"
        "from modelport.cli.main import main\n"
        "made = []\n"
        "real = direct.DirectWriter.__init__\n"
        "direct.DirectWriter.__init__ = lambda s, *a, **k: made.append(1) or real(s, *a, **k)\n"
        "sys.argv = ['modelport', 'convert', sys.argv[1], sys.argv[2]]\n"
        "try:\n"
        "    main()\n"
        "finally:\n"
        "    print('direct writers:', len(made))\n"
    )
    r = subprocess.run([sys.executable, "-c", code, str(meta), str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=300)
    assert "direct writers: 1" in r.stdout  # the shard (half computed) went around the cache
    assert r.returncode == 2, r.stderr
    assert "cannot write output" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2
    assert _leftovers(tmp_path) == []
