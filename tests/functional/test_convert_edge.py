"""Edge cases of convert: sharing, views, dtypes, nesting, legacy files, sharded input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import modelport
from modelport.errors import CheckpointError, InputError, UnsupportedError
from tests.conftest import real_path, save_bin


def _convert(state: object, tmp_path: Path, legacy: bool = False, **kw: object):  # type: ignore[no-untyped-def]
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    torch.save(state, src / "model.pt",
               **({"_use_new_zipfile_serialization": False} if legacy else {}))
    rep = modelport.convert(src / "model.pt", tmp_path / "out", progress=False, **kw)
    files = [tmp_path / "out" / o.path for o in rep.outputs if o.role == "weights"]
    out: dict[str, torch.Tensor] = {}
    for f in files:
        out.update(load_file(f))
    return rep, out


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_tied_weights_written_once_and_recorded(tmp_path: Path, legacy: bool) -> None:
    emb = torch.randn(10, 4)
    rep, out = _convert({"embed.weight": emb, "other": torch.ones(2), "lm_head.weight": emb},
                        tmp_path, legacy)
    assert rep.aliases == {"lm_head.weight": "embed.weight"}
    assert set(out) == {"embed.weight", "other"}
    assert rep.tensor_map["lm_head.weight"] == "alias of embed.weight"
    with safe_open(tmp_path / "out" / "model.safetensors", "pt") as f:
        assert f.metadata()["lm_head.weight"] == "embed.weight"  # safetensors' own convention
    # and safetensors' load_model restores the alias into a module
    m = torch.nn.Module()
    m.embed = torch.nn.Embedding(10, 4)
    m.lm_head = torch.nn.Linear(4, 10, bias=False)
    m.other = torch.nn.Parameter(torch.zeros(2))
    m.lm_head.weight = m.embed.weight
    from safetensors.torch import load_model

    load_model(m, tmp_path / "out" / "model.safetensors")
    assert torch.equal(m.lm_head.weight, emb)


def test_aliases_copy_mode_writes_every_name(tmp_path: Path) -> None:
    emb = torch.randn(10, 4)
    rep, out = _convert({"a": emb, "b": emb}, tmp_path, aliases="copy")
    assert rep.aliases == {}
    assert torch.equal(out["a"], out["b"])


def test_tie_word_embeddings_false_keeps_both_names(tmp_path: Path) -> None:
    emb = torch.randn(10, 4)
    src = tmp_path / "src"
    save_bin({"embed.weight": emb, "lm_head.weight": emb}, src)
    (src / "config.json").write_text(json.dumps({"tie_word_embeddings": False}))
    rep = modelport.convert(src, tmp_path / "out", progress=False)
    assert rep.aliases == {}
    assert rep.warnings
    assert set(load_file(tmp_path / "out" / "model.safetensors")) == {"embed.weight",
                                                                      "lm_head.weight"}


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_overlapping_views_are_separate_copies(tmp_path: Path, legacy: bool) -> None:
    base = torch.arange(100, dtype=torch.float32)
    state = {"full": base, "head": base[:60], "tail": base[40:], "strided": base[::3],
             "grid_t": base.view(10, 10).t()}
    rep, out = _convert(state, tmp_path, legacy)
    assert rep.aliases == {}
    assert sorted(map(sorted, rep.overlapping_views)) == [
        sorted(["full", "head", "tail", "strided", "grid_t"])]
    for k, v in state.items():
        assert torch.equal(out[k], v), k
        assert out[k].is_contiguous()


DTYPES = [torch.bool, torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64,
          torch.uint16, torch.float16, torch.bfloat16, torch.float32, torch.float64,
          torch.float8_e4m3fn, torch.float8_e5m2]


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_dtypes_scalars_and_empty_tensors_bit_exact(tmp_path: Path, legacy: bool) -> None:
    g = torch.Generator().manual_seed(0)
    state = {}
    for d in DTYPES:
        if legacy and d in (torch.uint16, torch.float8_e4m3fn, torch.float8_e5m2):
            continue  # legacy files only know the classic storage types
        x = torch.randn(5, 3, generator=g) * 100
        state[f"t_{d}"] = (x > 0) if d == torch.bool else x.to(d)
    state["scalar"] = torch.tensor(3.5)
    state["scalar_int"] = torch.tensor(7, dtype=torch.int64)
    state["empty"] = torch.zeros(0, 5)
    state["empty_inner"] = torch.zeros(3, 0, dtype=torch.bfloat16)
    state["noncontig"] = torch.randn(6, 4, generator=g).t()
    state["sliced"] = torch.randn(6, 8, generator=g)[:, 1::2]
    _rep, out = _convert(state, tmp_path, legacy)
    assert set(out) == set(state)
    for k, v in state.items():
        assert out[k].dtype == v.dtype, k
        assert out[k].shape == v.shape, k
        assert torch.equal(out[k].view(-1).view(torch.uint8) if v.numel() else out[k],
                           v.contiguous().view(-1).view(torch.uint8) if v.numel() else v), k


def test_complex_dtype_is_refused_at_plan_time(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedError, match="complex64"):
        _convert({"z": torch.zeros(2, dtype=torch.complex64)}, tmp_path)
    assert not (tmp_path / "out").exists()


def test_lightning_style_checkpoint(tmp_path: Path) -> None:
    state = {"model.encoder.weight": torch.randn(4, 4), "model.head.bias": torch.randn(4)}
    ckpt = {
        "epoch": 3, "global_step": 120,
        "state_dict": state,
        "optimizer_states": [{"state": {0: {"exp_avg": torch.randn(4, 4)}}}],
        "lr_schedulers": [], "hyper_parameters": {"lr": 0.1, "layers": [1, 2]},
    }
    rep, out = _convert(ckpt, tmp_path, strip_prefix="model.")
    assert rep.state_dict_key == "state_dict"
    assert set(out) == {"encoder.weight", "head.bias"}
    skipped = {s.name: s.reason for s in rep.skipped_entries}
    assert "1 tensor(s)" in skipped["optimizer_states"]
    assert "epoch" in skipped
    assert torch.equal(out["encoder.weight"], state["model.encoder.weight"])


def test_nested_state_dict_key_and_flattening(tmp_path: Path) -> None:
    ckpt = {"ema": {"net": {"a": torch.ones(2), "b": {"c": torch.zeros(1)}}}, "step": 1}
    rep, out = _convert(ckpt, tmp_path, state_dict_key="ema/net")
    assert set(out) == {"a", "b.c"}
    assert rep.state_dict_key == "ema/net"


def test_missing_state_dict_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no entry 'nope'"):
        _convert({"a": torch.ones(1)}, tmp_path, state_dict_key="nope")


def test_sharded_input_with_other_files(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    state = {f"layer.{i}.weight": torch.randn(64, 64, generator=g) for i in range(8)}
    src = tmp_path / "src"
    save_bin(state, src, shards=3)
    (src / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (src / "tokenizer_config.json").write_text("{}")
    (src / "1_Pooling").mkdir()
    (src / "1_Pooling" / "config.json").write_text("{}")
    torch.save({"x": 1}, src / "training_args.bin")
    rep = modelport.convert(src, tmp_path / "out", max_shard_size=40_000, progress=False)
    names = sorted(o.path for o in rep.outputs)
    assert "1_Pooling/config.json" in names
    assert "tokenizer_config.json" in names
    assert "training_args.bin" not in names
    assert any(s.name == "training_args.bin" for s in rep.skipped_files)
    assert not list((tmp_path / "out").glob("*.bin"))
    assert not (tmp_path / "out" / "pytorch_model.bin.index.json").exists()
    shards = [o for o in rep.outputs if o.role == "weights"]
    assert len(shards) == 4  # 16 KiB tensors, 40 KB shards: two fit, a third would not
    index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
    assert sorted(index["weight_map"]) == sorted(state)
    for name, f in index["weight_map"].items():
        assert torch.equal(load_file(tmp_path / "out" / f)[name], state[name])


def test_index_naming_a_missing_shard(tmp_path: Path) -> None:
    src = tmp_path / "src"
    paths = save_bin({"a": torch.ones(2), "b": torch.ones(2)}, src, shards=2)
    paths[1].unlink()
    with pytest.raises(CheckpointError, match="missing"):
        modelport.convert(src, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("entry", ["../outside.bin", "/etc/passwd", "link.bin"])
def test_index_pointing_outside_the_folder(tmp_path: Path, entry: str) -> None:
    src = tmp_path / "src"
    save_bin({"a": torch.ones(2)}, src)
    torch.save({"b": torch.ones(2)}, tmp_path / "outside.bin")
    (src / "link.bin").symlink_to(tmp_path / "outside.bin")
    (src / "pytorch_model.bin.index.json").write_text(json.dumps(
        {"weight_map": {"a": "pytorch_model.bin", "b": entry}}))
    with pytest.raises(CheckpointError, match="outside the folder"):
        modelport.convert(src, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_safetensors_input_is_resharded_with_format_pt(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    state = {f"w{i}": torch.randn(32, 32, generator=g).to(torch.bfloat16) for i in range(6)}
    src = tmp_path / "src"
    src.mkdir()
    save_file(state, src / "model.safetensors")  # no metadata
    rep = modelport.convert(src, tmp_path / "out", max_shard_size=4096, progress=False)
    assert len([o for o in rep.outputs if o.role == "weights"]) == 3
    assert rep.inputs[0].format == "safetensors"
    index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
    for name, f in index["weight_map"].items():
        with safe_open(tmp_path / "out" / f, "pt") as fh:
            assert fh.metadata()["format"] == "pt"
            assert torch.equal(fh.get_tensor(name), state[name])


def test_hidden_files_and_folders_are_left_out(tmp_path: Path) -> None:
    """.git, .cache and other hidden entries of SRC never reach DST; the visible ones do."""
    src = tmp_path / "src"
    save_bin({"w": torch.arange(6.0)}, src)
    (src / "config.json").write_text(json.dumps({"model_type": "llama"}))
    for hidden in (".git/objects/ab", ".cache/huggingface", ".ipynb_checkpoints"):
        (src / hidden).mkdir(parents=True)
        (src / hidden / "f.json").write_text("{}")
    (src / ".env").write_text("AWS_SECRET_ACCESS_KEY=x\n")
    (src / "notes").mkdir()
    (src / "notes" / ".hidden.txt").write_text("x")
    (src / "notes" / "seen.txt").write_text("x")
    rep = modelport.convert(src, tmp_path / "out", progress=False)
    on_disk = sorted(p.relative_to(tmp_path / "out").as_posix()
                     for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert [p for p in on_disk if not p.startswith(".modelport/")] == [
        "config.json", "model.safetensors", "notes/seen.txt"]
    assert sorted(o.path for o in rep.outputs) == ["config.json", "model.safetensors",
                                                   "notes/seen.txt"]


@pytest.mark.real
def test_real_legacy_checkpoint_matches_torch_load(tmp_path: Path) -> None:
    p = real_path("ckpt", "legacy_lenet_weights", "LeNet_Weights.pt")
    rep = modelport.convert(p, tmp_path / "out", progress=False)
    assert rep.inputs[0].format == "legacy"
    ref = torch.load(p, weights_only=True)  # noqa: TID251 - the reference reader
    out = load_file(tmp_path / "out" / "model.safetensors")
    assert out.keys() == ref.keys()
    assert all(torch.equal(out[k], ref[k]) for k in ref)


@pytest.mark.real
@pytest.mark.parametrize(("rel", "key"), [
    (("ckpt", "lightning_eyetrack", "read_features_last.ckpt"), "state_dict"),
    (("ckpt", "burn_checkpoint_nested", "checkpoint.pt"), "model_state_dict"),
])
def test_real_training_checkpoints(tmp_path: Path, rel: tuple[str, ...], key: str) -> None:
    p = real_path(*rel)
    rep = modelport.convert(p, tmp_path / "out", progress=False)
    assert rep.state_dict_key == key
    ref = torch.load(p, weights_only=True, map_location="cpu")[key]  # noqa: TID251
    out = load_file(tmp_path / "out" / "model.safetensors")
    expected = {k for k, v in ref.items() if isinstance(v, torch.Tensor)}
    written = set(out) | set(rep.aliases)
    assert written == expected
    for k in expected:
        assert torch.equal(out[rep.aliases.get(k, k)], ref[k]), k
