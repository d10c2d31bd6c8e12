"""prepare repairs a config.json without ``architectures`` when the weights determine the
class, refuses naming the candidates when they do not, and reports check findings of the
user's folder in words (message, file, fix), not rule ids or work paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

import modelport
from modelport.cli.main import cli
from modelport.convert.architectures import infer_architecture
from modelport.errors import InputError
from tests.conftest import tiny_config, tree_snapshot


def _gpt2_without_architectures(folder: Path, head: bool = True) -> Path:
    from transformers import GPT2LMHeadModel, GPT2Model

    cfg = tiny_config("gpt2")
    model = (GPT2LMHeadModel if head else GPT2Model)(cfg)
    model.save_pretrained(folder)
    c = json.loads((folder / "config.json").read_text())
    c.pop("architectures", None)  # as config.save_pretrained() writes a config built in code
    (folder / "config.json").write_text(json.dumps(c))
    return folder


def test_lm_head_weights_make_the_causal_lm_class_certain(tmp_path: Path) -> None:
    src = _gpt2_without_architectures(tmp_path / "gpt2")
    inf = infer_architecture(src)
    assert inf.fits == ["GPT2LMHeadModel"] and "GPT2Model" in inf.candidates
    before = tree_snapshot(src)
    r = CliRunner().invoke(cli, ["check", str(src), "--target", "watsonx-saas"])
    assert r.exit_code == 1 and "modelport prepare" in r.stdout  # check names the fix
    rep = modelport.prepare(src, tmp_path / "bundle", ["watsonx-saas"])
    step = next(s for s in rep.manifest.provenance.steps if s.verb == "config")
    assert "architectures = [GPT2LMHeadModel]" in step.detail
    out = json.loads((tmp_path / "bundle" / "config.json").read_text())
    assert out["architectures"] == ["GPT2LMHeadModel"]
    assert tree_snapshot(src) == before  # the source config.json is untouched
    assert "architectures" not in json.loads((src / "config.json").read_text())


def test_bare_encoder_weights_make_the_base_class_certain(tmp_path: Path) -> None:
    src = _gpt2_without_architectures(tmp_path / "enc", head=False)
    assert infer_architecture(src).fits == ["GPT2Model"]


def test_uncertain_class_is_refused_naming_the_candidates(tmp_path: Path) -> None:
    src = _gpt2_without_architectures(tmp_path / "odd")
    save_file({"something.else": torch.zeros(2)}, src / "extra.safetensors")
    with pytest.raises(InputError, match="fit none of the classes of model_type gpt2: "
                                         "GPT2LMHeadModel"):
        modelport.prepare(src, tmp_path / "bundle", ["watsonx-saas"])
    assert not (tmp_path / "bundle").exists()


def test_prepare_refusal_speaks_of_the_users_folder(tmp_path: Path) -> None:
    from transformers import BertConfig, BertForMaskedLM

    src = tmp_path / "bert"
    BertForMaskedLM(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=64)).save_pretrained(src)
    r = CliRunner().invoke(cli, ["prepare", str(src), "--out", str(tmp_path / "b"),
                                 "--target", "watsonx-saas"])
    assert r.exit_code == 1, r.output
    assert str(src) in r.stderr and "modelport-work" not in r.stderr
    assert "watsonx-saas: config.json: " in r.stderr and "(fix: " in r.stderr
    assert "watsonx.arch.supported" not in r.stderr  # the finding, not the rule id
    assert len(r.stderr.strip().splitlines()) <= 2
