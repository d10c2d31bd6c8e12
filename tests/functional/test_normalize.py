"""normalize: metadata, dtype casts, config and index, nothing else changed."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import modelport
from modelport._io.st_header import read_header
from modelport.errors import CheckpointError, InputError
from tests.conftest import kill_when, real_path, tree_snapshot

ROOT = Path(__file__).resolve().parents[2]


def _meta(p: Path) -> dict[str, str] | None:
    return read_header(p).metadata


def _data(p: Path) -> bytes:
    h = read_header(p)
    return p.read_bytes()[h.data_start:]


def _folder(tmp_path: Path, metadata: dict[str, str] | None = None, n: int = 1) -> Path:
    d = tmp_path / "m"
    d.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(n):
        name = "model.safetensors" if n == 1 else f"model-{i + 1:05d}-of-{n:05d}.safetensors"
        save_file({f"l{i}.w": torch.randn(16, 16, generator=g),
                   f"l{i}.ids": torch.arange(5)}, d / name, metadata=metadata)
    (d / "config.json").write_text(json.dumps({"model_type": "llama", "torch_dtype": "float32"}))
    return d


@pytest.mark.parametrize("metadata", [None, {"format": "np"}, {"format": "flax"},
                                      {"format": "mlx", "author": "x"}, {"other": "kept"}])
def test_metadata_gets_format_pt_and_keeps_other_keys(tmp_path: Path, metadata: dict | None
                                                      ) -> None:
    d = _folder(tmp_path, metadata)
    before = tree_snapshot(d)
    rep = modelport.normalize(d, tmp_path / "out")
    assert tree_snapshot(d) == before
    f = tmp_path / "out" / "model.safetensors"
    want = dict(metadata or {})
    want["format"] = "pt"
    assert _meta(f) == want
    r = rep.files[0]
    assert r.action == "rewrite" and r.data_sha256_before == r.data_sha256_after
    assert _data(f) == _data(d / "model.safetensors")
    assert (tmp_path / "out" / "config.json").read_text() == (d / "config.json").read_text()


def test_numpy_writer_and_loaders(tmp_path: Path) -> None:
    """huggingface_hub's loader refuses a header without a valid format; after: it loads."""
    from huggingface_hub import load_state_dict_from_file
    from safetensors.numpy import save_file as np_save

    d = tmp_path / "m"
    d.mkdir()
    np_save({"w": np.arange(12, dtype=np.float32).reshape(3, 4)}, d / "model.safetensors",
            metadata={"format": "np"})
    with pytest.raises(Exception, match="metadata"):
        load_state_dict_from_file(d / "model.safetensors")
    modelport.normalize(d, in_place=True)
    sd = load_state_dict_from_file(d / "model.safetensors")
    assert torch.equal(sd["w"], torch.arange(12, dtype=torch.float32).reshape(3, 4))


def test_transformers_model_reloads_with_identical_logits(tmp_path: Path) -> None:
    from huggingface_hub import load_torch_model
    from transformers import AutoModelForCausalLM

    from tests.conftest import logits, tiny_model

    model = tiny_model("llama")
    model.save_pretrained(tmp_path / "m")
    f = tmp_path / "m" / "model.safetensors"
    sd = load_file(f)
    save_file(sd, f, metadata={"producer": "a custom exporter"})  # metadata, no format
    fresh = tiny_model("llama", seed=5)
    with pytest.raises(Exception, match="metadata"):
        load_torch_model(fresh, tmp_path / "m")
    rep = modelport.normalize(tmp_path / "m", in_place=True)
    assert rep.changed
    load_torch_model(fresh, tmp_path / "m")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "m").eval()
    assert torch.equal(logits(model, "llama"), logits(reloaded, "llama"))
    assert torch.equal(logits(fresh.eval(), "llama"), logits(model, "llama"))


