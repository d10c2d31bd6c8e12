"""Tensor names from data (convert/arch_names.py): the table is what transformers builds, and
its names for a config equal those of the class built from that config on the meta device."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from modelport.convert import arch_names
from modelport.convert.architectures import built, load_config
from tests.conftest import NATIVE_TYPES, tiny_config

ROOT = Path(__file__).resolve().parents[2]


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_arch_names",
                                                  ROOT / "scripts" / "gen_arch_names.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.filterwarnings("ignore")
def test_the_table_is_what_transformers_builds() -> None:
    """Made again from the installed transformers: a difference means the table is stale
    (run scripts/gen_arch_names.py)."""
    fresh = json.loads(json.dumps(_generator().table()))
    assert fresh["families"] == arch_names.table()["families"]
    assert [f for f, e in fresh["families"].items() if not e["candidates"]] == []


# settings that change the names, each tried against a model built with it
VARIANTS: dict[str, list[dict[str, object]]] = {
    "llama": [{"attention_bias": True}, {"mlp_bias": True, "tie_word_embeddings": True},
              {"num_hidden_layers": 5}],
    "falcon": [{"new_decoder_architecture": True}, {"bias": True},
               {"parallel_attn": False}, {"new_decoder_architecture": True,
                                          "parallel_attn": False}],
    "gpt2": [{"add_cross_attention": True}, {"tie_word_embeddings": False}],
    "t5": [{"feed_forward_proj": "gated-gelu"}, {"num_decoder_layers": 3},
           {"tie_word_embeddings": False}],
    "mt5": [{"feed_forward_proj": "relu"}],
    "qwen2": [{"tie_word_embeddings": True}],
    "mixtral": [{"num_local_experts": 3}],
    "bert": [{}],
    "roberta": [{}],
    "distilbert": [{}],
}


def _cases() -> list[tuple[str, dict[str, object]]]:
    out = [(t, {}) for t in NATIVE_TYPES]
    out += [(t, v) for t, vs in VARIANTS.items() for v in vs]
    return out


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize(("model_type", "change"), _cases(),
                         ids=lambda x: x if isinstance(x, str) else json.dumps(x))
def test_names_from_the_table_equal_the_built_model(model_type: str, change: dict[str, object],
                                                    tmp_path: Path) -> None:
    from transformers import AutoConfig

    if model_type in ("bert", "roberta", "distilbert"):
        cfg = AutoConfig.for_model(model_type, num_hidden_layers=2, n_layers=2)
    else:
        cfg = tiny_config(model_type)
    for k, v in change.items():
        setattr(cfg, k, v)
    if "feed_forward_proj" in change:  # T5 derives these in __init__
        cfg = type(cfg)(**{**cfg.to_dict(), **change})
    cfg.save_pretrained(tmp_path)  # config.json as transformers writes it: defaults left out
    raw = json.loads((tmp_path / "config.json").read_text())
    classes = arch_names.candidates(model_type)
    assert classes
    ours = arch_names.expected(raw, classes)
    theirs = built(classes, load_config(tmp_path))
    if ours is None:  # the table declines: only for settings it says interact
        assert change == {"new_decoder_architecture": True, "parallel_attn": False}
        return
    assert [(c, sorted(n), sorted(t)) for c, n, t in ours] == [
        (c, sorted(n), sorted(t)) for c, n, t in theirs]


def _wrapped(model_type: str, folder: Path) -> None:
    """A checkpoint as DDP leaves it: every name under ``module.``."""
    from safetensors.torch import save_file

    from tests.conftest import tiny_model

    model = tiny_model(model_type)
    model.config.save_pretrained(folder)
    save_file({f"module.{k}": v.clone() for k, v in model.state_dict().items()},
              folder / "model.safetensors", metadata={"format": "pt"})


@pytest.mark.parametrize(("model_type", "imports"), [("llama", False), ("opt", True)])
def test_fitting_names_imports_transformers_only_off_the_table(
        model_type: str, imports: bool, tmp_path: Path) -> None:
    """In a fresh process: a DDP checkpoint of a family in the table is renamed without
    importing transformers; one outside it (OPT) builds the model, and the report says so."""
    import subprocess
    import sys

    _wrapped(model_type, tmp_path / "src")
    code = ("import sys, json, modelport\n"
            "r = modelport.convert(sys.argv[1], sys.argv[2], progress=False)\n"
            "print(json.dumps([len(r.renamed), r.warnings, 'transformers' in sys.modules]))")
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code, str(tmp_path / "src"),
                          str(tmp_path / "out")], capture_output=True, text=True, check=True)
    renamed, warnings, imported = json.loads(out.stdout.strip().splitlines()[-1])
    assert renamed > 0 and imported is imports
    assert any("removed leading 'module.'" in w for w in warnings)
    assert any("built with transformers" in w for w in warnings) is imports
