"""BERT-style WordPiece (BertTokenizer, DistilBertTokenizer, ElectraTokenizer) from vocab.txt."""

from __future__ import annotations

from typing import Any

from modelport.errors import InputError
from modelport.tok import reference as algo
from modelport.tok.classes import Resolved
from modelport.tok.slow import SlowRef, Template, assign_ids, finish
from modelport.tok.source import Source


def _lowercase(src: Source, tokens: list[str], res: Resolved) -> tuple[bool, str]:
    """do_lower_case from the config, else from the vocabulary: never assumed."""
    if "do_lower_case" in src.tc:
        return bool(src.tc["do_lower_case"]), "tokenizer_config do_lower_case"
    cased = sum(1 for t in tokens[:5000] if t[:1].isupper() and not t.startswith("["))
    return cased < 10, (f"no do_lower_case in the config: {cased} capitalised entries in the "
                        f"first 5000 of vocab.txt -> {'cased' if cased >= 10 else 'uncased'}")


def build(src: Source, res: Resolved, notes: list[str]) -> tuple[Any, SlowRef, dict[str, Any]]:
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import WordPiece

    path = src.folder / "vocab.txt"
    if not path.is_file():
        raise InputError(f"{res.name} needs vocab.txt", path=src.folder)
    try:
        tokens = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as e:
        raise InputError("vocab.txt is not UTF-8", path=path) from e
    if tokens and tokens[-1] == "":
        tokens.pop()
    vocab = {t.rstrip("\r"): i for i, t in enumerate(tokens)}
    if len(vocab) != len(tokens):  # the slow class would map both lines to one id
        raise InputError("vocab.txt lists a token twice", path=path,
                         hint="re-download vocab.txt; a repeated line shifts every id after it")
    lower, why = _lowercase(src, tokens, res)
    strip = src.tc.get("strip_accents")
    chinese = bool(src.tc.get("tokenize_chinese_chars", True))
    applied = {"do_lower_case": lower, "strip_accents": strip,
               "tokenize_chinese_chars": chinese}
    if src.tc.get("do_basic_tokenize") is False:
        raise InputError("do_basic_tokenize false is not supported", path=src.folder)
    roles = {r: src.role(r, d) for r, d in (("unk_token", "[UNK]"), ("sep_token", "[SEP]"),
                                             ("pad_token", "[PAD]"), ("cls_token", "[CLS]"),
                                             ("mask_token", "[MASK]"))}
    unk = roles["unk_token"]
    if unk is None or unk.content not in vocab:
        raise InputError(f"vocab.txt lacks the unknown token {unk.content if unk else None!r}",
                         path=path)
    tok = Tokenizer(WordPiece(vocab, unk_token=unk.content, max_input_chars_per_word=100))
    strip_eff = lower if strip is None else bool(strip)
    steps: list[Any] = [normalizers.BertNormalizer(clean_text=True,
                                                   handle_chinese_chars=chinese,
                                                   strip_accents=False, lowercase=False),
                        normalizers.NFC()]  # transformers 4's BasicTokenizer NFC-normalizes
    if lower or strip_eff:
        steps.append(normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False,
                                                strip_accents=strip_eff, lowercase=lower))
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    cls, sep = roles["cls_token"], roles["sep_token"]
    template = Template([cls.content] if cls else [], [sep.content] if sep else [])
    added = assign_ids(vocab, src.added_decoder(),
                       [*(a for a in roles.values() if a is not None), *src.additional_special()],
                       src.folder)
    post = finish(tok, added, template)
    r = algo.WordPieceRef(vocab, unk.content, lower, strip, chinese)
    ref = SlowRef(tokenize=r.tokens, to_id=lambda t: vocab.get(t, vocab[unk.content]),
                  added=added, template=template, lower=lower)
    notes.append(f"WordPiece, {len(vocab)} tokens, lowercase={lower} ({why})")
    # BertTokenizer's own default, which PreTrainedTokenizerFast would not know
    tc_defaults = {"clean_up_tokenization_spaces": True}
    return tok, ref, {"applied": applied, "post": post, "tc_defaults": tc_defaults,
                      "roles": {k: v.content for k, v in roles.items() if v is not None}}