def test_in_place_paths_padding_and_insert_range(tmp_path: Path) -> None:
    d = _folder(tmp_path, None, n=2)
    # give shard 1 a header with room to spare (trailing spaces are valid padding)
    p1 = d / "model-00001-of-00002.safetensors"
    raw = p1.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    pad = 64 - (n + 64) % 8 + 64
    p1.write_bytes(struct.pack("<Q", n + pad) + raw[8: 8 + n] + b" " * pad + raw[8 + n:])
    data = {p.name: _data(p) for p in d.glob("*.safetensors")}
    rep = modelport.normalize(d, in_place=True)
    actions = {r.path: r.action for r in rep.files}
    assert actions == {"model-00001-of-00002.safetensors": "header-in-padding",
                       "model-00002-of-00002.safetensors": "header-insert-range"}
    for p in d.glob("*.safetensors"):
        assert _meta(p) == {"format": "pt"}
        assert _data(p) == data[p.name]
    assert rep.index == "created"
    index = json.loads((d / "model.safetensors.index.json").read_text())
    assert index["weight_map"] == {"l0.ids": "model-00001-of-00002.safetensors",
                                   "l0.w": "model-00001-of-00002.safetensors",
                                   "l1.ids": "model-00002-of-00002.safetensors",
                                   "l1.w": "model-00002-of-00002.safetensors"}
    assert index["metadata"]["total_size"] == 2 * (16 * 16 * 4 + 5 * 8)
    again = modelport.normalize(d, in_place=True)
    assert not again.changed  # idempotent
    assert {r.action for r in again.files} == {"unchanged"}
    assert not list(d.glob(".*"))  # no journal, no temp file left


def test_in_place_without_insert_range_rewrites(tmp_path: Path) -> None:
    d = _folder(tmp_path)
    rep = modelport.normalize(d, in_place=True, insert_range=False)
    assert rep.files[0].action == "rewrite"
    assert _meta(d / "model.safetensors") == {"format": "pt"}


def test_broken_index_is_rebuilt(tmp_path: Path) -> None:
    d = _folder(tmp_path, {"format": "pt"}, n=2)
    (d / "model.safetensors.index.json").write_text(json.dumps({
        "metadata": {"total_size": 1},
        "weight_map": {"l0.w": "model-00001-of-00002.safetensors",
                       "l1.w": "model-00001-of-00002.safetensors"}}))  # wrong and incomplete
    rep = modelport.normalize(d, tmp_path / "out")
    assert rep.index == "rebuilt" and rep.changed
    index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
    assert sorted(index["weight_map"]) == ["l0.ids", "l0.w", "l1.ids", "l1.w"]
    assert index["weight_map"]["l1.w"] == "model-00002-of-00002.safetensors"


@pytest.mark.parametrize("index", [{"weight_map": []}, [1]])
def test_malformed_index_is_a_clear_error(tmp_path: Path, index: object) -> None:
    d = _folder(tmp_path, {"format": "pt"}, n=2)
    (d / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="index is not valid"):
        modelport.normalize(d, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_index_with_odd_metadata_is_rebuilt(tmp_path: Path) -> None:
    d = _folder(tmp_path, {"format": "pt"}, n=2)
    (d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {},
                                                                "metadata": []}))
    assert modelport.normalize(d, tmp_path / "out").index == "rebuilt"


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    d = _folder(tmp_path)
    before = tree_snapshot(d)
    rep = modelport.normalize(d, dry_run=True, dtype="fp16")
    assert rep.changed and rep.files[0].action == "rewrite"
    assert rep.config_changes == {"torch_dtype": ["float32", "float16"]}
    assert tree_snapshot(d) == before


def test_link_hard_links_unchanged_files(tmp_path: Path) -> None:
    d = _folder(tmp_path, {"format": "pt"})
    (d / "tokenizer.json").write_text("{}")
    modelport.normalize(d, tmp_path / "out", link=True)
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert os.stat(d / name).st_ino == os.stat(tmp_path / "out" / name).st_ino


@pytest.mark.parametrize("src_dtype", [torch.float32, torch.bfloat16])
def test_fp16_cast_counts_planted_overflow_exactly(tmp_path: Path, src_dtype: torch.dtype
                                                   ) -> None:
    d = tmp_path / "m"
    d.mkdir()
    w = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    w[[3, 10, 999]] = torch.tensor([70000.0, -1e6, 65600.0])  # 3 beyond ±65504
    w[[20, 21]] = torch.tensor([1e-9, -3e-10])  # 2 non-zero values that become zero
    w[30] = float("inf")  # not counted: already infinite
    tensors = {"w": w.to(src_dtype), "ids": torch.arange(4), "mask": torch.ones(3) > 0,
               "layer.qweight": torch.zeros(4, dtype=torch.int32),
               "layer.scales": torch.ones(4, dtype=torch.bfloat16),
               "fp8": torch.ones(4).to(torch.float8_e4m3fn)}
    save_file(tensors, d / "model.safetensors", metadata={"format": "pt"})
    (d / "config.json").write_text(json.dumps({"dtype": "float32", "torch_dtype": "float32"}))
    before = tree_snapshot(d)
    with pytest.raises(InputError, match="overflows 1 tensor"):
        modelport.normalize(d, tmp_path / "out", dtype="fp16")
    assert not (tmp_path / "out").exists()
    with pytest.raises(InputError, match="overflows"):
        modelport.normalize(d, in_place=True, dtype="fp16")
    assert tree_snapshot(d) == before
    assert not list(d.glob(".*"))

    rep = modelport.normalize(d, tmp_path / "out", dtype="fp16", on_overflow="clamp")
    (stat,) = rep.files[0].casts
    assert (stat.name, stat.overflow) == ("w", 3)
    assert stat.to_zero == 2  # 1e-9 and -3e-10 are below fp16's smallest subnormal
    assert stat.max_abs == pytest.approx(float(w.to(src_dtype).abs()[torch.isfinite(w)].max()))
    out = load_file(tmp_path / "out" / "model.safetensors")
    assert out["w"].dtype == torch.float16
    assert out["w"][3] == 65504 and out["w"][10] == -65504 and torch.isinf(out["w"][30])
    for k in ("ids", "mask", "layer.qweight", "layer.scales", "fp8"):
        assert out[k].dtype == tensors[k].dtype and torch.equal(
            out[k].view(torch.uint8), tensors[k].view(torch.uint8)), k
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert cfg["dtype"] == cfg["torch_dtype"] == "float16"
    again = modelport.normalize(tmp_path / "out", tmp_path / "out2", dtype="fp16")
    assert not again.changed


