"""BPE classes from vocab.json + merges.txt: byte-level (GPT-2, CodeGen, GPT-NeoX, OPT,
RoBERTa, BART, Longformer, CodeT5, Qwen2, Whisper) and OpenAI GPT's ``</w>`` BPE."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelport.errors import InputError
from modelport.tok import reference as algo
from modelport.tok.classes import Resolved
from modelport.tok.slow import SlowRef, Template, assign_ids, finish
from modelport.tok.source import Added, Source, read_json

# Llama 3 / tiktoken cl100k-style pattern is in tiktoken_.py; these are the BPE classes' own
GPT2_PATTERN = algo.GPT2_PATTERN
QWEN2_PATTERN = algo.QWEN2_PATTERN


def read_vocab_merges(folder: Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    vocab = read_json(folder / "vocab.json")
    if not vocab or not all(isinstance(v, int) for v in vocab.values()):
        raise InputError("vocab.json is not a map of tokens to ids", path=folder / "vocab.json")
    if not (folder / "merges.txt").is_file():
        raise InputError("vocab.json without merges.txt", path=folder,
                         hint="BPE needs both files")
    merges: list[tuple[str, str]] = []
    try:
        text = (folder / "merges.txt").read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InputError("merges.txt is not UTF-8", path=folder / "merges.txt") from e
    for line in text.split("\n"):
        if line.startswith("#version") or not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise InputError(f"bad merges.txt line {line[:40]!r}", path=folder / "merges.txt")
        merges.append((parts[0], parts[1]))
    return vocab, merges


def _roles(src: Source, family: str) -> dict[str, Added | None]:
    if family == "roberta":
        d = {"bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>",
             "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>"}
    elif family == "qwen2":
        d = {"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}
    elif family == "openai-gpt":
        d = {"unk_token": "<unk>"}
    else:
        d = {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
             "unk_token": "<|endoftext|>"}
    out: dict[str, Added | None] = {}
    for role in ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
                 "mask_token"):
        a = src.role(role, d.get(role))
        if a is not None and role == "mask_token" and not a.explicit:
            a = Added(a.content, lstrip=True)  # RoBERTa: the mask includes the space before it
        out[role] = a
    return out


def _whisper_prefix(src: Source, applied: dict[str, Any]) -> list[str]:
    lang, task = src.tc.get("language"), src.tc.get("task")
    ts = bool(src.tc.get("predict_timestamps", False))
    applied.update(language=lang, task=task, predict_timestamps=ts)
    out = ["<|startoftranscript|>"]
    if lang:
        from modelport.errors import UnsupportedError

        raise UnsupportedError("WhisperTokenizer with a fixed language in tokenizer_config",
                               path=src.folder, hint="remove 'language'; the server sets it")
    if task:
        out.append(f"<|{task}|>")
    if not ts:
        out.append("<|notimestamps|>")
    return out


def build(src: Source, res: Resolved, notes: list[str]) -> tuple[Any, SlowRef, dict[str, Any]]:
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE

    f = res.family
    vocab, merges = read_vocab_merges(src.folder)
    applied: dict[str, Any] = {}
    roles = _roles(src, f)
    prefix_space = src.flag("add_prefix_space", False, applied) if f != "openai-gpt" else False
    if f == "openai-gpt":
        unk = roles["unk_token"]
        model = BPE(vocab, merges, dropout=None, unk_token=unk.content if unk and unk.content
                    in vocab else None, end_of_word_suffix="</w>", fuse_unk=False)
        tok = Tokenizer(model)
        tok.normalizer = normalizers.Sequence([
            normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                       strip_accents=False, lowercase=False),
            normalizers.NFC(),
            normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False,
                                       strip_accents=True, lowercase=True)])
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.BPEDecoder(suffix="</w>")
        basic = algo.WordPieceRef({}, "", lowercase=True, strip_accents=None)
        merger = algo.SuffixBPE(merges)

        def tokenize(text: str) -> list[str]:
            return [p for w in basic.basic_tokens(text) for p in merger.pieces(w)]

        template = Template()
        notes.append(f"OpenAI GPT BPE with </w> word ends, {len(vocab)} tokens, "
                     f"{len(merges)} merges, lower-cased (the class always lower-cases)")
    else:
        nfc = f == "qwen2"
        pattern = QWEN2_PATTERN if f == "qwen2" else GPT2_PATTERN
        tok = Tokenizer(BPE(vocab, merges, dropout=None, continuing_subword_prefix="",
                            end_of_word_suffix="", fuse_unk=False))
        if nfc:
            tok.normalizer = normalizers.NFC()
            tok.pre_tokenizer = pre_tokenizers.Sequence([
                pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=prefix_space, use_regex=False)])
        else:
            tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=prefix_space)
        tok.decoder = decoders.ByteLevel()
        merger = algo.ByteLevelBPE(vocab, merges, pattern, nfc=nfc)

        def tokenize(text: str) -> list[str]:
            return merger.tokens(text)

        bos, eos = roles.get("bos_token"), roles.get("eos_token")
        if f == "roberta":
            cls, sep = roles["cls_token"], roles["sep_token"]
            template = Template([cls.content] if cls else [], [sep.content] if sep else [])
        elif f == "whisper":
            template = Template(_whisper_prefix(src, applied), [eos.content] if eos else [])
        elif f == "qwen2":
            template = Template()
        else:
            add_bos = src.flag("add_bos_token", False, applied)
            add_eos = src.flag("add_eos_token", False, applied) \
                if res.name == "GPTNeoXTokenizer" else False
            template = Template([bos.content] if add_bos and bos else [],
                                [eos.content] if add_eos and eos else [])
        notes.append(f"byte-level BPE, {len(vocab)} tokens, {len(merges)} merges, "
                     f"add_prefix_space={prefix_space}" + (", NFC, Qwen2 pre-split" if nfc
                                                           else ""))
    role_list = [a for a in roles.values() if a is not None]
    added = assign_ids(vocab, src.added_decoder(), [*role_list, *src.additional_special()],
                       src.folder)
    post = finish(tok, added, template)
    unk = roles.get("unk_token")
    unk_id = vocab.get(unk.content) if unk else None
    missing: list[str] = []

    def to_id(token: str) -> int:
        if token in vocab:
            return vocab[token]
        missing.append(token)
        if unk_id is None:
            return -1  # the slow class would fail; the line is then a mismatch
        return unk_id

    def without_unknown(text: str) -> list[str]:
        # what tokenizer.json does: no unk id, and ByteLevel's prefix space per segment
        if f == "openai-gpt":
            return [t for t in tokenize(text) if t in vocab]
        if prefix_space and not text.startswith(" "):
            text = " " + text
        return merger.tokens(text, drop_unknown=True)

    def prepare(text: str) -> str:
        # GPT2/RoBERTa prepare_for_tokenization: one space before the whole text
        return " " + text if prefix_space and text and not text[0].isspace() else text

    ref = SlowRef(tokenize=without_unknown, to_id=to_id, added=added, template=template,
                  prepare=prepare, quirks={"tokenize": tokenize, "prepare": prepare})
    if f == "openai-gpt":
        ref.decode = lambda toks: "".join(toks).replace("</w>", " ").strip()
    else:
        inverse = {v: k for k, v in algo.bytes_to_unicode().items()}
        ref.decode = lambda toks: bytes(inverse[c] for c in "".join(toks)).decode(
            "utf-8", errors="replace")
    return tok, ref, {"applied": applied, "post": post,
                      "roles": {k: v.content for k, v in roles.items() if v is not None}}
