"""Make src/modelport/convert/data/arch_names.json: the tensor names each model class expects,
as data, from transformers (the one place it is imported for this).

    .venv/bin/python scripts/gen_arch_names.py            # write the table
    tests/functional/test_arch_names.py                  # fails when transformers disagrees

For each model_type of FAMILIES and each class transformers maps it to (causal LM, seq2seq
LM, masked LM, base), the class is built on the meta device from its config with the counts
set to distinct small values; a numeric name component that repeats as many times as a count
becomes ``{key}`` (``model.layers.{num_hidden_layers}.mlp.up_proj.weight``). Each boolean
setting of the config is flipped once: the names it adds or removes are recorded under it.
The tied names (``lm_head.weight`` when ``tie_word_embeddings``) are recorded apart.
"""

from __future__ import annotations

import json
import re
import sys
import warnings
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "src/modelport/convert/data/arch_names.json"
FAMILIES = [
    "bert", "bloom", "codegen", "distilbert", "falcon", "gemma", "gemma2", "gpt_bigcode",
    "gpt_neox", "gptj", "gpt2", "granite", "llama", "mistral", "mixtral", "mpt", "mt5",
    "nemotron", "olmo", "persimmon", "phi", "phi3", "qwen2", "qwen3", "roberta", "t5",
]
MAPPINGS = ("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES",
            "MODEL_FOR_MASKED_LM_MAPPING_NAMES", "MODEL_MAPPING_NAMES")
# counts that number name components, each set to a value no other count has
# (numbers no structural index reaches: a block's 3 sub-layers must not read as a count)
COUNTS = {"num_hidden_layers": 11, "num_layers": 11, "n_layer": 11, "n_layers": 11,
          "num_decoder_layers": 13, "num_local_experts": 17, "num_experts": 17}
INDEX = re.compile(r"(?<=\.)(\d+)(?=\.)")
# a count that config classes derive from another when config.json leaves it out
FALLBACK = {"num_decoder_layers": "num_layers"}


def _classes(model_type: str) -> list[str]:
    from transformers.models.auto import modeling_auto

    out: list[str] = []
    for m in MAPPINGS:
        c = getattr(modeling_auto, m, {}).get(model_type)
        if isinstance(c, str) and c not in out:
            out.append(c)
    return out


def _config(model_type: str, **kw: Any) -> Any:
    from transformers import AutoConfig

    base = AutoConfig.for_model(model_type)
    sized = {k: v for k, v in COUNTS.items() if k in base.to_dict()}
    d = base.to_dict()
    if "head_dim" in d:  # as the config derives it (some leave it None by default)
        sized["head_dim"] = d["head_dim"] or d["hidden_size"] // d["num_attention_heads"]
    if "num_key_value_heads" in d:
        sized["num_key_value_heads"] = d["num_key_value_heads"] or d["num_attention_heads"]
    return AutoConfig.for_model(model_type, **{**sized, **kw})


def _names(cls: Any, config: Any) -> tuple[set[str], set[str]]:
    import torch

    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = cls(config)
    tied = getattr(model, "_tied_weights_keys", None) or {}
    tied_names = set(tied) if config.tie_word_embeddings or not isinstance(tied, dict) else set()
    return set(model.state_dict()), tied_names


def _templates(names: set[str], config: dict[str, Any]) -> list[str]:
    """Numeric components that run over a count become ``{count}``; the others stay literal.
    A group is templated only when its templates expand back to exactly its names."""
    by_value = {v: k for k, v in config.items() if k in COUNTS and isinstance(v, int)}
    groups: dict[str, set[str]] = {}
    for n in names:
        groups.setdefault(INDEX.sub("#", n), set()).add(n)
    out: set[str] = set()
    for members in groups.values():
        values = [INDEX.findall(m) for m in members]
        keys: list[str | None] = []
        for pos in range(len(values[0])):
            seen = {int(v[pos]) for v in values}
            key = by_value.get(len(seen))
            keys.append(key if key is not None and seen == set(range(len(seen))) else None)
        made = {_template(m, keys) for m in members}
        if set().union(*(set(expand(t, config)) for t in made)) == members:
            out |= made
        else:
            out |= members
    return sorted(out)


def _template(name: str, keys: list[str | None]) -> str:
    it = iter(keys)
    return INDEX.sub(lambda m: (lambda k: f"{{{k}}}" if k else m.group(1))(next(it)), name)


def expand(template: str, counts: dict[str, Any]) -> list[str]:
    """Every name a template stands for, given the counts."""
    m = re.search(r"\{(\w+)\}", template)
    if not m:
        return [template]
    head, tail = template[: m.start()], template[m.end():]
    return [n for i in range(int(counts[m.group(1)])) for n in expand(f"{head}{i}{tail}", counts)]


def family(model_type: str) -> dict[str, Any]:
    import transformers

    base = _config(model_type)
    cfg = base.to_dict()
    defaults = _defaults(model_type)
    counts = {k: defaults[k] for k in cfg if k in COUNTS}
    entry: dict[str, Any] = {
        "counts": counts, "fallback": {k: v for k, v in FALLBACK.items() if k in counts},
        "aliases": {a: k for a, k in type(base).attribute_map.items() if k in counts},
        "tie_word_embeddings": defaults.get("tie_word_embeddings", True), "classes": {},
        "candidates": []}
    for name in _classes(model_type):
        cls = getattr(transformers, name, None)
        if cls is None:
            continue
        try:
            names, _ = _names(cls, base)
            _, tied = _names(cls, _config(model_type, tie_word_embeddings=True))
            _, tied_always = _names(cls, _config(model_type, tie_word_embeddings=False))
        except Exception:  # noqa: S112 - a class that does not build from its own config
            continue
        flags: dict[str, Any] = {}
        flipped: dict[str, set[str]] = {}
        for key, value in cfg.items():
            if not isinstance(value, bool) or key == "tie_word_embeddings":
                continue
            try:
                other, _ = _names(cls, _config(model_type, **{key: not value}))
            except Exception:  # noqa: S112 - a setting this class cannot take
                continue
            if other != names:
                flipped[key] = other
                flags[key] = {"default": value, "adds": _templates(other - names, cfg),
                              "drops": _templates(names - other, cfg)}
        entry["candidates"].append(name)
        entry["classes"][name] = {"names": _templates(names, cfg),
                                  "tied": _templates(tied, cfg),
                                  "tied_always": _templates(tied_always, cfg), "flags": flags,
                                  "not_additive": _not_additive(cls, model_type, cfg, names,
                                                                flipped)}
    return entry


def _not_additive(cls: Any, model_type: str, cfg: dict[str, Any], names: set[str],
                  flipped: dict[str, set[str]]) -> list[list[str]]:
    """Pairs of settings whose names together are not the sum of each one's changes: a
    config with both is left to transformers."""
    out = []
    keys = sorted(flipped)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            want = (names | (flipped[a] - names) | (flipped[b] - names)) - (
                (names - flipped[a]) | (names - flipped[b]))
            try:
                got, _ = _names(cls, _config(model_type, **{a: not cfg[a], b: not cfg[b]}))
            except Exception:
                got = None
            if got != want:
                out.append([a, b])
    return out


def _defaults(model_type: str) -> dict[str, Any]:
    from transformers import AutoConfig

    return AutoConfig.for_model(model_type).to_dict()


def table() -> dict[str, Any]:
    import transformers

    return {"transformers": transformers.__version__,
            "families": {t: family(t) for t in FAMILIES}}


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(table(), indent=1, sort_keys=True) + "\n")
    sys.stdout.write(f"wrote {OUT}\n")
