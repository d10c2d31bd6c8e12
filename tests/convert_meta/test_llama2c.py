"""llama2.c training checkpoints (train.py's ckpt.pt) convert to a Llama that transformers
loads with the original model's logits.

The checkpoint is built here from a tiny Hugging Face Llama by the inverse of transformers' own
Meta conversion (``convert_llama_weights_to_hf.permute``; ``tests/convert_meta/layouts.py``),
not by modelport's code: llama2.c's names, Meta's interleaved rotary rows, the output tied to
the embeddings as llama2.c ties them, ``model_args`` as train.py saves it, plus the optimizer
and bookkeeping entries a real ``ckpt.pt`` carries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import modelport
from modelport.cli.main import cli
from tests.convert_meta.layouts import to_meta_rows


def _tiny():  # type: ignore[no-untyped-def]
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    c = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=192, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
                    tie_word_embeddings=True, max_position_embeddings=128)
    model = LlamaForCausalLM(c).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model


def _llama2c(model, path: Path, compiled: bool) -> None:  # type: ignore[no-untyped-def]
    c, sd = model.config, model.state_dict()
    emb = sd["model.embed_tokens.weight"].clone()
    out: dict[str, torch.Tensor] = {"tok_embeddings.weight": emb, "output.weight": emb,
                                    "norm.weight": sd["model.norm.weight"]}
    for i in range(c.num_hidden_layers):
        p = f"model.layers.{i}."
        out |= {
            f"layers.{i}.attention.wq.weight": to_meta_rows(
                sd[p + "self_attn.q_proj.weight"], c.num_attention_heads),
            f"layers.{i}.attention.wk.weight": to_meta_rows(
                sd[p + "self_attn.k_proj.weight"], c.num_key_value_heads),
            f"layers.{i}.attention.wv.weight": sd[p + "self_attn.v_proj.weight"],
            f"layers.{i}.attention.wo.weight": sd[p + "self_attn.o_proj.weight"],
            f"layers.{i}.feed_forward.w1.weight": sd[p + "mlp.gate_proj.weight"],
            f"layers.{i}.feed_forward.w2.weight": sd[p + "mlp.down_proj.weight"],
            f"layers.{i}.feed_forward.w3.weight": sd[p + "mlp.up_proj.weight"],
            f"layers.{i}.attention_norm.weight": sd[p + "input_layernorm.weight"],
            f"layers.{i}.ffn_norm.weight": sd[p + "post_attention_layernorm.weight"]}
    if compiled:
        out = {f"_orig_mod.{k}": v for k, v in out.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": out,
                "optimizer": {"state": {}, "param_groups": [{"lr": 5e-4, "params": [0, 1]}]},
                "model_args": {"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2,
                               "vocab_size": 256, "multiple_of": 32, "max_seq_len": 128,
                               "dropout": 0.0},
                "iteration_num": 2000, "best_val_loss": 1.25,
                "config": {"out_dir": "out", "batch_size": 8, "compile": compiled}}, path)


@pytest.mark.parametrize("compiled", [False, True])
def test_llama2c_checkpoint_converts(tmp_path: Path, compiled: bool) -> None:
    from transformers import AutoModelForCausalLM

    model = _tiny()
    _llama2c(model, tmp_path / "out" / "ckpt.pt", compiled)
    r = CliRunner().invoke(cli, ["convert", str(tmp_path / "out"), str(tmp_path / "hf"),
                                 "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["inputs"][0]["format"] == "llama2.c checkpoint"
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"] and cfg["num_key_value_heads"] == 2
    assert cfg["intermediate_size"] == 192
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    ids = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, model(ids).logits)
    # the file itself, too; and a plain pickled state dict is not taken for one
    modelport.convert(tmp_path / "out" / "ckpt.pt", tmp_path / "hf2", progress=False)
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    plain = modelport.convert(tmp_path / "plain.pt", tmp_path / "hf3", progress=False)
    assert plain.inputs[0].format != "llama2.c checkpoint"


def test_llama2c_model_args_must_be_usable(tmp_path: Path) -> None:
    model = _tiny()
    p = tmp_path / "ckpt.pt"
    _llama2c(model, p, False)
    ck = torch.load(p, weights_only=True)  # noqa: TID251 - the file this test wrote
    ck["model_args"].pop("n_layers")
    torch.save(ck, p)
    r = CliRunner().invoke(cli, ["convert", str(p), str(tmp_path / "hf")])
    assert r.exit_code == 2 and "model_args has no integer 'n_layers'" in r.stderr, r.output
    assert not (tmp_path / "hf").exists()
