"""Outputs are complete or absent: failures, kills and full disks leave nothing that looks done."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import modelport
from modelport.convert import writer
from modelport.errors import InputError, OutputExistsError, VerificationError
from tests.conftest import files_match_report, kill_when, save_bin, tree_snapshot

ROOT = Path(__file__).resolve().parents[2]


def _src(tmp_path: Path, n: int = 4, size: int = 64) -> tuple[Path, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    state = {f"w{i}": torch.randn(size, size, generator=g) for i in range(n)}
    save_bin(state, tmp_path / "src")
    return tmp_path / "src", state


def _leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if ".modelport-" in p.name]


def _flip_after_write(monkeypatch: pytest.MonkeyPatch, in_tensor: str | None = None
                      ) -> list[Path]:
    """Every shard gets one byte flipped on disk once written (a disk that lost a write): the
    last byte of the file, or of the first tensor whose name ends with ``in_tensor`` (read
    from the safetensors header as the format defines it). The proof must see it."""
    real = writer.write_shard
    flipped: list[Path] = []

    def write_then_flip(path: Path, *a: object, **k: object) -> object:
        w = real(path, *a, **k)  # type: ignore[arg-type]
        with open(path, "r+b") as f:
            at = os.path.getsize(path) - 1
            if in_tensor is not None:
                n = int.from_bytes(f.read(8), "little")
                header = json.loads(f.read(n))
                name = next(k for k in header if k.endswith(in_tensor))
                at = 8 + n + header[name]["data_offsets"][1] - 1
            f.seek(at)
            b = f.read(1)
            f.seek(at)
            f.write(bytes([b[0] ^ 0xFF]))
        flipped.append(path)
        return w

    monkeypatch.setattr(writer, "write_shard", write_then_flip)
    return flipped


@pytest.mark.parametrize("fmt", ["pickle (bytes copied)", "llama2.c (bytes computed)"])
def test_a_byte_lost_on_disk_fails_the_proof(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             fmt: str) -> None:
    """Both kinds of tensor the one writer takes are proven from what is on disk: a copied
    tensor by comparison with its source, a computed one (llama2.c's q_proj, permuted) by
    reading its range again against the fingerprint taken while writing it."""
    flip_in = None
    if fmt.startswith("pickle"):
        src, _ = _src(tmp_path)
        what = "bytes differ from the source"
    else:
        from tests.convert_meta.test_llama2c import _llama2c, _tiny

        src = tmp_path / "ckpt.pt"
        _llama2c(_tiny(), src, compiled=True)
        what = "bytes on disk differ from the bytes written"
        flip_in = "self_attn.q_proj.weight"
    # the page-cache writer (the one around it proves as it writes: test_convert_direct.py)
    monkeypatch.setattr(writer, "DIRECT_SHARE", 2.0)
    flipped = _flip_after_write(monkeypatch, flip_in)
    with pytest.raises(VerificationError, match=what):
        modelport.convert(src, tmp_path / "out", progress=False)
    assert flipped, "the fault was never injected"
    assert not (tmp_path / "out").exists()
    assert _leftovers(tmp_path) == []


def test_a_rerun_keeps_a_shard_only_when_every_byte_is_its_sources(tmp_path: Path) -> None:
    """A shard already in place (a distributed rerun finds it) is kept only when every byte
    equals the source's; one byte changed under the same header and it is not."""
    src, _ = _src(tmp_path)
    modelport.convert(src, tmp_path / "out", progress=False)
    plan = modelport.plan_convert(src, tmp_path / "dry", modelport.ConvertOptions())
    feed = plan.feed()
    try:
        (shard,) = plan.shards
        path = tmp_path / "out" / shard.filename
        assert writer.holds(path, shard, feed, plan.aliases)
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF  # the last tensor's last byte: the header is untouched
        path.write_bytes(bytes(data))
        assert not writer.holds(path, shard, feed, plan.aliases)
    finally:
        feed.close()
        plan.close()


def test_existing_destination_is_refused_then_replaced(tmp_path: Path) -> None:
    src, state = _src(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError):
        modelport.convert(src, tmp_path / "out", progress=False)
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
    modelport.convert(src, tmp_path / "out", progress=False, overwrite=True)
    assert not (tmp_path / "out" / "keep.txt").exists()
    assert torch.equal(load_file(tmp_path / "out" / "model.safetensors")["w1"], state["w1"])
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("dst", ["src/out", "src"])
def test_destination_inside_or_equal_to_source(tmp_path: Path, dst: str) -> None:
    src, _ = _src(tmp_path)
    before = tree_snapshot(src)
    with pytest.raises(InputError, match="output"):
        modelport.convert(src, tmp_path / dst, progress=False, overwrite=True)
    assert tree_snapshot(src) == before


@pytest.mark.hostile_class("kill -9 and full disk")
def test_kill_9_mid_write_leaves_nothing_complete_and_rerun_succeeds(tmp_path: Path) -> None:
    # ~128 MiB in 32 shards: slow enough to be caught mid-write
    src, state = _src(tmp_path, n=32, size=1024)
    out = tmp_path / "out"
    code = ("import modelport, sys; modelport.convert(sys.argv[1], sys.argv[2], "
            "max_shard_size='4MiB', progress=False)")

    def mid_write() -> bool:  # the temp folder holds some shards, not all, and no index
        for t in _leftovers(tmp_path):
            names = [p.name for p in (tmp_path / t).iterdir()]
            if any(n.endswith(".safetensors") for n in names) and \
                    "model.safetensors.index.json" not in names:
                return True
        return False

    landed = any(kill_when([sys.executable, "-c", code, str(src), str(out)], mid_write,
                           cwd=ROOT) for _ in range(3))
    assert landed, "the kill never landed mid-write"
    assert not out.exists()  # nothing complete-looking
    assert _leftovers(tmp_path), "a killed run leaves only its hidden temp folder"
    rep = modelport.convert(src, out, max_shard_size="4MiB", progress=False, overwrite=True)
    files_match_report(out, rep.outputs)
    assert _leftovers(tmp_path) == []
    for o in rep.outputs:
        if o.role == "weights":
            for k, v in load_file(out / o.path).items():
                assert torch.equal(v, state[k])


@pytest.mark.hostile_class("kill -9 and full disk")
def test_full_disk_gives_a_clear_error_and_no_output(tmp_path: Path) -> None:
    src, _ = _src(tmp_path, n=4, size=256)  # 1 MiB of weights
    before = tree_snapshot(src)
    code = (
        "import resource, signal, sys, modelport\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))\n"
        "from modelport.cli.main import main\n"
        "sys.argv = ['modelport', 'convert', sys.argv[1], sys.argv[2]]\n"
        "main()\n"
    )
    r = subprocess.run([sys.executable, "-c", code, str(src), str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 2, r.stderr
    assert "cannot write output" in r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2
    assert not (tmp_path / "out").exists()
    assert _leftovers(tmp_path) == []
    assert tree_snapshot(src) == before


def test_output_files_are_fsynced_and_hashes_match(tmp_path: Path) -> None:
    import hashlib

    src, _ = _src(tmp_path)
    rep = modelport.convert(src, tmp_path / "out", progress=False)
    for o in rep.outputs:
        data = (tmp_path / "out" / o.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == o.sha256
        assert len(data) == o.size
    assert os.listdir(tmp_path / "out")
