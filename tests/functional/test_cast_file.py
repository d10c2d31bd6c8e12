"""write_cast_file: the bytes torch would write, exact counts, proofs that catch a bad write."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from modelport._io.st_header import read_header
from modelport.cast import casting as cast
from modelport.errors import InputError, VerificationError

ALL_BF16 = torch.from_numpy(np.arange(65536, dtype=np.int32).astype(np.int16)).view(
    torch.bfloat16)


def _source(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    tensors = {
        "every_bf16": torch.cat([ALL_BF16, torch.randn(2 * 4096 + 3, generator=g).to(
            torch.bfloat16)]),
        "w32": torch.randn(3001, generator=g) * 3e4,
        "w16": torch.randn(77, generator=g).half(),
        "small_bf16": torch.randn(5, 3, generator=g).to(torch.bfloat16),
        "ids": torch.arange(13),
        "mask": torch.ones(7) > 0,
        "empty": torch.zeros(0, 4),
        "scalar": torch.tensor(3.5),
    }
    src = tmp_path / "in.safetensors"
    save_file(tensors, src, metadata={"format": "pt"})
    return src, tensors


CASTS = {"every_bf16": "F16", "w32": "F16", "w16": "F32", "small_bf16": "F32",
         "empty": "F16", "scalar": "BF16"}
TORCH = {"F16": torch.float16, "F32": torch.float32, "BF16": torch.bfloat16}


def _write(tmp_path: Path, name: str, **kw: object) -> tuple[Path, int, str, list]:
    src, _ = _source(tmp_path) if not (tmp_path / "in.safetensors").exists() else (
        tmp_path / "in.safetensors", None)
    dst = tmp_path / name
    size, sha, stats = cast.write_cast_file(src, read_header(src), dst, {"format": "pt"},
                                            CASTS, False, **kw)  # type: ignore[arg-type]
    return dst, size, sha, stats


@pytest.mark.parametrize("piece", [1000, cast.ELEMENTS_PER_PIECE])
@pytest.mark.parametrize("verify", [True, False])
def test_bytes_equal_torch_casts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 piece: int, verify: bool) -> None:
    monkeypatch.setattr(cast, "ELEMENTS_PER_PIECE", piece)  # many pieces, ring reused
    _, tensors = _source(tmp_path)
    dst, size, sha, stats = _write(tmp_path, "out.safetensors", verify=verify)
    assert size == dst.stat().st_size
    assert sha == hashlib.sha256(dst.read_bytes()).hexdigest()
    out = load_file(dst)
    for name, t in tensors.items():
        want = t.to(TORCH[CASTS[name]]) if name in CASTS else t
        assert out[name].dtype == want.dtype and out[name].shape == want.shape, name
        assert torch.equal(out[name].reshape(-1).view(torch.uint8),
                           want.reshape(-1).view(torch.uint8)), name
    cast.verify_cast_file(dst, read_header(tmp_path / "in.safetensors"), CASTS, sync=True)
    by_name = {s.name: s for s in stats}
    assert set(by_name) == set(CASTS)
    x = tensors["every_bf16"].double()
    finite = torch.isfinite(x)
    s = by_name["every_bf16"]
    assert s.overflow == int((finite & (x.abs() > 65504)).sum())
    assert s.to_zero == int(((x != 0) & (x.half() == 0)).sum())
    assert s.max_abs == float(x[finite].abs().max())
    w = tensors["w32"]
    assert by_name["w32"].overflow == int((w.abs() > 65504).sum()) > 0


def test_a_write_that_lands_wrong_is_caught_and_nothing_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = cast.pwrite_all
    calls = []

    def bad_disk(fd: int, view: memoryview, offset: int) -> None:
        calls.append(offset)
        if len(calls) == 3:  # the third piece lands with one bit flipped
            data = bytearray(view)
            data[len(data) // 2] ^= 0x10
            view = memoryview(data)
        real(fd, view, offset)

    monkeypatch.setattr(cast, "pwrite_all", bad_disk)
    monkeypatch.setattr(cast, "ELEMENTS_PER_PIECE", 1000)
    with pytest.raises(VerificationError, match="on disk differ"):
        _write(tmp_path, "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


def test_a_failing_cast_stops_the_worker_and_removes_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> object:
        def run(*_: object) -> None:
            raise MemoryError("no room for the cast")
        return run

    before = threading.active_count()
    monkeypatch.setattr(cast, "_caster", broken)
    with pytest.raises(MemoryError, match="no room"):
        _write(tmp_path, "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()
    assert threading.active_count() == before


def test_an_existing_output_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "out.safetensors").write_bytes(b"keep me")
    with pytest.raises(FileExistsError):
        _write(tmp_path, "out.safetensors")
    assert (tmp_path / "out.safetensors").read_bytes() == b"keep me"


def test_a_source_that_changed_since_its_header_was_read_is_refused(tmp_path: Path) -> None:
    src, _ = _source(tmp_path)
    h = read_header(src)
    with open(src, "ab") as f:
        f.write(b"\0" * 64)
    with pytest.raises(InputError, match="changed since its header"):
        cast.write_cast_file(src, h, tmp_path / "out.safetensors", {"format": "pt"}, CASTS,
                             False)
    assert not (tmp_path / "out.safetensors").exists()


def test_a_source_cut_short_during_the_cast_is_an_error_not_a_crash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Read with pread, a source truncated mid-cast gives a short read and a clear error
    (through a map it would kill the process with SIGBUS)."""
    src, _ = _source(tmp_path)
    h = read_header(src)
    real = cast._caster

    def truncating(*args: object) -> object:
        run = real(*args)  # type: ignore[arg-type]

        def cut(*a: object) -> None:
            os.truncate(src, h.data_start + 16)
            run(*a)  # type: ignore[operator]
        return cut

    monkeypatch.setattr(cast, "_caster", truncating)
    monkeypatch.setattr(cast, "ELEMENTS_PER_PIECE", 1000)
    with pytest.raises(InputError, match="ended early"):
        cast.write_cast_file(src, h, tmp_path / "out.safetensors", {"format": "pt"}, CASTS,
                             False)
    assert not (tmp_path / "out.safetensors").exists()
