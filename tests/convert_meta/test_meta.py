"""Meta's original layout, built here from a tiny Hugging Face llama by the inverse of the
conversion (1, 2 and 4 ranks, with and without grouped-query attention): convert must give the
original tensors and identical logits; and the real torchtune Meta-layout file converts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import modelport
from modelport.convert.meta_llama import permute_into
from modelport.errors import CheckpointError, InputError
from tests.conftest import files_match_report, real_path
from tests.convert_meta.layouts import to_meta_rows


def _hf(kv: int):  # type: ignore[no-untyped-def]
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=kv,
                      rms_norm_eps=1e-5, tie_word_embeddings=False)
    m = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return m


def _meta(model, folder: Path, ranks: int, llama3_embeddings: bool = False) -> None:  # type: ignore[no-untyped-def]
    """The inverse of the conversion: Meta names, interleaved rotary, split over ranks."""
    c = model.config
    sd = model.state_dict()
    full: dict[str, tuple[torch.Tensor, int | None]] = {
        "tok_embeddings.weight": (sd["model.embed_tokens.weight"], 0 if llama3_embeddings
                                  else 1),
        "norm.weight": (sd["model.norm.weight"], None),
        "output.weight": (sd["lm_head.weight"], 0)}
    for i in range(c.num_hidden_layers):
        p = f"model.layers.{i}."
        full[f"layers.{i}.attention.wq.weight"] = (
            to_meta_rows(sd[p + "self_attn.q_proj.weight"], c.num_attention_heads), 0)
        full[f"layers.{i}.attention.wk.weight"] = (
            to_meta_rows(sd[p + "self_attn.k_proj.weight"], c.num_key_value_heads), 0)
        full[f"layers.{i}.attention.wv.weight"] = (sd[p + "self_attn.v_proj.weight"], 0)
        full[f"layers.{i}.attention.wo.weight"] = (sd[p + "self_attn.o_proj.weight"], 1)
        full[f"layers.{i}.feed_forward.w1.weight"] = (sd[p + "mlp.gate_proj.weight"], 0)
        full[f"layers.{i}.feed_forward.w2.weight"] = (sd[p + "mlp.down_proj.weight"], 1)
        full[f"layers.{i}.feed_forward.w3.weight"] = (sd[p + "mlp.up_proj.weight"], 0)
        full[f"layers.{i}.attention_norm.weight"] = (sd[p + "input_layernorm.weight"], None)
        full[f"layers.{i}.ffn_norm.weight"] = (sd[p + "post_attention_layernorm.weight"], None)
    folder.mkdir()
    for r in range(ranks):
        shard = {k: (v.chunk(ranks, dim=d)[r] if d is not None else v).clone()
                 for k, (v, d) in full.items()}
        shard["rope.freqs"] = torch.ones(8)
        torch.save(shard, folder / f"consolidated.{r:02d}.pth")
    (folder / "params.json").write_text(json.dumps({
        "dim": c.hidden_size, "n_layers": c.num_hidden_layers, "n_heads": c.num_attention_heads,
        "n_kv_heads": c.num_key_value_heads, "vocab_size": c.vocab_size, "multiple_of": 32,
        "norm_eps": c.rms_norm_eps, "rope_theta": 10000.0}))


@pytest.mark.parametrize(("ranks", "kv"), [(1, 4), (2, 2), (2, 4), (4, 4)])
def test_meta_layout_round_trip(tmp_path: Path, ranks: int, kv: int) -> None:
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    model = _hf(kv)
    _meta(model, tmp_path / "meta", ranks)
    rep = modelport.convert(tmp_path / "meta", tmp_path / "hf", progress=False)
    assert any("q/k weights permuted" in w for w in rep.warnings)
    files_match_report(tmp_path / "hf", rep.outputs)
    assert [s.name for s in rep.skipped_entries] == [
        "rope.freqs (a buffer, not a weight: recomputed at load)"]
    ours = load_file(tmp_path / "hf" / "model.safetensors")
    for k, v in model.state_dict().items():
        assert torch.equal(ours[k], v), k
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert cfg["num_key_value_heads"] == kv and cfg["intermediate_size"] == 128
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    ids = torch.randint(0, 256, (1, 12))
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, model(ids).logits)


def test_executorch_buffers_are_left_out(tmp_path: Path) -> None:
    """An executorch-style export keeps a causal mask per layer and the rotary cos/sin tables
    beside the weights: they are left out with a note, and the weights convert exactly."""
    from safetensors.torch import load_file

    model = _hf(4)
    _meta(model, tmp_path / "meta", 1)
    p = tmp_path / "meta" / "consolidated.00.pth"
    sd = torch.load(p, weights_only=True)  # noqa: TID251 - the file this test wrote
    for i in range(model.config.num_hidden_layers):
        sd[f"layers.{i}.attention.mask"] = torch.full((16, 16), float("-inf")).triu(1)
    sd["freqs_cos"], sd["freqs_sin"] = torch.ones(16, 8), torch.zeros(16, 8)
    torch.save(sd, p)
    rep = modelport.convert(tmp_path / "meta", tmp_path / "hf", progress=False)
    left = sorted(s.name.split(" ")[0] for s in rep.skipped_entries)
    assert left == ["freqs_cos", "freqs_sin", "layers.0.attention.mask",
                    "layers.1.attention.mask", "rope.freqs"]
    ours = load_file(tmp_path / "hf" / "model.safetensors")
    assert set(ours) == set(model.state_dict())
    for k, v in model.state_dict().items():
        assert torch.equal(ours[k], v), k


def test_permute_is_inverted() -> None:
    w = torch.randn(32, 16)
    out = torch.empty_like(w)
    permute_into(out.numpy(), to_meta_rows(w, 4).numpy(), 4)
    assert torch.equal(out, w)  # modelport's permute inverts the published layout
    assert not torch.equal(to_meta_rows(w, 4), w)
    with pytest.raises(ValueError, match="C-contiguous"):  # filled only through a copy
        permute_into(torch.empty(32, 32).numpy()[:, :16], to_meta_rows(w, 4).numpy(), 4)


def test_missing_rank_and_unstated_rope_factor(tmp_path: Path) -> None:
    _meta(_hf(4), tmp_path / "m", 2)
    (tmp_path / "m" / "consolidated.01.pth").unlink()
    (tmp_path / "m" / "consolidated.02.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="rank 1 is missing"):
        modelport.convert(tmp_path / "m", tmp_path / "o", progress=False)
    _meta(_hf(4), tmp_path / "s", 1)
    p = json.loads((tmp_path / "s" / "params.json").read_text())
    (tmp_path / "s" / "params.json").write_text(json.dumps(p | {"use_scaled_rope": True}))
    with pytest.raises(InputError, match=r"Llama 3\.2 uses 32"):
        modelport.convert(tmp_path / "s", tmp_path / "o2", progress=False)
    assert not (tmp_path / "o").exists() and not (tmp_path / "o2").exists()
    # the flag the refusal names exists, and only the Meta route takes it
    from click.testing import CliRunner

    from modelport.cli.main import cli

    r = CliRunner().invoke(cli, ["convert", str(tmp_path / "s"), str(tmp_path / "o3"),
                                 "--rope-scaling-factor", "8"])
    assert r.exit_code == 0, r.output
    cfg = json.loads((tmp_path / "o3" / "config.json").read_text())
    assert cfg["rope_scaling"]["factor"] == 8.0 and cfg["rope_scaling"]["rope_type"] == "llama3"
    r = CliRunner().invoke(cli, ["convert", str(tmp_path / "o3"), str(tmp_path / "o4"),
                                 "--rope-scaling-factor", "8"])
    assert r.exit_code == 2 and "--rope-scaling-factor does not apply" in r.stderr, r.output


@pytest.mark.real
def test_real_torchtune_meta_file(tmp_path: Path) -> None:
    import shutil

    src = real_path("ckpt2", "meta_torchtune_tiny_fair")
    d = tmp_path / "meta"
    shutil.copytree(src, d)
    (d / "params.json").write_text(json.dumps({"dim": 32, "n_layers": 2, "n_heads": 4,
                                               "n_kv_heads": 4, "vocab_size": 500,
                                               "norm_eps": 1e-5}))
    modelport.convert(d, tmp_path / "hf", progress=False)
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(tmp_path / "hf")
    assert m.config.vocab_size == 500 and m.config.num_hidden_layers == 2
    assert torch.isfinite(m(torch.arange(10).view(1, 10)).logits).all()
    # every tensor of the file, by the names transformers' convert_llama_weights_to_hf.py maps
    # (its weights are all 0.2, so the values prove names and shapes; the rotary order is
    # proved by the random-weight round trips above)
    from safetensors.torch import load_file

    ours = load_file(tmp_path / "hf" / "model.safetensors")
    orig = torch.load(src / "consolidated.00.pth", weights_only=True,  # noqa: TID251
                      map_location="cpu")  # torch's own reader is the reference
    hf_name = {"tok_embeddings.weight": "model.embed_tokens.weight",
               "norm.weight": "model.norm.weight", "output.weight": "lm_head.weight"}
    per_layer = {"attention.wq": "self_attn.q_proj", "attention.wk": "self_attn.k_proj",
                 "attention.wv": "self_attn.v_proj", "attention.wo": "self_attn.o_proj",
                 "feed_forward.w1": "mlp.gate_proj", "feed_forward.w2": "mlp.down_proj",
                 "feed_forward.w3": "mlp.up_proj", "attention_norm": "input_layernorm",
                 "ffn_norm": "post_attention_layernorm"}
    for k, v in orig.items():
        if k.startswith("layers."):
            _, i, rest = k.split(".", 2)
            mod = rest.rsplit(".", 1)[0]
            name = f"model.layers.{i}.{per_layer[mod]}.weight"
            back = (to_meta_rows(ours[name], 4) if mod in ("attention.wq", "attention.wk")
                    else ours[name])
        else:
            name = hf_name[k]
            back = ours[name]
        assert torch.equal(back, v), k
    assert len(ours) == len(orig) == 21


def test_prepare_takes_a_meta_folder(tmp_path: Path) -> None:
    _meta(_hf(2), tmp_path / "meta", 2)
    rep = modelport.prepare(tmp_path / "meta", tmp_path / "bundle", ["watsonx-saas"])
    assert next(s for s in rep.steps if s.verb == "convert").status == "done"
    cfg = json.loads((tmp_path / "bundle" / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"]


def test_mistral_original_layout(tmp_path: Path) -> None:
    """consolidated.safetensors + params.json with head_dim and hidden_dim (Mistral 7B style)."""
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM, MistralConfig, MistralForCausalLM

    torch.manual_seed(0)
    c = MistralConfig(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=24,
                      tie_word_embeddings=False, sliding_window=None)
    model = MistralForCausalLM(c).eval()
    llama_like = tmp_path / "tmp"
    _meta(model, llama_like, 1)
    d = tmp_path / "mistral"
    d.mkdir()
    sd = torch.load(llama_like / "consolidated.00.pth", weights_only=True)  # noqa: TID251
    sd.pop("rope.freqs")
    save_file(sd, d / "consolidated.safetensors")
    (d / "params.json").write_text(json.dumps({
        "dim": 64, "n_layers": 2, "head_dim": 24, "hidden_dim": 96, "n_heads": 4,
        "n_kv_heads": 2, "norm_eps": c.rms_norm_eps, "vocab_size": 256,
        "rope_theta": 10000.0}))
    modelport.convert(d, tmp_path / "hf", progress=False)
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert cfg["architectures"] == ["MistralForCausalLM"] and cfg["head_dim"] == 24
    ours = load_file(tmp_path / "hf" / "model.safetensors")
    for k, v in model.state_dict().items():
        assert torch.equal(ours[k], v), k
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    ids = torch.randint(0, 256, (1, 12))
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, model(ids).logits)
    # every verb knows the folder: inspect says what convert makes of it, and prepare
    # converts it (consolidated.safetensors is not "safetensors already")
    info = modelport.inspect(d)
    assert any("Meta's or Mistral's original layout" in p.message for p in info.problems)
    rep = modelport.prepare(d, tmp_path / "bundle", ["watsonx-saas"], force=True)
    assert next(s for s in rep.steps if s.verb == "convert").status == "done"
    cfg = json.loads((tmp_path / "bundle" / "config.json").read_text())
    assert cfg["architectures"] == ["MistralForCausalLM"]
    ours = load_file(tmp_path / "bundle" / "model.safetensors")
    assert all(torch.equal(ours[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("layout", ["per-expert", "stacked"])
def test_mixtral_original_layouts(tmp_path: Path, layout: str) -> None:
    """Mixtral as mistral-inference writes it (consolidated.safetensors, one tensor per expert,
    the router as feed_forward.gate) and as the first 8x7B release did (experts stacked on
    rows in block_sparse_moe.w1/w2/w3, w2 stacked transposed; the layout transformers'
    convert_mixtral_weights_to_hf.py reads): identical tensors and logits."""
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM, MixtralConfig, MixtralForCausalLM

    torch.manual_seed(0)
    c = MixtralConfig(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, num_local_experts=4,
                      num_experts_per_tok=2, tie_word_embeddings=False, sliding_window=None,
                      rope_theta=1e6)
    model = MixtralForCausalLM(c).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    model.save_pretrained(tmp_path / "ref")  # the names transformers writes on disk
    ref = load_file(tmp_path / "ref" / "model.safetensors")
    sd: dict[str, torch.Tensor] = {
        "tok_embeddings.weight": ref["model.embed_tokens.weight"],
        "norm.weight": ref["model.norm.weight"], "output.weight": ref["lm_head.weight"]}
    for i in range(2):
        p, q = f"model.layers.{i}.", f"layers.{i}."
        sd[q + "attention.wq.weight"] = to_meta_rows(ref[p + "self_attn.q_proj.weight"], 4)
        sd[q + "attention.wk.weight"] = to_meta_rows(ref[p + "self_attn.k_proj.weight"], 2)
        sd[q + "attention.wv.weight"] = ref[p + "self_attn.v_proj.weight"]
        sd[q + "attention.wo.weight"] = ref[p + "self_attn.o_proj.weight"]
        sd[q + "attention_norm.weight"] = ref[p + "input_layernorm.weight"]
        sd[q + "ffn_norm.weight"] = ref[p + "post_attention_layernorm.weight"]
        ex = [{w: ref[f"{p}block_sparse_moe.experts.{e}.{w}.weight"] for w in ("w1", "w2", "w3")}
              for e in range(4)]
        if layout == "per-expert":
            sd[q + "feed_forward.gate.weight"] = ref[p + "block_sparse_moe.gate.weight"]
            for e in range(4):
                for w in ("w1", "w2", "w3"):
                    sd[f"{q}feed_forward.experts.{e}.{w}.weight"] = ex[e][w]
        else:
            sd[q + "block_sparse_moe.gate.weight"] = ref[p + "block_sparse_moe.gate.weight"]
            sd[q + "block_sparse_moe.w1"] = torch.cat([x["w1"] for x in ex])
            sd[q + "block_sparse_moe.w2"] = torch.cat([x["w2"].T for x in ex])
            sd[q + "block_sparse_moe.w3"] = torch.cat([x["w3"] for x in ex])
    d = tmp_path / "orig"
    d.mkdir()
    sd = {k: v.contiguous().clone() for k, v in sd.items()}
    if layout == "per-expert":
        save_file(sd, d / "consolidated.safetensors")
    else:
        torch.save(sd, d / "consolidated.00.pth")
    (d / "params.json").write_text(json.dumps({
        "dim": 64, "n_layers": 2, "head_dim": 16, "hidden_dim": 96, "n_heads": 4,
        "n_kv_heads": 2, "norm_eps": c.rms_norm_eps, "vocab_size": 256, "rope_theta": 1e6,
        "moe": {"num_experts": 4, "num_experts_per_tok": 2}}))
    rep = modelport.convert(d, tmp_path / "hf", progress=False)
    assert "Mixtral: 24 expert weights" in rep.warnings[0]
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert cfg["architectures"] == ["MixtralForCausalLM"] and cfg["num_local_experts"] == 4
    assert cfg["num_experts_per_tok"] == 2 and cfg["intermediate_size"] == 96
    ours = load_file(tmp_path / "hf" / "model.safetensors")
    assert set(ours) == set(ref)
    for k, v in ref.items():
        assert torch.equal(ours[k], v), k
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    ids = torch.randint(0, 256, (1, 12))
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, model(ids).logits)
