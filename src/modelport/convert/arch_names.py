"""The tensor names a model class expects, from data (``data/arch_names.json``), not from
importing transformers.

The table holds, per ``model_type`` and class, name templates whose ``{count}`` runs over a
count of config.json (``model.layers.{num_hidden_layers}.mlp.up_proj.weight``), the names a
boolean setting adds or drops, and the names tied to another when ``tie_word_embeddings``
holds (or always: T5's embeddings). ``scripts/gen_arch_names.py`` makes it from
transformers, and ``tests/functional/test_arch_names.py`` fails when transformers and the
table disagree. A model_type the table does not hold, or a config with two settings whose
changes interact, gets ``None``: the caller builds the model with transformers (and says so).
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib.resources import files
from typing import Any

_COUNT = re.compile(r"\{(\w+)\}")

Expected = tuple[str, set[str], set[str]]  # class, its tensor names, the tied ones


@cache
def table() -> dict[str, Any]:
    data = files("modelport.convert").joinpath("data/arch_names.json").read_text()
    return json.loads(data)  # type: ignore[no-any-return]


def families() -> list[str]:
    return sorted(table()["families"])


def candidates(model_type: str) -> list[str] | None:
    """The classes transformers maps ``model_type`` to, likeliest first; None: not in the
    table."""
    fam = table()["families"].get(model_type)
    return list(fam["candidates"]) if fam else None


def _expand(template: str, counts: dict[str, int]) -> list[str]:
    m = _COUNT.search(template)
    if not m:
        return [template]
    head, tail = template[: m.start()], template[m.end():]
    return [n for i in range(counts[m.group(1)]) for n in _expand(f"{head}{i}{tail}", counts)]


def _all(templates: list[str], counts: dict[str, int]) -> set[str]:
    return {n for t in templates for n in _expand(t, counts)}


def _counts(fam: dict[str, Any], raw: dict[str, Any]) -> dict[str, int] | None:
    aliases = {k: a for a, k in fam["aliases"].items()}
    out: dict[str, int] = {}
    for key, default in sorted(fam["counts"].items(),
                               key=lambda kv: kv[0] in fam["fallback"]):
        value = raw.get(key, raw.get(aliases.get(key, "")))
        if value is None:
            value = out.get(fam["fallback"].get(key, ""), default)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100_000:
            return None
        out[key] = value
    return out


def expected(raw: dict[str, Any], classes: list[str]) -> list[Expected] | None:
    """(class, names, tied names) for each of ``classes`` config.json ``raw`` builds; None
    when the table cannot say (the caller asks transformers)."""
    fam = table()["families"].get(raw.get("model_type"))
    if fam is None:
        return None
    counts = _counts(fam, raw)
    if counts is None:
        return None
    tie = raw.get("tie_word_embeddings", fam["tie_word_embeddings"])
    out: list[Expected] = []
    for c in classes:
        entry = fam["classes"].get(c)
        if entry is None:
            return None  # a class of the family the table lacks: not a verdict
        changed = {k for k, f in entry["flags"].items()
                   if k in raw and raw[k] is not None and bool(raw[k]) != f["default"]}
        if any(set(pair) <= changed for pair in entry["not_additive"]):
            return None
        names = _all(entry["names"], counts)
        for k in sorted(changed):
            flag = entry["flags"][k]
            names = (names - _all(flag["drops"], counts)) | _all(flag["adds"], counts)
        tied = _all(entry["tied_always"], counts) | (_all(entry["tied"], counts) if tie else set())
        out.append((c, names, tied))
    return out


__all__ = ["candidates", "expected", "families", "table"]
