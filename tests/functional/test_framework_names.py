"""Training frameworks' tensor names (Lightning, DDP/accelerate, torch.compile, FSDP and
activation checkpointing) are fitted to the model config.json describes, and only then."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import modelport
from tests.conftest import logits, tiny_model


def _folder(tmp: Path, rename, wrap=lambda sd: sd, name: str = "last.ckpt") -> Path:  # type: ignore[no-untyped-def]
    model = tiny_model("llama")
    d = tmp / "run"
    d.mkdir()
    model.config.save_pretrained(d)
    sd = {rename(k): v for k, v in model.state_dict().items()}
    torch.save(wrap(sd), d / name)
    return d


def _fsdp(k: str) -> str:
    if ".layers." in k:
        head, tail = k.split(".layers.", 1)
        i, rest = tail.split(".", 1)
        k = f"{head}.layers.{i}._fsdp_wrapped_module._checkpoint_wrapped_module.{rest}"
    return "_fsdp_wrapped_module." + k


CASES = {
    "lightning": (lambda k: "model." + k,
                  lambda sd: {"state_dict": sd, "epoch": 3, "global_step": 10}),
    "ddp_accelerate": (lambda k: "module." + k, lambda sd: sd),
    "torch_compile": (lambda k: "_orig_mod." + k, lambda sd: sd),
    "lightning_compiled": (lambda k: "model._orig_mod." + k, lambda sd: {"state_dict": sd}),
    "fsdp_checkpointing": (_fsdp, lambda sd: {"model": sd}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_framework_prefixes_are_fitted(tmp_path: Path, case: str) -> None:
    rename, wrap = CASES[case]
    d = _folder(tmp_path, rename, wrap)
    rep = modelport.convert(d, tmp_path / "out", progress=False)
    assert rep.renamed and set(rep.renamed.values()) <= set(rep.tensor_map)
    assert all(k != v for k, v in rep.renamed.items())
    assert any(w.startswith("tensor names: removed") for w in rep.warnings)
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert torch.equal(logits(reloaded, "llama"), logits(tiny_model("llama"), "llama"))


def test_the_models_own_prefix_is_kept(tmp_path: Path) -> None:
    d = _folder(tmp_path, lambda k: k, name="pytorch_model.bin")
    rep = modelport.convert(d, tmp_path / "out", progress=False)
    assert rep.renamed == {} and "model.embed_tokens.weight" in rep.tensor_map


def test_names_that_fit_nothing_are_kept_and_said(tmp_path: Path) -> None:
    d = _folder(tmp_path, lambda k: "module.backbone." + k)
    rep = modelport.convert(d, tmp_path / "out", progress=False)
    assert rep.renamed == {} and "module.backbone.model.embed_tokens.weight" in rep.tensor_map
    assert any("--strip-prefix" in w for w in rep.warnings)
    off = modelport.convert(d, tmp_path / "out2", progress=False, fit_names=False)
    assert off.renamed == {} and not any("--strip-prefix" in w for w in off.warnings)


def test_fit_names_false_keeps_names_that_would_fit(tmp_path: Path) -> None:
    """fit_names=False is the off switch: DDP's prefix, which fitting removes, stays."""
    d = _folder(tmp_path, lambda k: "module." + k, name="pytorch_model.bin")
    on = modelport.convert(d, tmp_path / "on", progress=False)
    assert on.renamed and "model.embed_tokens.weight" in on.tensor_map
    off = modelport.convert(d, tmp_path / "off", progress=False, fit_names=False)
    assert off.renamed == {} and "module.model.embed_tokens.weight" in off.tensor_map
    assert not any(w.startswith("tensor names: removed") for w in off.warnings)
