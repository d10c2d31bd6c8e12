"""SentencePiece classes: Llama (legacy and not), Gemma, T5, ALBERT, XLNet, DeBERTa-v2 and the
fairseq-offset classes (XLM-R, CamemBERT, mBART, mBART-50, NLLB).

tokenizer.json is built from the model proto itself: its pieces and scores, its own normalizer
(precompiled charsmap, whitespace handling, dummy prefix, byte fallback), then the class's
layer: the id layout the class numbers pieces with, its text preprocessing, its prefix-space
rule (``legacy``), its added tokens and template. The reference (``SlowRef``) runs the
``sentencepiece`` library with the class's ``_tokenize`` and token-to-id map.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelport.convert.tok.classes import Resolved
from modelport.convert.tok.slow import SPIECE, SlowRef, Template, assign_ids, finish
from modelport.convert.tok.source import Added, Source
from modelport.errors import InputError, MissingDependencyError, UnsupportedError

NORMAL, UNKNOWN, CONTROL, USER, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
# Python's str.split() whitespace (ALBERT/XLNet remove_space), as a regex class
_PY_SPACE = "[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"


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


def load_proto(path: Path) -> tuple[Any, Any]:
    try:
        import sentencepiece as spm
        from sentencepiece import sentencepiece_model_pb2 as pb
    except ImportError as e:
        raise MissingDependencyError("sentencepiece", "tokenizers") from e
    m = pb.ModelProto()
    try:
        m.ParseFromString(path.read_bytes())
        if not m.pieces:
            raise ValueError("no pieces")
        sp = spm.SentencePieceProcessor(model_proto=m.SerializeToString())
    except Exception as e:
        raise InputError(f"not a readable sentencepiece model ({type(e).__name__})",
                         path=path, hint="re-download the tokenizer model") from e
    if m.trainer_spec.treat_whitespace_as_suffix:
        raise UnsupportedError("sentencepiece models with whitespace as suffix", path=path)
    if m.trainer_spec.model_type not in (1, 2):
        raise UnsupportedError(f"sentencepiece model_type {m.trainer_spec.model_type} "
                               "(word/char)", path=path, supported=["unigram", "bpe"])
    return m, sp


def _without_dummy_prefix(m: Any) -> Any:
    import sentencepiece as spm

    m2 = type(m)()
    m2.CopyFrom(m)
    m2.normalizer_spec.add_dummy_prefix = False
    return spm.SentencePieceProcessor(model_proto=m2.SerializeToString())


def _role(src: Source, role: str, default: str | None, **kw: Any) -> Added | None:
    a = src.role(role, default)
    if a is not None and kw and not a.explicit:
        a = Added(a.content, a.id, True, kw.get("lstrip", a.lstrip), kw.get("rstrip", a.rstrip),
                  kw.get("normalized", a.normalized))
    return a


def _bool(src: Source, name: str, default: bool, plan_applied: dict[str, Any]) -> bool:
    v = src.tc.get(name)
    out = default if v is None else bool(v)
    plan_applied[name] = out
    return out


def _albert_pre(src: Source, applied: dict[str, Any], lower_default: bool
                ) -> tuple[list[Any], Callable[[str], str], bool]:
    from tokenizers import Regex, normalizers

    remove_space = _bool(src, "remove_space", True, applied)
    keep_accents = _bool(src, "keep_accents", False, applied)
    lower = _bool(src, "do_lower_case", lower_default, applied)
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


def plan_for(res: Resolved, src: Source, m: Any, sp: Any) -> Plan:  # noqa: C901
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
        bos = _bool(src, "add_bos_token", True, applied)
        eos = _bool(src, "add_eos_token", False, applied)
        legacy = _bool(src, "legacy", True, applied) if f == "llama" else True
        prefix = _bool(src, "add_prefix_space", True, applied) if f == "llama" else True
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
        legacy = _bool(src, "legacy", True, applied)
        prefix = _bool(src, "add_prefix_space", True, applied)
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
            lower = _bool(src, "do_lower_case", False, applied)
            from tokenizers import normalizers

            return Plan(pieces, types, m.trainer_spec.unk_id, plain_id, roles, t,
                        additional=additional, lower=lower,
                        preprocess=[normalizers.Lowercase()] if lower else [], applied=applied)
        steps, pre, lower = _albert_pre(src, applied, f == "albert")
        return Plan(pieces, types, m.trainer_spec.unk_id, plain_id, roles, t,
                    additional=additional, lower=lower, preprocess=steps, pre_ref=pre,
                    digit_comma=True, applied=applied)
    if f in ("xlm-roberta", "mbart", "mbart50", "nllb"):
        roles = {"bos_token": _role(src, "bos_token", "<s>"),
                 "eos_token": _role(src, "eos_token", "</s>"),
                 "sep_token": _role(src, "sep_token", "</s>"),
                 "cls_token": _role(src, "cls_token", "<s>"),
                 "unk_token": _role(src, "unk_token", "<unk>"),
                 "pad_token": _role(src, "pad_token", "<pad>"),
                 "mask_token": _role(src, "mask_token", "<mask>", lstrip=True)}
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
        roles = {"bos_token": _role(src, "bos_token", "<s>"),
                 "eos_token": _role(src, "eos_token", "</s>"),
                 "sep_token": _role(src, "sep_token", "</s>"),
                 "cls_token": _role(src, "cls_token", "<s>"),
                 "unk_token": _role(src, "unk_token", "<unk>"),
                 "pad_token": _role(src, "pad_token", "<pad>"),
                 "mask_token": _role(src, "mask_token", "<mask>", lstrip=True)}
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


def _merges(vocab: list[tuple[str, float]], types: list[int]) -> list[tuple[str, str]]:
    """BPE merges that rebuild the normal pieces, highest score first, as transformers'
    SentencePieceExtractor orders them (sentencepiece never emits the other pieces)."""
    ids = {p: i for i, (p, _) in enumerate(vocab)}
    out: list[tuple[float, int, int, str, str]] = []
    for i, (piece, score) in enumerate(vocab):
        if types[i] != NORMAL or len(piece) < 2:
            continue
        local = [(piece[:k], piece[k:]) for k in range(1, len(piece))
                 if piece[:k] in ids and piece[k:] in ids]
        local.sort(key=lambda x: (ids[x[0]], ids[x[1]]))
        out += [(score, len(a), len(b), a, b) for a, b in local]
    # a stable sort on (score, len(left), len(right)), all descending
    out.sort(key=lambda x: (x[0], x[1], x[2]), reverse=True)
    return [(a, b) for *_, a, b in out]


def build(src: Source, res: Resolved, notes: list[str]) -> tuple[Any, SlowRef, dict[str, Any]]:
    """tokenizer.json (a ``tokenizers.Tokenizer``) and the slow reference for ``src``."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE, Unigram

    assert src.spm is not None
    m, sp = load_proto(src.spm)
    p = plan_for(res, src, m, sp)
    ts, ns = m.trainer_spec, m.normalizer_spec
    # sentencepiece itself never emits control or unused pieces: keep them out of reach
    scores = [(pc, s if p.types[i] in (NORMAL, USER, BYTE, UNKNOWN) else -1e9)
              for i, (pc, s) in enumerate(p.vocab)]
    # sentencepiece matches user-defined pieces whole, inside its own normalized text (no
    # dummy prefix after them): a pre-tokenizer isolates them, the model takes them whole
    user = [pc for i, (pc, _) in enumerate(p.vocab) if p.types[i] == USER]
    if ts.model_type == 1:
        model = Unigram(scores, unk_id=p.unk_id, byte_fallback=ts.byte_fallback)
    else:
        ids = {pc: i for i, (pc, _) in enumerate(p.vocab)}
        model = BPE(ids, _merges(p.vocab, p.types), unk_token=p.vocab[p.unk_id][0],
                    fuse_unk=True, byte_fallback=ts.byte_fallback, dropout=None,
                    ignore_merges=bool(user))
    tok = Tokenizer(model)
    steps: list[Any] = list(p.preprocess)
    if not p.legacy and ns.remove_extra_whitespaces:
        # the non-legacy classes keep a literal leading space of a segment (their "<unk>"
        # trick), while sentencepiece strips whitespace that its charsmap makes a space
        # (U+FDD0, a noncharacter, holds the place: the charsmap maps "▁" to a space)
        steps.append(normalizers.Replace(Regex(r"\A (?=\s*\S)"), "\ufdd0"))
    if ns.precompiled_charsmap:
        charsmap = normalizers.Precompiled(ns.precompiled_charsmap)
        # tokenizers looks "\r\n" up as one grapheme, sentencepiece maps "\r" and "\n" one by
        # one: map "\r" first, as sentencepiece does
        cr = charsmap.normalize_str("\r")
        if cr != "\r":
            steps.append(normalizers.Replace("\r\n", cr + "\n"))
        steps.append(charsmap)
    if ns.remove_extra_whitespaces:
        # \A and \z: in tokenizers' regex engine (Oniguruma) ^ and $ match at every line.
        # Non-legacy classes keep a segment's leading space (their "<unk>" trick does), and
        # Metaspace must still see the first segment at offset 0
        steps += [normalizers.Replace(Regex(r"\A +| +\z"), ""),
                  normalizers.Replace(Regex(" {2,}"), " ")]
        if not p.legacy:
            steps.append(normalizers.Replace(Regex("\ufdd0 *"), SPIECE))
    dummy = ns.add_dummy_prefix and p.legacy
    if dummy:
        steps.append(normalizers.Prepend(" "))
    if ns.escape_whitespaces:
        steps.append(normalizers.Replace(" ", SPIECE))
    tok.normalizer = normalizers.Sequence(steps)
    pre: list[Any] = []
    if user:
        alts = "|".join(re.escape(u) for u in sorted(user, key=len, reverse=True))
        pre.append(pre_tokenizers.Split(Regex(alts), behavior="isolated", invert=False))
    if not p.legacy:
        pre.append(pre_tokenizers.Metaspace(
            replacement=SPIECE, prepend_scheme="first" if p.add_prefix_space else "never",
            split=False))
    if pre:
        tok.pre_tokenizer = pre[0] if len(pre) == 1 else pre_tokenizers.Sequence(pre)
    dec: list[Any] = [decoders.Replace(SPIECE, " "), decoders.ByteFallback(), decoders.Fuse()]
    if dummy or (not p.legacy and p.add_prefix_space):
        dec.append(decoders.Strip(content=" ", left=1))
    tok.decoder = decoders.Sequence(dec)
    vocab_ids = {pc: i for i, (pc, _) in enumerate(p.vocab)}
    roles = [a for a in p.roles.values() if a is not None]
    added = assign_ids(vocab_ids, [*src.added_decoder(), *p.class_added],
                       [*roles, *src.additional_special(), *p.additional], src.folder)
    post = finish(tok, added, p.template)

    ref_sp = sp if p.legacy else _without_dummy_prefix(m)
    unk = p.roles.get("unk_token")
    unk_text = unk.content if unk else "<unk>"
    unk_len = len(ref_sp.encode(unk_text, out_type=str))

    def encode(text: str) -> list[str]:
        if p.pre_ref:
            text = p.pre_ref(text)
        if p.legacy or not text.startswith((SPIECE, " ")):
            return list(ref_sp.encode(text, out_type=str))
        pieces = ref_sp.encode(unk_text + text, out_type=str)
        return pieces[unk_len:] if len(pieces) >= unk_len else pieces

    def digit_comma(text: str) -> list[str]:
        out: list[str] = []
        for piece in encode(text):
            if len(piece) > 1 and piece[-1] == "," and piece[-2].isdigit():
                cur = list(ref_sp.encode(piece[:-1].replace(SPIECE, ""), out_type=str))
                if piece[0] != SPIECE and cur and cur[0][0] == SPIECE:
                    cur = cur[1:] if len(cur[0]) == 1 else [cur[0][1:], *cur[1:]]
                out += [*cur, piece[-1]]
            else:
                out.append(piece)
        return out

    ref = SlowRef(tokenize=encode, to_id=p.to_id, added=added, template=p.template,
                  lower=p.lower, prefix_space=None if p.legacy else (
                      SPIECE if p.add_prefix_space else ""),
                  quirks={"tokenize": digit_comma} if p.digit_comma else None)
    unk_piece = m.pieces[ts.unk_id].piece if 0 <= ts.unk_id < len(m.pieces) else None

    def decode(tokens: list[str]) -> str | None:
        if any(sp.piece_to_id(t) == ts.unk_id and t != unk_piece for t in tokens):
            return None  # an unknown piece: the class decodes its id as the unk token
        return str(sp.decode_pieces(tokens))

    ref.decode = decode
    ref.corpus_tokens = [*user, *(pc for i, (pc, _) in enumerate(p.vocab)
                                  if p.types[i] == CONTROL)][:300]
    notes.append(f"sentencepiece {'unigram' if ts.model_type == 1 else 'BPE'}, "
                 f"{len(m.pieces)} pieces -> {len(p.vocab)} ids, byte_fallback="
                 f"{ts.byte_fallback}, add_dummy_prefix={ns.add_dummy_prefix}, "
                 f"remove_extra_whitespaces={ns.remove_extra_whitespaces}, "
                 f"charsmap={ns.name or bool(ns.precompiled_charsmap)}; template {post}")
    if p.digit_comma:
        notes.append(f"{res.name} re-splits pieces like '▁9,' into '▁9' ','; tokenizer.json "
                     "cannot express it (nor can transformers' converter): lines where only "
                     "this differs are listed as known differences")
    return tok, ref, {"applied": p.applied, "roles": {
        k: v.content for k, v in p.roles.items() if v is not None}, "post": post}
