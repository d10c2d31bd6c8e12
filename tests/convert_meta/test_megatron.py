"""Megatron-LM checkpoints (``--ckpt-format torch``) on 1, 2 and 4 tensor-parallel ranks, GPT-2
and Llama style, megatron.core and legacy names: built here from tiny transformers models by the
inverse of the published layout (fused QKV per query group, SwiGLU's fc1 as gate then up per
rank, row and column splits), converted, and judged by the original model's tensors and logits.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import modelport
from modelport.errors import CheckpointError, UnsupportedError


def _llama():  # type: ignore[no-untyped-def]
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=8, num_key_value_heads=4, vocab_size=128,
                      max_position_embeddings=64, tie_word_embeddings=False, rope_theta=500.0)
    return _perturbed(LlamaForCausalLM(cfg))


def _gpt2():  # type: ignore[no-untyped-def]
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(n_embd=64, n_head=8, n_layer=2, vocab_size=128, n_positions=32,
                     n_inner=128, activation_function="gelu_new")
    return _perturbed(GPT2LMHeadModel(cfg))


def _perturbed(m):  # type: ignore[no-untyped-def]
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return m.eval()


def _rows(t: torch.Tensor, tp: int, r: int, dim: int = 0) -> torch.Tensor:
    return t.chunk(tp, dim=dim)[r].clone()


def _llama_rank(m, tp: int, r: int) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    c, sd = m.config, m.state_dict()
    hd = c.hidden_size // c.num_attention_heads
    per = c.num_attention_heads // c.num_key_value_heads
    out = {"embedding.word_embeddings.weight": _rows(sd["model.embed_tokens.weight"], tp, r),
           "decoder.final_layernorm.weight": sd["model.norm.weight"].clone(),
           "output_layer.weight": _rows(sd["lm_head.weight"], tp, r)}
    for i in range(c.num_hidden_layers):
        h, d = f"model.layers.{i}.", f"decoder.layers.{i}."
        q = sd[h + "self_attn.q_proj.weight"].reshape(c.num_key_value_heads, per * hd, -1)
        k = sd[h + "self_attn.k_proj.weight"].reshape(c.num_key_value_heads, hd, -1)
        v = sd[h + "self_attn.v_proj.weight"].reshape(c.num_key_value_heads, hd, -1)
        fused = torch.cat([q, k, v], dim=1)  # per query group: its queries, a key, a value
        out[d + "self_attention.linear_qkv.weight"] = _rows(fused, tp, r).reshape(
            -1, c.hidden_size)
        out[d + "self_attention.linear_qkv.layer_norm_weight"] = \
            sd[h + "input_layernorm.weight"].clone()
        out[d + "self_attention.linear_proj.weight"] = _rows(
            sd[h + "self_attn.o_proj.weight"], tp, r, 1)
        out[d + "mlp.linear_fc1.layer_norm_weight"] = \
            sd[h + "post_attention_layernorm.weight"].clone()
        out[d + "mlp.linear_fc1.weight"] = torch.cat(
            [_rows(sd[h + "mlp.gate_proj.weight"], tp, r),
             _rows(sd[h + "mlp.up_proj.weight"], tp, r)])
        out[d + "mlp.linear_fc2.weight"] = _rows(sd[h + "mlp.down_proj.weight"], tp, r, 1)
        out[d + "self_attention.core_attention._extra_state"] = io.BytesIO(b"te")  # type: ignore[assignment]
    return out


def _gpt2_rank(m, tp: int, r: int, legacy: bool) -> dict:  # type: ignore[no-untyped-def,type-arg]
    c, sd = m.config, m.state_dict()
    hd = c.n_embd // c.n_head

    def heads(w: torch.Tensor) -> torch.Tensor:  # [q all; k all; v all] -> per head q, k, v
        return w.reshape(3, c.n_head, hd, *w.shape[1:]).transpose(0, 1).reshape(w.shape)

    layers = {}
    for i in range(c.n_layer):
        h = f"transformer.h.{i}."
        qkv_w, qkv_b = heads(sd[h + "attn.c_attn.weight"].T), heads(sd[h + "attn.c_attn.bias"])
        names = (("self_attention.query_key_value", "self_attention.dense",
                  "post_attention_layernorm", "mlp.dense_h_to_4h", "mlp.dense_4h_to_h")
                 if legacy else ("self_attention.linear_qkv", "self_attention.linear_proj",
                                 "pre_mlp_layernorm", "mlp.linear_fc1", "mlp.linear_fc2"))
        qkv, proj, ln2, fc1, fc2 = (f"layers.{i}.{n}" for n in names)
        layers.update({
            f"layers.{i}.input_layernorm.weight": sd[h + "ln_1.weight"].clone(),
            f"layers.{i}.input_layernorm.bias": sd[h + "ln_1.bias"].clone(),
            qkv + ".weight": _rows(qkv_w, tp, r), qkv + ".bias": _rows(qkv_b, tp, r),
            proj + ".weight": _rows(sd[h + "attn.c_proj.weight"].T, tp, r, 1),
            proj + ".bias": sd[h + "attn.c_proj.bias"].clone(),
            ln2 + ".weight": sd[h + "ln_2.weight"].clone(),
            ln2 + ".bias": sd[h + "ln_2.bias"].clone(),
            fc1 + ".weight": _rows(sd[h + "mlp.c_fc.weight"].T, tp, r),
            fc1 + ".bias": _rows(sd[h + "mlp.c_fc.bias"], tp, r),
            fc2 + ".weight": _rows(sd[h + "mlp.c_proj.weight"].T, tp, r, 1),
            fc2 + ".bias": sd[h + "mlp.c_proj.bias"].clone()})
    wte = _rows(sd["transformer.wte.weight"], tp, r)
    wpe = sd["transformer.wpe.weight"].clone()
    if legacy:
        enc = {**layers, "final_layernorm.weight": sd["transformer.ln_f.weight"].clone(),
               "final_layernorm.bias": sd["transformer.ln_f.bias"].clone()}
        return {"language_model": {"embedding": {"word_embeddings": {"weight": wte},
                                                 "position_embeddings": {"weight": wpe}},
                                   "encoder": enc}}
    return {"embedding.word_embeddings.weight": wte, "embedding.position_embeddings.weight": wpe,
            "decoder.final_layernorm.weight": sd["transformer.ln_f.weight"].clone(),
            "decoder.final_layernorm.bias": sd["transformer.ln_f.bias"].clone(),
            **{f"decoder.{k}": v for k, v in layers.items()}}


def _args(m, tp: int) -> argparse.Namespace:  # type: ignore[no-untyped-def]
    c = m.config
    if c.model_type == "llama":
        return argparse.Namespace(
            num_layers=c.num_hidden_layers, hidden_size=c.hidden_size,
            num_attention_heads=c.num_attention_heads, ffn_hidden_size=c.intermediate_size,
            group_query_attention=True, num_query_groups=c.num_key_value_heads,
            kv_channels=None, max_position_embeddings=c.max_position_embeddings,
            normalization="RMSNorm", swiglu=True, position_embedding_type="rope",
            rotary_base=500, add_bias_linear=False, norm_epsilon=c.rms_norm_eps,
            untie_embeddings_and_output_weights=True, tensor_model_parallel_size=tp,
            pipeline_model_parallel_size=1, padded_vocab_size=c.vocab_size,
            params_dtype=torch.float32)
    return argparse.Namespace(
        num_layers=c.n_layer, hidden_size=c.n_embd, num_attention_heads=c.n_head,
        ffn_hidden_size=c.n_inner, max_position_embeddings=c.n_positions,
        normalization="LayerNorm", swiglu=False, position_embedding_type="learned_absolute",
        add_bias_linear=True, layernorm_epsilon=c.layer_norm_epsilon, openai_gelu=True,
        bias_gelu_fusion=False, untie_embeddings_and_output_weights=False,
        tensor_model_parallel_size=tp, padded_vocab_size=c.vocab_size)


def write_megatron(m, run: Path, tp: int, legacy: bool = False) -> Path:  # type: ignore[no-untyped-def]
    """A training run's checkpoint folder: the tracker file and iter_0000010/mp_rank_XX/."""
    it = run / "iter_0000010"
    for r in range(tp):
        model = _llama_rank(m, tp, r) if m.config.model_type == "llama" else \
            _gpt2_rank(m, tp, r, legacy)
        (it / f"mp_rank_{r:02d}").mkdir(parents=True)
        torch.save({"args": _args(m, tp), "checkpoint_version": 3.0, "iteration": 10,
                    "model": model, "optimizer": {"state": {0: {"exp_avg": torch.ones(3)}}},
                    "rng_state": [{"random_rng_state": (3, (1, 2), None),
                                   "np_rng_state": np.random.get_state(),
                                   "torch_rng_state": torch.get_rng_state()}]},
                   it / f"mp_rank_{r:02d}" / "model_optim_rng.pt")
    (run / "latest_checkpointed_iteration.txt").write_text("10")
    return run


