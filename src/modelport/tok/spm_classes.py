"""How each sentencepiece class lays out and uses one model: its ids (fairseq offsets,
language codes, T5 extra ids), role tokens, flags, text preprocessing and template, as the
slow classes of transformers 4 define them."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelport.errors import UnsupportedError
from modelport.tok.classes import Resolved
from modelport.tok.slow import Template
from modelport.tok.source import Added, Source

NORMAL, UNKNOWN, CONTROL, USER, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
# Python's str.split() whitespace (ALBERT/XLNet remove_space), as a regex class
_PY_SPACE = ("[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f"
             "\u205f\u3000]")


def lang_codes(family: str) -> list[str]:
    return json.loads((Path(__file__).parent / "lang_codes.json").read_text())[family]


@dataclass
class Plan:
    """How a class lays out and uses one sentencepiece model."""

    vocab: list[tuple[str, float]]
    types: list[int]
    unk_id: int
    to_id: Callable[[str], int]
    roles: dict[str, Added | None]
    template: Template
    class_added: list[Added] = field(default_factory=list)
    additional: list[Added] = field(default_factory=list)
    legacy: bool = True
    add_prefix_space: bool = True
    lower: bool = False
    preprocess: list[Any] = field(default_factory=list)  # tokenizers normalizers
    pre_ref: Callable[[str], str] | None = None  # the same, in Python, for the reference
    digit_comma: bool = False
    applied: dict[str, Any] = field(default_factory=dict)


def _role(src: Source, role: str, default: str | None, **kw: Any) -> Added | None:
    a = src.role(role, default)
    if a is not None and kw and not a.explicit:
        a = Added(a.content, a.id, True, kw.get("lstrip", a.lstrip), kw.get("rstrip", a.rstrip),
                  kw.get("normalized", a.normalized))
    return a


def _albert_pre(src: Source, applied: dict[str, Any], lower_default: bool
                ) -> tuple[list[Any], Callable[[str], str], bool]:
    from tokenizers import Regex, normalizers

    remove_space = src.flag("remove_space", True, applied)
    keep_accents = src.flag("keep_accents", False, applied)
    lower = src.flag("do_lower_case", lower_default, applied)
    steps: list[Any] = []
    if remove_space:
        steps += [normalizers.Replace(Regex(_PY_SPACE + "+"), " "), normalizers.Strip()]
    steps += [normalizers.Replace("``", '"'), normalizers.Replace("''", '"')]
    if not keep_accents:
        steps += [normalizers.NFKD(), normalizers.StripAccents()]
    if lower:
        steps.append(normalizers.Lowercase())

    def pre(text: str) -> str:
        out = " ".join(text.strip().split()) if remove_space else text
        out = out.replace("``", '"').replace("''", '"')
        if not keep_accents:
            out = "".join(c for c in unicodedata.normalize("NFKD", out)
                          if not unicodedata.combining(c))
        return out.lower() if lower else out

    return steps, pre, lower


def _fairseq_roles(src: Source) -> dict[str, Added | None]:
    """The role tokens of the fairseq classes (the mask takes the space before it)."""
    return {"bos_token": _role(src, "bos_token", "<s>"),
            "eos_token": _role(src, "eos_token", "</s>"),
            "sep_token": _role(src, "sep_token", "</s>"),
            "cls_token": _role(src, "cls_token", "<s>"),
            "unk_token": _role(src, "unk_token", "<unk>"),
            "pad_token": _role(src, "pad_token", "<pad>"),
            "mask_token": _role(src, "mask_token", "<mask>", lstrip=True)}


def _fairseq(m: Any, sp: Any, src: Source, extra: list[str]) -> tuple[
        list[tuple[str, float]], list[int], Callable[[str], int]]:
    """fairseq layout: <s> <pad> </s> <unk>, every piece one id up, then ``extra``."""
    head = [m.pieces[i].piece for i in range(min(3, len(m.pieces)))]
    if head != ["<unk>", "<s>", "</s>"]:
        raise UnsupportedError(f"a fairseq-offset class expects the sentencepiece model to "
                               f"start with <unk> <s> </s>; it starts with {' '.join(head)}",
                               path=src.spm, hint="pass --family for the class the model "
                               "was trained with")
    vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [(p.piece, p.score) for p in m.pieces[3:]]
    types = [CONTROL] * 4 + [p.type for p in m.pieces[3:]]
    fixed = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    n = len(m.pieces)
    fixed.update({t: n + 1 + i for i, t in enumerate(extra)})
    vocab += [(t, 0.0) for t in extra]
    types += [CONTROL] * len(extra)

    def to_id(token: str) -> int:
        if token in fixed:
            return fixed[token]
        i = sp.piece_to_id(token)
        return i + 1 if i else 3

    return vocab, types, to_id


def plan_for(res: Resolved, src: Source, m: Any, sp: Any) -> Plan:
    """The class's layout, flags and template for this model."""
    f = res.family
    pieces = [(p.piece, p.score) for p in m.pieces]
    types = [p.type for p in m.pieces]
    applied: dict[str, Any] = {}

    def plain_id(token: str) -> int:
        return int(sp.piece_to_id(token))

    if f in ("llama", "gemma"):
        names = ("<s>", "</s>") if f == "llama" else ("<bos>", "<eos>")
        roles = {"bos_token": _role(src, "bos_token", names[0]),
                 "eos_token": _role(src, "eos_token", names[1]),
                 "unk_token": _role(src, "unk_token", "<unk>"),
                 "pad_token": _role(src, "pad_token", None if f == "llama" else "<pad>")}
        bos = src.flag("add_bos_token", True, applied)
        eos = src.flag("add_eos_token", False, applied)
        legacy = src.flag("legacy", True, applied) if f == "llama" else True
        prefix = src.flag("add_prefix_space", True, applied) if f == "llama" else True
        t = Template([roles["bos_token"].content] if bos and roles["bos_token"] else [],
                     [roles["eos_token"].content] if eos and roles["eos_token"] else [])
        return Plan(pieces, types, m.trainer_spec.unk_id, plain_id, roles, t,
                    legacy=legacy, add_prefix_space=prefix, applied=applied)
    if f == "t5":
        roles = {"eos_token": _role(src, "eos_token", "</s>"),
                 "unk_token": _role(src, "unk_token", "<unk>"),
                 "pad_token": _role(src, "pad_token", "<pad>")}
        n_extra = int(src.tc.get("extra_ids", 100))
        applied["extra_ids"] = n_extra
        have = {a.content for a in src.added_decoder()}
        extra = [Added(f"<extra_id_{i}>", len(pieces) - 1 + n_extra - i, lstrip=True,
                       rstrip=True, all_special=True)
                 for i in range(n_extra) if f"<extra_id_{i}>" not in have]
        legacy = src.flag("legacy", True, applied)
        prefix = src.flag("add_prefix_space", True, applied)
        eos = roles["eos_token"].content if roles["eos_token"] else None
        return Plan(pieces, types, m.trainer_spec.unk_id, plain_id, roles,
                    Template([], [eos] if eos else [], eos_if_absent=eos),
                    class_added=extra, legacy=legacy, add_prefix_space=prefix, applied=applied)
    if f in ("albert", "xlnet", "deberta-v2"):
        if f == "xlnet":
            names = ("<s>", "</s>", "<unk>", "<sep>", "<pad>", "<cls>", "<mask>")
        elif f == "albert":
            names = ("[CLS]", "[SEP]", "<unk>", "[SEP]", "<pad>", "[CLS]", "[MASK]")
        else:
            names = ("[CLS]", "[SEP]", "[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]")
        roles = {r: _role(src, r, n) for r, n in zip(
            ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token"),
            names[:6], strict=True)}
        roles["mask_token"] = _role(src, "mask_token", names[6], lstrip=f != "deberta-v2")
        additional = [Added("<eop>"), Added("<eod>")] if f == "xlnet" and not \
            src.additional_special() else []
        cls, sep = roles["cls_token"].content, roles["sep_token"].content  # type: ignore[union-attr]
        t = Template([], [sep, cls]) if f == "xlnet" else Template([cls], [sep])
        if f == "deberta-v2":
            if src.tc.get("split_by_punct"):
                raise UnsupportedError("DebertaV2Tokenizer with split_by_punct", path=src.folder)
            lower = src.flag("do_lower_case", False, applied)
            from tokenizers import normalizers

            return Plan(pieces, types, m.trainer_spec.unk_id, plain_id, roles, t,
                        additional=additional, lower=lower,
                        preprocess=[normalizers.Lowercase()] if lower else [], applied=applied)
        steps, pre, lower = _albert_pre(src, applied, f == "albert")
        return Plan(pieces, types, m.trainer_spec.unk_id, plain_id, roles, t,
                    additional=additional, lower=lower, preprocess=steps, pre_ref=pre,
                    digit_comma=True, applied=applied)
    if f in ("xlm-roberta", "mbart", "mbart50", "nllb"):
        roles = _fairseq_roles(src)
        if f == "xlm-roberta":
            vocab, vtypes, to_id = _fairseq(m, sp, src, ["<mask>"])
            return Plan(vocab, vtypes, 3, to_id, roles, Template(["<s>"], ["</s>"]),
                        applied=applied)
        codes = lang_codes(f)
        if f == "nllb":
            vocab, vtypes, to_id = _fairseq(m, sp, src, [])
            extra_codes: list[Added] = []
            additional = [Added(c) for c in codes] if not src.additional_special() else []
        else:
            vocab, vtypes, to_id = _fairseq(m, sp, src, [*codes, "<mask>"])
            extra_codes = [Added(c, to_id(c), all_special=True) for c in codes]
            additional = []
        lang = str(src.tc.get("src_lang") or ("eng_Latn" if f == "nllb" else "en_XX"))
        applied["src_lang"] = lang
        if f == "mbart" or (f == "nllb" and src.tc.get("legacy_behaviour")):
            applied["legacy_behaviour"] = bool(src.tc.get("legacy_behaviour"))
            t = Template([], ["</s>", lang])
        else:
            t = Template([lang], ["</s>"])
        return Plan(vocab, vtypes, 3, to_id, roles, t, class_added=extra_codes,
                    additional=additional, applied=applied)
    if f == "camembert":
        roles = _fairseq_roles(src)
        head = ["<s>NOTUSED", "<pad>", "</s>NOTUSED", "<unk>", "<unk>NOTUSED"]
        vocab = [(h, 0.0) for h in head] + pieces[1:] + [("<mask>", 0.0)]
        vtypes = [CONTROL] * 5 + types[1:] + [CONTROL]
        fixed = {h: i for i, h in enumerate(head)} | {"<mask>": len(pieces) + 4}

        def cam_id(token: str) -> int:
            if token in fixed:
                return fixed[token]
            i = sp.piece_to_id(token)
            return 3 if i == 0 else 4 + i

        return Plan(vocab, vtypes, 3, cam_id, roles, Template([roles["cls_token"].content],
                    [roles["sep_token"].content]),  # type: ignore[union-attr]
                    class_added=[Added(h, i, all_special=True) for i, h in enumerate(head)],
                    applied=applied)
    raise UnsupportedError(f"family {f} is not a sentencepiece class", path=src.folder)


