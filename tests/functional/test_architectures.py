"""Every watsonx architecture: pickled .bin -> convert -> transformers reload -> equal logits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import modelport
from tests.conftest import (
    NATIVE_TYPES,
    SEQ2SEQ,
    files_match_report,
    logits,
    save_bin,
    tiny_model,
    tree_snapshot,
)

SHARDED = {"llama": 3, "t5": 2, "mixtral": 3, "gpt2": 2, "qwen2": 2}
LEGACY = {"falcon", "gptj"}


@pytest.mark.parametrize("model_type", NATIVE_TYPES)
def test_convert_reload_identical_logits(model_type: str, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    model = tiny_model(model_type)
    src = tmp_path / "src"
    model.config.save_pretrained(src)
    state = model.state_dict()
    save_bin(state, src, shards=SHARDED.get(model_type, 1), legacy=model_type in LEGACY)
    before = tree_snapshot(src)

    rep = modelport.convert(src, tmp_path / "out", max_shard_size="150KB", progress=False)

    assert tree_snapshot(src) == before  # SRC untouched
    files_match_report(tmp_path / "out", rep.outputs)
    assert set(rep.tensor_map) == set(state)  # every input name accounted for
    cls = AutoModelForSeq2SeqLM if model_type in SEQ2SEQ else AutoModelForCausalLM
    reloaded = cls.from_pretrained(tmp_path / "out").eval()
    assert torch.equal(logits(model, model_type), logits(reloaded, model_type))
    # the index lists exactly the tensors written, each once
    files = [o.path for o in rep.outputs if o.role == "weights"]
    if len(files) > 1:
        index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
        written = {k: f for f in files for k in load_file(tmp_path / "out" / f)}
        assert index["weight_map"] == written
        assert index["metadata"]["total_size"] == rep.total_bytes


# Architectures that need trust_remote_code: their real tensor names, synthetic values.
REMOTE_CODE_NAMES = {
    "exaone": ["transformer.wte.weight", "transformer.h.0.ln_1.weight",
               "transformer.h.0.attn.attention.q_proj.weight",
               "transformer.h.0.attn.attention.k_proj.weight",
               "transformer.h.0.attn.attention.v_proj.weight",
               "transformer.h.0.attn.attention.out_proj.weight", "transformer.h.0.ln_2.weight",
               "transformer.h.0.mlp.c_fc_0.weight", "transformer.h.0.mlp.c_fc_1.weight",
               "transformer.h.0.mlp.c_proj.weight", "transformer.ln_f.weight", "lm_head.weight"],
    "jais": ["transformer.wte.weight", "transformer.h.0.ln_1.weight",
             "transformer.h.0.ln_1.bias", "transformer.h.0.attn.c_attn.weight",
             "transformer.h.0.attn.c_attn.bias", "transformer.h.0.attn.c_proj.weight",
             "transformer.h.0.mlp.c_fc.weight", "transformer.h.0.mlp.c_fc2.weight",
             "transformer.h.0.mlp.c_proj.weight", "transformer.ln_f.weight",
             "transformer.relative_pe.slopes"],
    "qwen": ["transformer.wte.weight", "transformer.h.0.ln_1.weight",
             "transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_attn.bias",
             "transformer.h.0.attn.c_proj.weight", "transformer.h.0.ln_2.weight",
             "transformer.h.0.mlp.w1.weight", "transformer.h.0.mlp.w2.weight",
             "transformer.h.0.mlp.c_proj.weight", "transformer.ln_f.weight", "lm_head.weight"],
}


@pytest.mark.parametrize("model_type", sorted(REMOTE_CODE_NAMES))
def test_remote_code_state_dicts_round_trip(model_type: str, tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    state = {n: torch.randn(16, 8, generator=g).to(torch.bfloat16)
             for n in REMOTE_CODE_NAMES[model_type]}
    src = tmp_path / "src"
    save_bin(state, src)
    (src / "config.json").write_text(json.dumps({"model_type": model_type, "auto_map": {}}))
    modelport.convert(src, tmp_path / "out", progress=False)
    out = load_file(tmp_path / "out" / "model.safetensors")
    assert out.keys() == state.keys()
    assert all(torch.equal(out[k], state[k]) and out[k].dtype == torch.bfloat16 for k in state)