def _judge(m, out: Path) -> None:  # type: ignore[no-untyped-def]
    from transformers import AutoModelForCausalLM

    ours: dict[str, torch.Tensor] = {}
    for p in sorted(out.glob("*.safetensors")):
        ours.update(load_file(p))
    want = {k: v for k, v in m.state_dict().items()
            if not (m.config.tie_word_embeddings and k == "lm_head.weight")}
    assert ours.keys() == want.keys()
    assert all(torch.equal(ours[k], want[k]) for k in want)
    back = AutoModelForCausalLM.from_pretrained(out).eval()
    ids = torch.randint(0, 128, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(back(ids).logits, m(ids).logits)


@pytest.mark.parametrize("tp", [1, 2, 4])
@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_megatron_checkpoint_converts_to_the_model_it_was_built_from(
        tmp_path: Path, family: str, tp: int) -> None:
    m = _llama() if family == "llama" else _gpt2()
    run = write_megatron(m, tmp_path / "run", tp)
    rep = modelport.convert(run, tmp_path / "out", progress=False, max_shard_size="100KB")
    _judge(m, tmp_path / "out")
    assert len(rep.inputs) == tp and rep.inputs[0].format == "megatron"
    assert any(f"{tp} tensor-parallel rank(s)" in w for w in rep.warnings)
    plan = modelport.plan_convert(run, tmp_path / "dry", modelport.ConvertOptions(
        max_shard_size="100KB"))
    feed = plan.feed()
    computed = {t.name.split(".")[-2] for s in plan.shards for t in s.tensors
                if feed.computed(t)}
    feed.close()
    plan.close()
    assert [s.filename for s in plan.shards] == [o.path for o in rep.outputs
                                                 if o.role == "weights"]
    # copied from the ranks' files: all of a Llama's but the column splits over ranks
    # (q/k/v and gate/up are row blocks of the fused weights); GPT-2's transposed ones
    assert computed == ({"o_proj", "down_proj"} if tp > 1 else set()) if family == "llama" \
        else {"c_attn", "c_proj", "c_fc"}
    info = modelport.inspect(run)
    assert info.ok, info.problems


def test_legacy_names_and_a_single_rank_file(tmp_path: Path) -> None:
    m = _gpt2()
    run = write_megatron(m, tmp_path / "run", 2, legacy=True)
    modelport.convert(run / "iter_0000010", tmp_path / "out", progress=False)
    _judge(m, tmp_path / "out")
    one = write_megatron(m, tmp_path / "one", 1, legacy=True)
    modelport.convert(one / "iter_0000010" / "mp_rank_00" / "model_optim_rng.pt",
                      tmp_path / "out1", progress=False)
    _judge(m, tmp_path / "out1")


def test_what_a_megatron_checkpoint_cannot_be_is_refused(tmp_path: Path) -> None:
    m = _llama()
    run = write_megatron(m, tmp_path / "run", 2)
    (run / "latest_checkpointed_iteration.txt").write_text("20")
    with pytest.raises(CheckpointError, match="iter_0000020, which is not there"):
        modelport.convert(run, tmp_path / "o1", progress=False)
    (run / "latest_checkpointed_iteration.txt").write_text("10")
    (run / "iter_0000010" / "mp_rank_01" / "model_optim_rng.pt").unlink()
    with pytest.raises(CheckpointError, match=r"mp_rank_01/model_optim_rng\.pt is missing"):
        modelport.convert(run, tmp_path / "o2", progress=False)
    pp = tmp_path / "pp" / "iter_0000001" / "mp_rank_00_001"
    pp.mkdir(parents=True)
    (pp / "model_optim_rng.pt").write_bytes(b"x")
    with pytest.raises(UnsupportedError, match="pipeline-parallel"):
        modelport.convert(tmp_path / "pp" / "iter_0000001", tmp_path / "o3", progress=False)
    assert not any((tmp_path / f"o{i}").exists() for i in (1, 2, 3))


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_hostile_global_in_the_run_args_never_runs(tmp_path: Path) -> None:
    """The run's args are read through the pickle allow-list: a global outside it is named
    and refused, and nothing it asks for runs."""
    from modelport.errors import UnsafeCheckpointError

    m = _llama()
    run = write_megatron(m, tmp_path / "run", 1)
    f = run / "iter_0000010" / "mp_rank_00" / "model_optim_rng.pt"
    marker = tmp_path / "pwned"
    torch.save({"args": _Evil(marker), "checkpoint_version": 3.0,
                "model": _llama_rank(m, 1, 0)}, f)
    with pytest.raises(UnsafeCheckpointError, match="system"):
        modelport.convert(run, tmp_path / "out", progress=False)
    assert not marker.exists() and not (tmp_path / "out").exists()
