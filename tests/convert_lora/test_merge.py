"""LoRA merge against PEFT's own merge_and_unload: adapters trained here with PEFT, and the
real adapters of ../shared/real/ckpt2 on random bases of their shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from modelport.cli.main import cli
from modelport.convert.lora import merge
from modelport.errors import InputError, UnsupportedError
from tests.conftest import files_match_report, real_path, tiny_model

# PEFT (the anchor) calls a transformers API that warns of its own deprecation
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def _train_lora(base: Path, adapter: Path, **lora_kw: object) -> torch.nn.Module:
    """A LoRA trained 3 steps with PEFT on the tiny llama saved at ``base``; returns PEFT's
    merged model (the anchor)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=lora_kw.pop("target_modules",
                     ["q_proj", "v_proj", "down_proj"]), lora_dropout=0.0, **lora_kw)
    peft_model = get_peft_model(model, cfg)
    opt = torch.optim.SGD([p for p in peft_model.parameters() if p.requires_grad], lr=0.5)
    torch.manual_seed(0)
    for _ in range(3):
        ids = torch.randint(0, 100, (2, 12))
        loss = peft_model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    for n, p in peft_model.named_parameters():  # B starts at zero: make every update count
        if "lora_B" in n or "lora_embedding_B" in n:
            p.data.add_(torch.randn_like(p) * 0.05)
    peft_model.save_pretrained(adapter)
    return peft_model.merge_and_unload()


@pytest.fixture
def base(tmp_path: Path) -> Path:
    d = tmp_path / "base"
    tiny_model("llama").save_pretrained(d)
    return d


def _same_as_peft(out: Path, anchor: torch.nn.Module, exact: bool = True) -> None:
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    ours = {}
    for f in sorted(out.glob("*.safetensors")):
        ours.update(load_file(f))
    theirs = anchor.state_dict()
    for name, t in ours.items():
        assert torch.equal(t, theirs[name]) if exact else torch.allclose(t, theirs[name]), name
    ids = torch.randint(0, 100, (1, 16))
    reloaded = AutoModelForCausalLM.from_pretrained(out).eval()
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, anchor.eval()(ids).logits)


@pytest.mark.parametrize("kw", [{}, {"use_rslora": True},
                                {"rank_pattern": {"v_proj": 2}, "alpha_pattern": {"q_proj": 3}},
                                {"target_modules": ["embed_tokens", "o_proj"]}],
                         ids=["lora", "rslora", "patterns", "embedding"])
def test_merge_equals_peft(base: Path, tmp_path: Path, kw: dict) -> None:
    anchor = _train_lora(base, tmp_path / "adapter", **kw)
    rep = merge(base, tmp_path / "adapter", tmp_path / "out", max_shard_size=200_000)
    assert rep.merged
    files_match_report(tmp_path / "out", rep.outputs)
    assert len([o for o in rep.outputs if o.path.endswith(".safetensors")]) > 1  # sharded
    assert (tmp_path / "out" / "model.safetensors.index.json").is_file()
    assert (tmp_path / "out" / "config.json").is_file()
    _same_as_peft(tmp_path / "out", anchor)


def test_refusals_write_nothing(base: Path, tmp_path: Path) -> None:
    _train_lora(base, tmp_path / "adapter")
    cfg_path = tmp_path / "adapter" / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    other = tmp_path / "other"
    from transformers import AutoModelForCausalLM

    from tests.conftest import tiny_config

    c = tiny_config("llama")
    c.intermediate_size = 96  # another shape: down_proj's update no longer fits
    AutoModelForCausalLM.from_config(c).save_pretrained(other)
    with pytest.raises(InputError, match="another base model"):
        merge(other, tmp_path / "adapter", tmp_path / "o1")
    cfg_path.write_text(json.dumps(cfg | {"use_dora": True}))
    with pytest.raises(UnsupportedError, match="DoRA"):
        merge(base, tmp_path / "adapter", tmp_path / "o2")
    cfg_path.write_text(json.dumps(cfg))
    r = CliRunner().invoke(cli, ["merge", str(base), str(tmp_path / "nope"), "--out",
                                 str(tmp_path / "o3")])
    assert r.exit_code == 2 and "Traceback" not in r.stderr
    assert not any((tmp_path / f"o{i}").exists() for i in (1, 2, 3))
    r = CliRunner().invoke(cli, ["merge", str(base), str(tmp_path / "adapter"), "--out",
                                 str(tmp_path / "o4"), "--json"])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["merged"]


def _same_tensors_as_peft(tmp: Path, cls: type, adapter: Path) -> None:
    from peft import PeftModel
    from safetensors.torch import load_file

    anchor = PeftModel.from_pretrained(cls.from_pretrained(tmp / "base"),  # type: ignore[attr-defined]
                                       adapter).merge_and_unload()
    theirs = anchor.state_dict()
    for name, t in load_file(tmp / "out" / "model.safetensors").items():
        assert torch.equal(t, theirs[name]), name


@pytest.mark.real
def test_real_gpt2_adapter_fan_in_fan_out_and_classifier(tmp_path: Path) -> None:
    from transformers import GPT2Config, GPT2ForSequenceClassification

    adapter = real_path("ckpt2", "peft_gpt2_seqcls_anirudh")
    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=12, n_embd=768, n_head=12, num_labels=6, pad_token_id=50256)
    GPT2ForSequenceClassification(cfg).save_pretrained(tmp_path / "base")
    rep = merge(tmp_path / "base", adapter, tmp_path / "out")
    assert rep.fan_in_fan_out and rep.replaced == ["score.weight"] and len(rep.merged) == 12
    _same_tensors_as_peft(tmp_path, GPT2ForSequenceClassification, adapter)


@pytest.mark.real
def test_real_distilbert_adapter_pickled_on_cuda(tmp_path: Path) -> None:
    """A pickled adapter saved on a GPU: read through the allow-list, no device needed."""
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    adapter = real_path("ckpt2", "peft_distilbert_seqcls_sidkris_bin")
    torch.manual_seed(0)
    DistilBertForSequenceClassification(DistilBertConfig(num_labels=2)).save_pretrained(
        tmp_path / "base")
    rep = merge(tmp_path / "base", adapter, tmp_path / "out")
    assert len(rep.merged) == 18 and rep.scaling == 2.0  # q/k/v_lin in 6 layers, 32 / 16
    _same_tensors_as_peft(tmp_path, DistilBertForSequenceClassification, adapter)


def test_prepare_with_adapter(base: Path, tmp_path: Path) -> None:
    anchor = _train_lora(base, tmp_path / "adapter")
    r = CliRunner().invoke(cli, ["prepare", str(base), "--out", str(tmp_path / "bundle"),
                                 "--adapter", str(tmp_path / "adapter"), "--target",
                                 "watsonx-saas", "--json"])
    assert r.exit_code == 0, r.stderr
    steps = {s["verb"]: s for s in json.loads(r.stdout)["steps"]}
    assert steps["merge"]["status"] == "done" and "tensor(s) merged" in steps["merge"]["detail"]
    raw = json.loads((tmp_path / "bundle" / "modelport.manifest.json").read_text())
    assert raw["provenance"]["options"]["adapter"] == str(tmp_path / "adapter")
    _same_as_peft(tmp_path / "bundle", anchor)
