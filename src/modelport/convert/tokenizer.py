"""``tokenizer``: synthesize ``tokenizer.json`` from slow tokenizer files, with a parity proof.

Three kinds of source, chosen from the files present, ``tokenizer_config.json`` and
``config.json`` (the choice and why are reported):

* SentencePiece (``tokenizer.model``/``spiece.model``/``sentencepiece.bpe.model``, unigram or
  BPE): built from the model proto itself, reproducing sentencepiece's own normalizer
  (precompiled charsmap, whitespace collapse, dummy prefix, byte fallback, split digits).
  transformers' per-family SPM converters assume family defaults instead of reading the proto,
  which is where they drift from sentencepiece (see the README); the parity proof below is
  against sentencepiece itself.
* Byte-level BPE (``vocab.json`` + ``merges.txt``): transformers' GPT2/Roberta/Qwen2
  converters, checked against an independent GPT-2 BPE encoder.
* WordPiece (``vocab.txt``): transformers' BertConverter, with the casing read from the files
  (never assumed), checked against BERT's original algorithm.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from modelport._io import jsonio
from modelport._io.atomic import atomic_dir, write_bytes_atomic
from modelport._io.paths import check_output
from modelport._types import Record
from modelport.convert import _tok_reference as ref
from modelport.convert._tok_corpus import corpus as builtin_corpus
from modelport.errors import (
    InputError,
    MissingDependencyError,
    ModelportError,
    OutputExistsError,
    UnsupportedError,
)

SPM_FILES = ("tokenizer.model", "spiece.model", "sentencepiece.bpe.model")
ROLES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
         "mask_token")
FAIRSEQ_CLASSES = {"XLMRobertaTokenizer", "CamembertTokenizer", "MBartTokenizer",
                   "MBart50Tokenizer", "NllbTokenizer", "BarthezTokenizer", "XGLMTokenizer"}


class TokenizerParityError(ModelportError):
    """Raised when the synthesized tokenizer.json disagrees with the reference tokenizer."""

    exit_code = 4


class TokenizerOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    family: str | None = Field(None, description="override the detected family (llama, t5, "
                               "gpt2, roberta, qwen2, bert)")
    corpus: Path | None = Field(None, description="extra parity corpus: text lines or JSONL "
                                "with a 'text' field")
    accept_mismatch: bool = Field(False, description="write even below 100% parity")
    check: bool = Field(False, description="only run the parity proof on an existing "
                        "tokenizer.json")
    overwrite: bool = False


class Mismatch(Record):
    text: str
    expected: list[int]
    got: list[int]


class ParityResult(Record):
    reference: str
    examples: int
    matched: int
    rate: float
    decode_checked: int
    decode_matched: int
    first_mismatches: list[Mismatch]


class TokenizerReport(Record):
    folder: str
    out: str | None
    kind: Literal["sentencepiece", "bpe", "wordpiece"]
    family: str
    reason: str
    written: bool
    vocab_size: int
    special_tokens: dict[str, str]
    post_processor: str
    parity: ParityResult
    transformers_matched: int | None = Field(
        None, description="corpus lines that transformers' AutoTokenizer, loading the written "
        "files, encodes to the same ids as tokenizers alone")
    notes: list[str]


def _json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        obj = jsonio.load(path)
    except (OSError, ValueError) as e:
        raise InputError(f"not valid JSON ({e})", path=path) from e
    return obj if isinstance(obj, dict) else {}


def _content(v: Any) -> str | None:
    if isinstance(v, dict):
        v = v.get("content")
    return v if isinstance(v, str) else None


class _Source:
    """What the folder holds and what it says about its tokenizer."""

    def __init__(self, folder: Path, family: str | None) -> None:
        self.folder = folder
        self.tc = _json(folder / "tokenizer_config.json")
        self.cfg = _json(folder / "config.json")
        self.stm = _json(folder / "special_tokens_map.json")
        added = _json(folder / "added_tokens.json")
        self.added = {k: v for k, v in added.items() if isinstance(v, int)}
        self.cls = str(self.tc.get("tokenizer_class") or "").replace("Fast", "")
        mt = str(self.cfg.get("model_type") or "")
        if (folder / "source.spm").is_file() or "Marian" in self.cls:
            raise UnsupportedError(
                "Marian tokenizers use two sentencepiece models (source.spm, target.spm) and "
                "no single tokenizer.json can represent them; transformers has no fast "
                "Marian tokenizer either", path=folder,
                hint="deploy with the slow MarianTokenizer, or pick another model")
        if self.cls in FAIRSEQ_CLASSES:
            raise UnsupportedError(f"{self.cls}: fairseq-offset vocabularies are not supported "
                                   "yet", path=folder)
        spm = [f for f in SPM_FILES if (folder / f).is_file()]
        if spm:
            self.kind: str = "sentencepiece"
            self.file = folder / spm[0]
            guess = "t5" if ("T5" in self.cls or mt in ("t5", "mt5", "umt5")
                             or spm[0] == "spiece.model") else "llama"
        elif (folder / "vocab.json").is_file():
            if not (folder / "merges.txt").is_file():
                raise InputError("vocab.json without merges.txt", path=folder,
                                 hint="byte-level BPE needs both files")
            self.kind, self.file = "bpe", folder / "vocab.json"
            guess = ("qwen2" if "Qwen2" in self.cls or mt.startswith("qwen2") else
                     "roberta" if "Roberta" in self.cls or mt in ("roberta", "bart") else "gpt2")
        elif (folder / "vocab.txt").is_file():
            self.kind, self.file, guess = "wordpiece", folder / "vocab.txt", "bert"
        else:
            raise InputError("no tokenizer files (tokenizer.model, spiece.model, "
                             "vocab.json + merges.txt, or vocab.txt)", path=folder)
        self.family = family or guess
        how = f"--family {family}" if family else (
            f"tokenizer_class {self.cls}" if self.cls else
            f"model_type {mt}" if mt else f"file {self.file.name} (no config)")
        self.reason = f"{self.file.name} -> {self.kind}, family {self.family} from {how}"

    def specials(self) -> dict[str, str]:
        """Special tokens by role; special_tokens_map.json and tokenizer_config.json agree."""
        out: dict[str, str] = {}
        for role in ROLES:
            a, b = _content(self.stm.get(role)), _content(self.tc.get(role))
            if a and b and a != b:
                raise InputError(f"conflicting {role}: {a!r} in special_tokens_map.json, {b!r} "
                                 "in tokenizer_config.json", path=self.folder,
                                 hint="make the two files agree, then run again")
            if a or b:
                out[role] = a or b  # type: ignore[assignment]
        return out

    def extra_tokens(self) -> dict[str, tuple[int, bool]]:
        """Added tokens with fixed ids: added_tokens.json and added_tokens_decoder."""
        out = {k: (v, True) for k, v in self.added.items()}
        dec = self.tc.get("added_tokens_decoder")
        if isinstance(dec, dict):
            for i, t in dec.items():
                if isinstance(t, dict) and isinstance(t.get("content"), str) and str(i).isdigit():
                    out[t["content"]] = (int(i), bool(t.get("special", True)))
        return out


def _require(module: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(module, extra) from e


def _add_extras(tok: Any, src: _Source, specials: dict[str, str]) -> dict[str, int]:
    """Add fixed-id added tokens and the special tokens; returns {special text: id}."""
    from tokenizers import AddedToken

    for text, (want, special) in sorted(src.extra_tokens().items(), key=lambda x: x[1][0]):
        have = tok.token_to_id(text)
        if have is None:
            if want != tok.get_vocab_size(with_added_tokens=True):
                raise InputError(f"added token {text!r} wants id {want}, the next free id is "
                                 f"{tok.get_vocab_size(with_added_tokens=True)}",
                                 path=src.folder, hint="the added-token ids have gaps")
            tok.add_tokens([AddedToken(text, special=special, normalized=not special)])
        elif have != want:
            raise InputError(f"added token {text!r} has id {have} in the vocabulary but "
                             f"{want} in the tokenizer config", path=src.folder)
        if special:
            tok.add_special_tokens([AddedToken(text, special=True, normalized=False)])
    for role, text in specials.items():
        if tok.token_to_id(text) is None:
            if role in ("pad_token", "mask_token", "sep_token", "cls_token"):
                continue  # a role naming no vocabulary entry: leave it to the config
            raise InputError(f"{role} {text!r} is not in the vocabulary", path=src.folder)
        tok.add_special_tokens([AddedToken(text, special=True, normalized=False)])
    # what the fast tokenizer splits out of text before the model sees it: every special
    # token, and (outside sentencepiece, which matches its user symbols itself) every added one
    return {at.content: i for i, at in tok.get_added_tokens_decoder().items()
            if at.special or src.kind != "sentencepiece"}


def _build_spm(src: _Source, specials: dict[str, str], notes: list[str]) -> tuple[Any, Any, Any]:
    spm = _require("sentencepiece", "tokenizers")
    from sentencepiece import sentencepiece_model_pb2 as pb
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers
    from tokenizers.models import BPE, Unigram
    from transformers.convert_slow_tokenizer import generate_merges

    m = pb.ModelProto()
    try:
        m.ParseFromString(src.file.read_bytes())
        if not m.pieces:
            raise ValueError("no pieces")
        sp = spm.SentencePieceProcessor(model_proto=m.SerializeToString())
    except Exception as e:
        raise InputError(f"not a readable sentencepiece model ({type(e).__name__})",
                         path=src.file, hint="re-download the tokenizer model") from e
    ts, ns = m.trainer_spec, m.normalizer_spec
    for role, pid, piece in (("bos_token", ts.bos_id, ts.bos_piece),
                             ("eos_token", ts.eos_id, ts.eos_piece),
                             ("unk_token", ts.unk_id, ts.unk_piece),
                             ("pad_token", ts.pad_id, ts.pad_piece)):
        if role not in specials and 0 <= pid < len(m.pieces):
            specials[role] = m.pieces[pid].piece or piece  # a bare model: the proto's own
    if ts.treat_whitespace_as_suffix:
        raise UnsupportedError("sentencepiece models with whitespace as suffix", path=src.file)
    vocab = [(p.piece, p.score) for p in m.pieces]
    t5_extra: list[str] = []
    if src.family == "t5":
        n = int(src.tc.get("extra_ids", 100))
        have = {p for p, _ in vocab}
        t5_extra = [f"<extra_id_{i}>" for i in range(n - 1, -1, -1)
                    if f"<extra_id_{i}>" not in have]
        vocab += [(t, 0.0) for t in t5_extra]
    if ts.model_type == 1:
        model = Unigram(vocab, unk_id=ts.unk_id, byte_fallback=ts.byte_fallback)
    elif ts.model_type == 2:
        ids = {p: i for i, (p, _) in enumerate(vocab)}
        model = BPE(ids, generate_merges(ids, vocab), unk_token=ts.unk_piece, fuse_unk=True,
                    byte_fallback=ts.byte_fallback, dropout=None)
    else:
        raise UnsupportedError(f"sentencepiece model_type {ts.model_type} (word/char)",
                               path=src.file, supported=["unigram", "bpe"])
    tok = Tokenizer(model)
    steps: list[Any] = []
    if ns.precompiled_charsmap:
        charsmap = normalizers.Precompiled(ns.precompiled_charsmap)
        # tokenizers looks "\r\n" up as one grapheme and maps it to one character, while
        # sentencepiece maps "\r" and "\n" one by one: map "\r" first, as sentencepiece does
        cr = charsmap.normalize_str("\r")
        if cr != "\r":
            steps.append(normalizers.Replace("\r\n", cr + "\n"))
        steps.append(charsmap)
    if ns.remove_extra_whitespaces:
        # \A and \z: in tokenizers' regex engine (Oniguruma) ^ and $ match at every line
        steps += [normalizers.Replace(Regex(r"\A +| +\z"), ""),
                  normalizers.Replace(Regex(" {2,}"), " ")]
    if ns.add_dummy_prefix:
        steps.append(normalizers.Prepend(" "))
    if ns.escape_whitespaces:
        steps.append(normalizers.Replace(" ", "▁"))
    tok.normalizer = normalizers.Sequence(steps)
    # no pre-tokenizer: sentencepiece segments the whole normalized string (whitespace-only
    # pieces such as "▁▁" exist in llama's vocabulary); splitting on "▁" would break them
    # sentencepiece decodes the unknown piece as its unk_surface (" ⁇ "), as slow tokenizers did
    dec: list[Any] = [decoders.Replace(ts.unk_piece, ts.unk_surface or " \u2047 "),
                      decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    if ns.add_dummy_prefix:
        dec.append(decoders.Strip(content=" ", left=1))
    tok.decoder = decoders.Sequence(dec)
    control = [p.piece for p in m.pieces if p.type == 3]
    user = [p.piece for p in m.pieces if p.type == 4]
    tok.add_tokens([AddedToken(u, special=False, normalized=True) for u in user])
    tok.add_special_tokens([AddedToken(c, special=True, normalized=False)
                            for c in [*control, *t5_extra]])
    notes.append(f"sentencepiece {'unigram' if ts.model_type == 1 else 'BPE'}, "
                 f"{len(m.pieces)} pieces, byte_fallback={ts.byte_fallback}, "
                 f"add_dummy_prefix={ns.add_dummy_prefix}, charsmap="
                 f"{ns.name or bool(ns.precompiled_charsmap)}"
                 + (f", {len(t5_extra)} T5 extra ids" if t5_extra else ""))
    return tok, (lambda s: sp.encode(s)), (lambda ids: sp.decode(ids))


class _Shim:
    """Stands in for a slow tokenizer object where transformers' converters expect one."""

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


