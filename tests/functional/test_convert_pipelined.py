"""A shard written through the page cache is finished (hashed, proven, synced) on a second
thread while the next shard is written (`write_shards` in convert/writer.py); an error in
either stops both and leaves nothing."""

from __future__ import annotations

import errno
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import modelport
from modelport.convert import writer
from modelport.errors import OutputWriteError, VerificationError
from tests.conftest import files_match_report
from tests.functional.test_convert_atomic import _leftovers, _src

SHARD = "600KB"  # 6 tensors of 256 KiB: 3 shards of 2


def _threads() -> set[threading.Thread]:
    return set(threading.enumerate())


def test_a_shards_proof_runs_while_the_next_shard_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, state = _src(tmp_path, n=6, size=256)
    started: list[str] = []
    next_begun = threading.Event()
    overlapped: dict[str, bool] = {}
    real_write, real_prove = writer.write_shard, writer.prove_shard

    def write(path: Path, *a: object, **k: object) -> object:
        if started:
            next_begun.set()
        started.append(path.name)
        return real_write(path, *a, **k)  # type: ignore[arg-type]

    def prove(path: Path, *a: object, **k: object) -> object:
        if not overlapped:  # the first shard's proof waits for the second shard's writing
            overlapped[path.name] = next_begun.wait(timeout=10)
        return real_prove(path, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(writer, "write_shard", write)
    monkeypatch.setattr(writer, "prove_shard", prove)
    rep = modelport.convert(src, tmp_path / "out", max_shard_size=SHARD, progress=False)
    assert len(started) == 3
    assert overlapped == {started[0]: True}, "the first shard was proven before the next began"
    files_match_report(tmp_path / "out", rep.outputs)  # every sha256 is its file's
    got = {k: v for f in sorted((tmp_path / "out").glob("*.safetensors"))
           for k, v in load_file(f).items()}
    assert got.keys() == state.keys() and all(torch.equal(got[k], state[k]) for k in state)


def test_a_failed_proof_while_the_next_shard_is_written_stops_both(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first shard loses a byte once written; its proof runs beside the second shard's
    writing, fails, and the second shard's writer is stopped: nothing is left, no thread runs
    on."""
    src, _ = _src(tmp_path, n=6, size=256)
    real = writer.write_shard
    calls: list[Path] = []

    def write_then_flip(path: Path, *a: object, **k: object) -> object:
        w = real(path, *a, **k)  # type: ignore[arg-type]
        calls.append(path)
        if len(calls) == 1:
            with open(path, "r+b") as f:
                f.seek(-1, 2)
                b = f.read(1)
                f.seek(-1, 2)
                f.write(bytes([b[0] ^ 0xFF]))
        return w

    monkeypatch.setattr(writer, "write_shard", write_then_flip)
    before = _threads()
    with pytest.raises(VerificationError, match="bytes differ from the source"):
        modelport.convert(src, tmp_path / "out", max_shard_size=SHARD, progress=False)
    assert len(calls) == 2  # the failure was found while the second shard was written
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []
    assert _threads() <= before


def test_a_write_error_while_a_shard_is_proven_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, _ = _src(tmp_path, n=6, size=256)
    real = writer.write_shard
    calls: list[Path] = []

    def full_on_second(path: Path, *a: object, **k: object) -> object:
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(writer, "write_shard", full_on_second)
    before = _threads()
    with pytest.raises(OutputWriteError, match="No space left on device"):
        modelport.convert(src, tmp_path / "out", max_shard_size=SHARD, progress=False)
    assert len(calls) == 2
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []
    assert _threads() <= before
