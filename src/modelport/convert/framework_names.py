"""Tensor names as training frameworks leave them, fitted to the model config.json describes.

Lightning keeps the model under an attribute (``model.``), DDP and DeepSpeed under
``module.``, ``torch.compile`` under ``_orig_mod.``, FSDP and activation checkpointing insert
``_fsdp_wrapped_module.`` / ``_checkpoint_wrapped_module.`` inside names. A prefix is removed
only when the result is exactly the model's own names — those of the class config.json names,
from the name table (``arch_names.py``), or built with transformers on the meta device for a
model_type the table lacks (counting tied weights a checkpoint omits) — so ``model.`` is kept
where the model itself starts with it (``LlamaForCausalLM``).
"""

from __future__ import annotations

import itertools
from pathlib import Path

from modelport._io import jsonio
from modelport.convert import arch_names
from modelport.convert.arch_names import Expected
from modelport.convert.architectures import built, candidates, load_config
from modelport.errors import RemoteCodeError

INFIXES = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.")
LEADING = ("_orig_mod.", "module.", "model.", "_forward_module.", "state_dict.")


# top-level modules of transformers' models: "model.<one of these>" is Lightning's attribute
_HF_TOP = {"model", "transformer", "lm_head", "bert", "gpt_neox", "embed_out", "encoder",
           "decoder", "shared", "roberta", "distilbert", "score", "classifier", "backbone",
           "language_model", "embeddings", "h", "wte"}


def looks_wrapped(names: list[str]) -> bool:
    """Cheap: do the names carry a framework's marks? (Only then is the model built.)"""
    for n in names:
        if any(s in n for s in INFIXES) or n.startswith(
                ("_orig_mod.", "module.", "_forward_module.", "state_dict.")):
            return True
        parts = n.split(".", 2)
        if len(parts) > 2 and parts[0] == "model" and parts[1] in _HF_TOP:
            return True
    return False


def _model_names(folder: Path) -> tuple[list[Expected], bool]:
    """(class, expected names, tied names) for the classes config.json may mean, and whether
    transformers built them (a model_type or setting the name table does not hold)."""
    try:
        raw = jsonio.load(folder / "config.json")
    except (OSError, ValueError):
        return [], False
    if not isinstance(raw, dict) or not isinstance(raw.get("model_type"), str):
        return [], False
    archs = raw.get("architectures")
    archs = [a for a in archs if isinstance(a, str)] if isinstance(archs, list) else []
    classes = archs or arch_names.candidates(raw["model_type"])
    from_table = arch_names.expected(raw, classes) if classes else None
    if from_table is not None:
        return from_table, False
    try:
        config = load_config(folder)
    except RemoteCodeError as e:  # the names cannot be fitted without the folder's code
        e.hint = "pass --strip-prefix to remove a training framework's prefix by hand"
        raise
    except (OSError, ValueError, KeyError):
        return [], False
    return built(archs or candidates(raw["model_type"]), config), True


def _strip(name: str, leading: tuple[str, ...], infixes: bool) -> str:
    if infixes:
        for s in INFIXES:
            name = name.replace(s, "")
    for p in leading:
        if name.startswith(p):
            name = name[len(p):]
    return name


def fit_names(names: list[str], folder: Path) -> tuple[dict[str, str] | None, str | None]:
    """(renaming, note): the renaming that makes ``names`` the model's own and what it
    removed; (None, how they differ) when no removal of framework prefixes fits; (None, None)
    when they fit already or config.json names no model. The model is built once."""
    models, by_transformers = _model_names(folder)
    if not models:
        return None, None
    how = " (built with transformers: not in modelport's name table)" if by_transformers else ""
    have = set(names)
    for _, expected, tied in models:
        if have <= expected and expected - have <= tied:
            return None, None
    combos: list[tuple[tuple[str, ...], bool]] = [((), True)]
    for k in (1, 2, 3):
        for leading in itertools.permutations(LEADING, k):
            combos += [(leading, False), (leading, True)]
    for leading, infixes in combos:
        mapped = {n: _strip(n, leading, infixes) for n in names}
        new = set(mapped.values())
        if len(new) != len(names):
            continue
        for cls, expected, tied in models:
            if new <= expected and expected - new <= tied:
                what = [f"leading {p!r}" for p in leading] + (
                    [f"{', '.join(repr(s) for s in INFIXES)} inside names"] if infixes and any(
                        s in n for n in names for s in INFIXES) else [])
                return mapped, (f"removed {' and '.join(what)}: the names are then "
                                f"{cls}'s{how}")
    cls, expected, _ = models[0]
    extra = sorted(have - expected)[:2]
    return None, (f"tensor names do not match {cls} of config.json{how} (e.g. "
                  f"{', '.join(extra) or 'missing tensors'}); pass --strip-prefix if a "
                  "framework added one")


def model_renaming(names: list[str], cfg_dir: Path | None, *, strip_prefix: str | None = None,
                   fit: bool = True) -> tuple[dict[str, str], str | None]:
    """The renaming convert applies to a checkpoint's names, as ``{old: new}`` for the names
    that change, and a note for the report: ``strip_prefix`` when given, else the framework
    marks :func:`fit_names` removes — tried only when the names carry such marks, since
    building the model costs an import of transformers."""
    if strip_prefix:
        return {n: n[len(strip_prefix):] for n in names if n.startswith(strip_prefix)}, None
    if not fit or cfg_dir is None or not looks_wrapped(names):
        return {}, None
    if not (cfg_dir / "config.json").is_file():
        marks = sorted({p for n in names for p in (*LEADING, *INFIXES) if n.startswith(p)
                        or (p in INFIXES and p in n)})
        return {}, (f"tensor names carry a training framework's marks ({', '.join(marks)}) "
                    "and there is no config.json to fit them to: written unchanged; pass "
                    "--strip-prefix to remove a prefix, and add the model's config.json")
    mapping, note = fit_names(names, cfg_dir)
    if mapping is None:
        return {}, note
    return {k: v for k, v in mapping.items() if k != v}, f"tensor names: {note}"


__all__ = ["fit_names", "looks_wrapped", "model_renaming"]