@pytest.mark.hostile_class("broken files x verbs")
@pytest.mark.parametrize(("raw", "match"), [
    (b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}' + b"x" * 8, "JSON"),
    (b'{"a": {"dtype": "X9", "shape": [1], "data_offsets": [0, 1]}}', "unknown dtype"),
    (b'{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},'
     b'"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}', "overlap"),
    (b'{"a":{"dtype":"U8","shape":[40],"data_offsets":[0,40]}}', "outside"),
    (None, "limit"),
])
def test_bad_headers_change_nothing(tmp_path: Path, raw: bytes | None, match: str) -> None:
    d = tmp_path / "m"
    d.mkdir()
    p = d / "model.safetensors"
    if raw is None:
        p.write_bytes(b"PK\x03\x04 this is a zip, not safetensors")
    else:
        body = raw if match != "JSON" else raw[:-10]
        p.write_bytes(struct.pack("<Q", len(body)) + body + bytes(8))
    before = tree_snapshot(d)
    with pytest.raises(CheckpointError, match=match):
        modelport.normalize(d, in_place=True)
    assert tree_snapshot(d) == before


@pytest.mark.real
@pytest.mark.parametrize("case", ["astrodata_model", "burn_multi_layer", "pjrt_hello",
                                  "peft_gpt2_lora"])
def test_real_safetensors_files(tmp_path: Path, case: str) -> None:
    src = real_path("st", case)
    d = tmp_path / "m"
    shutil.copytree(src, d)
    f = next(d.glob("*.safetensors"))
    had = (_meta(f) or {}).get("format")
    data = _data(f)
    rep = modelport.normalize(d, in_place=True)
    assert rep.changed == (had != "pt")
    assert _meta(f)["format"] == "pt"  # type: ignore[index]
    assert _data(f) == data
    with safe_open(f, "pt") as fh:
        assert len(list(fh.keys())) == len(read_header(f).tensors)


CRASH_MID_HEADER = """
import os, sys
import modelport._io.st_inplace as m
real = m.pwrite_all
def half_then_die(fd, data, offset):
    real(fd, data[: len(data) // 2], offset)  # half of the new header reaches the file
    os.fsync(fd)
    os._exit(9)  # the process dies mid-header, as a power cut would leave it
m.pwrite_all = half_then_die
import modelport
modelport.normalize(sys.argv[1], in_place=True)
"""


