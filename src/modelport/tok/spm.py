"""SentencePiece classes: Llama (legacy and not), Gemma, T5, ALBERT, XLNet, DeBERTa-v2 and the
fairseq-offset classes (XLM-R, CamemBERT, mBART, mBART-50, NLLB).

tokenizer.json is built from the model proto itself: its pieces and scores, its own normalizer
(precompiled charsmap, whitespace handling, dummy prefix, byte fallback), then the class's
layer: the id layout the class numbers pieces with, its text preprocessing, its prefix-space
rule (``legacy``), its added tokens and template. The reference (``SlowRef``) runs the
``sentencepiece`` library with the class's ``_tokenize`` and token-to-id map.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from modelport.errors import InputError, MissingDependencyError, UnsupportedError
from modelport.tok.classes import Resolved
from modelport.tok.slow import SPIECE, SlowRef, assign_ids, finish
from modelport.tok.source import Source
from modelport.tok.spm_classes import BYTE, CONTROL, NORMAL, UNKNOWN, USER, plan_for
from modelport.tok.ties import competing


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
    static: list[str] = []
    tied = competing(p.vocab, p.types) if ts.model_type == 2 else []
    if tied:
        ref.tied = tuple(t for t in (x.replace(SPIECE, "").strip() for x in tied) if t)
        shown = ", ".join(repr(t) for t in tied[:4])
        static.append(f"{len(tied)} BPE pieces share their score with a piece they compete "
                      f"with ({shown}, ...): sentencepiece breaks such ties by position, "
                      "tokenizer.json's merges by rank, so text holding them may encode "
                      "differently; lines that hold one and differ are known differences")
        notes.extend(static)
    if p.digit_comma:
        notes.append(f"{res.name} re-splits pieces like '▁9,' into '▁9' ','; tokenizer.json "
                     "cannot express it (nor can transformers' converter): lines where only "
                     "this differs are listed as known differences")
    return tok, ref, {"applied": p.applied, "roles": {
        k: v.content for k, v in p.roles.items() if v is not None}, "post": post,
        "static": static}