def _build_bpe(src: _Source, specials: dict[str, str], notes: list[str]) -> tuple[Any, Any, Any]:
    from transformers.convert_slow_tokenizer import (
        GPT2Converter,
        Qwen2Converter,
        RobertaConverter,
    )

    vocab = _json(src.folder / "vocab.json")
    if not vocab or not all(isinstance(v, int) for v in vocab.values()):
        raise InputError("vocab.json is not a map of tokens to ids", path=src.file)
    merges: list[tuple[str, str]] = []
    for line in (src.folder / "merges.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith("#version") or not line.strip():
            continue
        parts = line.split(" ")
        if len(parts) != 2:
            raise InputError(f"bad merges.txt line {line[:40]!r}", path=src.folder / "merges.txt")
        merges.append((parts[0], parts[1]))
    prefix = bool(src.tc.get("add_prefix_space", False))
    ids = {t: vocab[t] for t in specials.values() if t in vocab}
    shim = _Shim(encoder=vocab, bpe_ranks={m: i for i, m in enumerate(merges)},
                 add_prefix_space=prefix, add_bos_token=bool(src.tc.get("add_bos_token")),
                 bos_token=specials.get("bos_token"), bos_token_id=ids.get(
                     specials.get("bos_token", "")),
                 sep_token=specials.get("sep_token", specials.get("eos_token", "</s>")),
                 cls_token=specials.get("cls_token", specials.get("bos_token", "<s>")),
                 trim_offsets=True)
    shim.sep_token_id, shim.cls_token_id = vocab.get(shim.sep_token), vocab.get(shim.cls_token)
    if src.family == "qwen2":
        tok = Qwen2Converter(shim).converted(vocab, merges)
        pattern, nfc = ref.QWEN2_PATTERN, True
    elif src.family == "roberta":
        tok = RobertaConverter(shim).converted()
        pattern, nfc = ref.GPT2_PATTERN, False
    else:
        tok = GPT2Converter(shim).converted(vocab, merges)
        pattern, nfc = ref.GPT2_PATTERN, False
    r = ref.ByteLevelBPE(vocab, merges, pattern, add_prefix_space=prefix, nfc=nfc)
    notes.append(f"byte-level BPE, {len(vocab)} tokens, {len(merges)} merges, "
                 f"add_prefix_space={prefix}, transformers {type(tok).__name__} via "
                 f"{src.family} converter")
    return tok, r.encode, r.decode


def _build_wordpiece(src: _Source, specials: dict[str, str], notes: list[str]
                     ) -> tuple[Any, Any, Any]:
    from transformers.convert_slow_tokenizer import BertConverter

    tokens = src.file.read_text(encoding="utf-8").split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    vocab = {t: i for i, t in enumerate(tokens)}
    if len(vocab) != len(tokens):
        raise InputError("vocab.txt lists a token twice", path=src.file)
    if "do_lower_case" in src.tc:
        lower, why = bool(src.tc["do_lower_case"]), "tokenizer_config do_lower_case"
    else:  # never assume: a vocabulary with capitalised words is cased
        cased = sum(1 for t in tokens[:5000] if t[:1].isupper() and not t.startswith("["))
        lower, why = cased < 10, f"{cased} capitalised entries in the first 5000"
    strip = src.tc.get("strip_accents")
    chinese = bool(src.tc.get("tokenize_chinese_chars", True))
    specials.setdefault("unk_token", "[UNK]")
    for role, default in (("cls_token", "[CLS]"), ("sep_token", "[SEP]")):
        if role not in specials and default in vocab:
            specials[role] = default
    shim = _Shim(vocab=vocab, unk_token=specials["unk_token"],
                 basic_tokenizer=_Shim(tokenize_chinese_chars=chinese, strip_accents=strip,
                                       do_lower_case=lower),
                 cls_token=specials.get("cls_token", "[CLS]"),
                 sep_token=specials.get("sep_token", "[SEP]"))
    shim.cls_token_id, shim.sep_token_id = vocab.get(shim.cls_token), vocab.get(shim.sep_token)
    if shim.cls_token_id is None or shim.sep_token_id is None or shim.unk_token not in vocab:
        raise InputError("vocab.txt lacks the [CLS]/[SEP]/[UNK] tokens the config names",
                         path=src.file)
    tok = BertConverter(shim).converted()
    r = ref.WordPieceRef(vocab, shim.unk_token, lower, strip, chinese)
    notes.append(f"WordPiece, {len(vocab)} tokens, lowercase={lower} ({why}); decoding is "
                 "lossy (case, accents, spaces around punctuation), so only ids are compared")
    return tok, r.encode, None


def _post_processor(tok: Any, src: _Source, specials: dict[str, str]) -> str:
    from tokenizers import processors

    if src.kind != "sentencepiece":
        return type(tok.post_processor).__name__ if tok.post_processor else "none"
    defaults = {"t5": (False, True)}.get(src.family, (True, False))
    bos = src.tc.get("add_bos_token", defaults[0]) and specials.get("bos_token")
    eos = src.tc.get("add_eos_token", defaults[1]) and specials.get("eos_token")
    single = ([f"{bos}:0"] if bos else []) + ["$A:0"] + ([f"{eos}:0"] if eos else [])
    pair = single + ([f"{bos}:1"] if bos else []) + ["$B:1"] + ([f"{eos}:1"] if eos else [])
    used = [t for t in (bos, eos) if t]
    tok.post_processor = processors.TemplateProcessing(
        single=" ".join(single), pair=" ".join(pair),
        special_tokens=[(t, tok.token_to_id(t)) for t in dict.fromkeys(used)])
    return " ".join(single)


def _read_corpus(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read the corpus ({e})", path=path) from e
    if path.suffix == ".jsonl":
        out = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    out.append(str(jsonio.loads(line)["text"]))
                except (ValueError, KeyError, TypeError) as e:
                    raise InputError(f"line {n} is not a JSON object with 'text'",
                                     path=path) from e
        return out
    return text.splitlines()


def parity(tok: Any, encode: Any, decode: Any, texts: list[str], specials: dict[str, int],
           reference: str) -> ParityResult:
    """Encode every text with both; compare ids, and decoded text where both decode."""
    run = ref.with_specials(encode, specials)
    matched, bad = 0, []
    dec_checked = dec_ok = 0
    special_re = re.compile("|".join(map(re.escape, specials))) if specials else None
    for text in texts:
        want = run(text)
        got = tok.encode(text, add_special_tokens=False).ids
        if got == want:
            matched += 1
        elif len(bad) < 5:
            bad.append(Mismatch(text=text[:200], expected=want[:40], got=got[:40]))
        if decode is not None and not (special_re and special_re.search(text)):
            dec_checked += 1
            dec_ok += tok.decode(got, skip_special_tokens=False) == decode(want)
    n = len(texts)
    return ParityResult(reference=reference, examples=n, matched=matched,
                        rate=matched / n if n else 1.0, decode_checked=dec_checked,
                        decode_matched=dec_ok, first_mismatches=bad)


def _transformers_parity(data: bytes, tc_bytes: bytes, tok: Any, texts: list[str]) -> int:
    """Load the files as a platform would (AutoTokenizer) and count identical encodings."""
    import tempfile

    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory(prefix="modelport-tok-") as d:
        Path(d, "tokenizer.json").write_bytes(data)
        Path(d, "tokenizer_config.json").write_bytes(tc_bytes)
        hf = AutoTokenizer.from_pretrained(d)
        return sum(hf(t, add_special_tokens=True)["input_ids"] == tok.encode(t).ids
                   for t in texts)


def tokenizer(folder: str | Path, out: str | Path | None = None,
              options: TokenizerOptions | None = None, **kwargs: Any) -> TokenizerReport:
    """Write ``tokenizer.json`` for a folder that has only slow tokenizer files.

    Args:
        folder: the model (or tokenizer) folder.
        out: write a copy of the folder there instead of adding the file to ``folder``.
        options: :class:`TokenizerOptions` (keyword arguments build one when omitted).

    Raises:
        TokenizerParityError: parity below 100% without ``accept_mismatch`` (nothing written).
        InputError, UnsupportedError, MissingDependencyError.
    """
    o = options or TokenizerOptions(**kwargs)
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("is not a folder", path=folder)
    existing = folder / "tokenizer.json"
    if existing.exists() and not (o.check or o.overwrite or out is not None):
        raise OutputExistsError("tokenizer.json already exists", path=existing,
                                hint="run the parity proof on it with --check, or --overwrite")
    if o.check and not existing.is_file():
        raise InputError("no tokenizer.json to check", path=folder)
    if out is not None:
        check_output(folder, Path(out), overwrite=o.overwrite)
    src = _Source(folder, o.family)
    specials = src.specials()
    notes: list[str] = []
    builders = {"sentencepiece": _build_spm, "bpe": _build_bpe, "wordpiece": _build_wordpiece}
    tok, encode, decode = builders[src.kind](src, specials, notes)
    special_ids = _add_extras(tok, src, specials)
    post = _post_processor(tok, src, specials)
    if o.check:
        from tokenizers import Tokenizer

        try:
            tok = Tokenizer.from_file(str(existing))
        except Exception as e:  # the Rust loader raises plain Exceptions
            raise InputError(f"tokenizer.json does not load ({e})", path=existing) from e
        if tok.padding or tok.truncation:
            notes.append("the file's padding/truncation settings are ignored for the proof")
            tok.no_padding()
            tok.no_truncation()
        post = "as in the existing tokenizer.json"
    texts = builtin_corpus(sorted(special_ids)) + (_read_corpus(o.corpus) if o.corpus else [])
    name = {"sentencepiece": "sentencepiece library", "bpe": "reference GPT-2 BPE encoder",
            "wordpiece": "reference BERT WordPiece tokenizer"}[src.kind]
    result = parity(tok, encode, decode, texts, special_ids, name)
    report = TokenizerReport(
        folder=str(folder), out=str(out) if out else None, kind=src.kind,  # type: ignore[arg-type]
        family=src.family, reason=src.reason, written=False,
        vocab_size=tok.get_vocab_size(with_added_tokens=True), special_tokens=specials,
        post_processor=post, parity=result, notes=notes)
    if o.check:
        return report
    if result.rate < 1.0 and not o.accept_mismatch:
        first = result.first_mismatches[0]
        raise TokenizerParityError(
            f"parity {result.matched}/{result.examples}: the first mismatch is "
            f"{first.text[:60]!r}: expected {first.expected[:8]}, got {first.got[:8]}",
            path=folder, hint="nothing was written; --accept-mismatch writes it anyway")
    data = tok.to_str(pretty=True).encode()
    tc = dict(src.tc)
    for role, text in specials.items():
        tc.setdefault(role, text)
    if tc.get("tokenizer_class") not in (None, "PreTrainedTokenizerFast"):
        # transformers 5 rebuilds the normalizer and pre-tokenizer of family classes
        # (LlamaTokenizer, T5Tokenizer, ...) from its own defaults instead of reading
        # tokenizer.json: the generic class loads the file as written, as Llama 3 repos do
        report.notes.append(f"tokenizer_class {tc['tokenizer_class']} -> "
                            "PreTrainedTokenizerFast (loads tokenizer.json as written)")
    tc["tokenizer_class"] = "PreTrainedTokenizerFast"
    tc_bytes = (json.dumps(tc, indent=2, ensure_ascii=False) + "\n").encode()
    report.transformers_matched = _transformers_parity(data, tc_bytes, tok, texts)
    if out is None:
        write_bytes_atomic(existing, data)
        write_bytes_atomic(folder / "tokenizer_config.json", tc_bytes)
    else:
        with atomic_dir(Path(out), overwrite=o.overwrite) as tmp:
            shutil.copytree(folder, tmp, dirs_exist_ok=True)
            (tmp / "tokenizer.json").write_bytes(data)
            (tmp / "tokenizer_config.json").write_bytes(tc_bytes)
    report.written = True
    return report