@pytest.mark.parametrize("room", ["padding", "insert-range"])
def test_a_crash_mid_header_is_rolled_back_from_the_journal(tmp_path: Path, room: str) -> None:
    """The process dies with half of a new header written (deterministically, not by a
    timer): the journal is there, and the next run rolls the file back to its old header and
    then finishes; the tensor bytes never change."""
    d = _folder(tmp_path, None)
    p = d / "model.safetensors"
    if room == "padding":  # a header with room to spare: the new one is written in place
        raw = p.read_bytes()
        (n,) = struct.unpack("<Q", raw[:8])
        pad = 64 - (n + 64) % 8 + 64
        p.write_bytes(struct.pack("<Q", n + pad) + raw[8: 8 + n] + b" " * pad + raw[8 + n:])
    before, data = p.read_bytes(), _data(p)
    r = subprocess.run([sys.executable, "-c", CRASH_MID_HEADER, str(d)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 9, r.stderr
    assert [j.name for j in d.glob(".*.modelport-journal")] == [
        ".model.safetensors.modelport-journal"]
    assert p.read_bytes() != before  # the crash did land mid-header
    rep = modelport.normalize(d, in_place=True)
    assert rep.recovered == ["model.safetensors: interrupted header rewrite rolled back"]
    assert _meta(p) == {"format": "pt"} and _data(p) == data
    path = "header-in-padding" if room == "padding" else "header-insert-range"
    assert {f.action for f in rep.files} == {path}
    assert not list(d.glob(".*"))


@pytest.mark.hostile_class("kill -9 and full disk")
@pytest.mark.parametrize("dtype", ["", "bf16", "fp16"])
def test_kill_9_in_place_leaves_old_or_new_and_rerun_completes(tmp_path: Path,
                                                               dtype: str) -> None:
    """Killed when the run is seen part-way (a cast file being written, a header journal, or
    some files changed and some not): every file is its old or its new self, and the rerun
    rolls a journaled header back (``recovered``) and finishes with the right tensors."""
    g = torch.Generator().manual_seed(0)
    base = tmp_path / "base"
    base.mkdir()
    for i in range(6):  # mixed: some headers grow (insert range), the dtype pass rewrites all
        save_file({f"t{i}.{j}": torch.randn(256, 256, generator=g) for j in range(8)},
                  base / f"model-{i + 1:05d}-of-00006.safetensors")
    expected = {p.name: load_file(p) for p in base.glob("*.safetensors")}
    code = ("import sys, modelport; modelport.normalize(sys.argv[1], in_place=True, "
            "dtype=sys.argv[2] or None)")
    landed_runs = 0
    for run in range(6):
        d = tmp_path / f"run{run}"
        shutil.copytree(base, d)

        def part_way(d: Path = d) -> bool:
            if any(d.glob(".*.modelport-journal")) or any(
                    p.stat().st_size > 0 for p in d.glob(".*.modelport-tmp-*")):
                return True
            metas = [_meta(p) for p in d.glob("*.safetensors")]
            return any(metas) and not all(metas)  # some files done, some not
        if not kill_when([sys.executable, "-c", code, str(d), dtype], part_way, cwd=ROOT):
            continue
        landed_runs += 1
        journaled = {p.name for p in d.glob(".*.modelport-journal")}
        for p in d.glob("*.safetensors"):
            if f".{p.name}.modelport-journal" in journaled:
                continue  # mid-header: the next run rolls it back
            got = load_file(p)  # every file is whole: it parses and has every tensor
            assert got.keys() == expected[p.name].keys()
            meta = _meta(p)
            assert meta is None or meta == {"format": "pt"}
            for k, v in got.items():
                ref = expected[p.name][k]
                assert torch.equal(v, ref) or torch.equal(v, ref.to(v.dtype)), (p, k)
        rep = modelport.normalize(d, in_place=True, dtype=dtype or None)
        if journaled:
            assert rep.recovered, "a journaled header was not rolled back"
        for p in d.glob("*.safetensors"):
            assert _meta(p) == {"format": "pt"}
            for k, v in load_file(p).items():
                ref = expected[p.name][k]
                assert torch.equal(v, ref.to(v.dtype) if dtype else ref)
        assert not modelport.normalize(d, in_place=True, dtype=dtype or None).changed
        assert not [p for p in d.iterdir() if p.name.startswith(".")]
        if landed_runs >= 2:
            break
    assert landed_runs >= 1, "no kill landed part-way in 6 runs"


def test_digests_passed_on_are_those_of_the_files_written(tmp_path: Path) -> None:
    """convert records its digests; a cast to a new folder rewrites config.json (its dtype):
    the new folder's digest cache, and so the bundle's manifest, must hold the new bytes'
    digests (prepare --dtype bf16 once packaged the old config.json's)."""
    import hashlib

    import modelport
    from modelport._io import hashcache

    fixture = Path(__file__).resolve().parents[2] / "fixtures" / "tiny-llama-bin"
    modelport.convert(fixture, tmp_path / "st", progress=False)
    assert hashcache.cached(tmp_path / "st", "config.json") is not None
    modelport.normalize(tmp_path / "st", tmp_path / "bf16", dtype="bf16")
    for rel, entry in hashcache.load(tmp_path / "bf16").items():
        data = (tmp_path / "bf16" / rel).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest(), rel
    modelport.prepare(fixture, tmp_path / "bundle", ["watsonx-saas"], dtype="bf16",
                      progress=False)
    assert modelport.verify(tmp_path / "bundle").ok
