"""``tokenizer``: write tokenizer.json from slow tokenizer files, proven against the class.

The class (see ``classes``) decides how the file is read; the builders write tokenizer.json
and a reference that runs the file's own library (sentencepiece, a BPE merger, WordPiece,
tiktoken) with the class's semantics. Every corpus line is encoded by both, with the class's
special tokens; a line differs either by a known class behaviour that tokenizer.json cannot
express (named and listed) or it is a mismatch, which stops the write.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from modelport._io import jsonio
from modelport._io.atomic import atomic_dir, write_bytes_atomic
from modelport._io.paths import check_output
from modelport._types import Record
from modelport.errors import (
    AmbiguousTokenizerError,
    InputError,
    OutputExistsError,
    TokenizerParityError,
)
from modelport.tok import bpe, spm, tiktoken_, wordpiece
from modelport.tok.classes import CLASSES, Resolved, resolve
from modelport.tok.corpus import corpus as builtin_corpus
from modelport.tok.coverage import Coverage, vocab_lines
from modelport.tok.slow import SlowRef
from modelport.tok.source import DECODE_FLAGS, Source


class TokenizerOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    family: str | None = Field(None, description="the tokenizer class the model was trained "
                               "with, as a family (llama, t5, mbart, roberta, ...) or a class "
                               "name (MBartTokenizer)")
    accept_guess: bool = Field(False, description="when the files do not state the class, "
                               "take the first candidate (recorded in the report)")
    corpus: Path | None = Field(None, description="extra parity corpus: text lines or JSONL "
                                "with a 'text' field")
    accept_mismatch: bool = Field(False, description="write even when lines differ")
    check: bool = Field(False, description="only run the parity proof on an existing "
                        "tokenizer.json")
    overwrite: bool = False


class Mismatch(Record):
    text: str
    expected: list[int]
    got: list[int]
    why: str = ""


class ParityResult(Record):
    reference: str
    examples: int
    matched: int
    known_differences: int = 0
    mismatched: int = 0
    rate: float
    decode_checked: int
    decode_matched: int
    first_mismatches: list[Mismatch]
    first_known: list[Mismatch] = Field(default_factory=list)


class TokenizerReport(Record):
    folder: str
    out: str | None
    kind: Literal["sentencepiece", "bpe", "wordpiece", "tiktoken"]
    tokenizer_class: str
    class_source: str = Field(description="where the class came from")
    guessed: bool = False
    candidates: list[str] = Field(default_factory=list)
    family: str
    reason: str
    written: bool
    certified: bool = Field(False, description="every line identical to the class's own "
                            "semantics, the class stated by the files or --family")
    vocab_size: int
    special_tokens: dict[str, str]
    post_processor: str
    flags_applied: dict[str, Any] = Field(default_factory=dict)
    flags_carried: dict[str, Any] = Field(default_factory=dict, description="decode-time "
                                          "flags kept in tokenizer_config.json for "
                                          "transformers")
    flags_ignored: dict[str, Any] = Field(default_factory=dict)
    parity: ParityResult
    coverage: Coverage | None = Field(None, description="the proof over the vocabulary's "
                                      "own pieces (see modelport.tok.coverage)")
    coverage_mismatches: list[Mismatch] = Field(default_factory=list)
    known_static: list[str] = Field(default_factory=list, description="behaviours found in "
                                    "the model file before any text ran that tokenizer.json "
                                    "cannot express (never certified)")
    transformers_matched: int | None = Field(
        None, description="corpus lines that transformers' AutoTokenizer, loading the written "
        "files, encodes to the same ids as tokenizers alone")
    notes: list[str]
    checked: bool = Field(False, description="--check: an existing tokenizer.json was proved")

    def summary(self) -> str:
        """What ``modelport tokenizer`` prints."""
        from modelport.tok.summary import summary

        return summary(self)


BUILDERS = {"sentencepiece": spm.build, "bpe": bpe.build, "wordpiece": wordpiece.build,
            "tiktoken": tiktoken_.build}


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


def line_status(tok: Any, ref: SlowRef, text: str) -> tuple[str, list[int], list[int]]:
    """"match", "known" (only a class behaviour tokenizer.json cannot express differs) or
    "mismatch", with the reference's ids and tokenizer.json's."""
    want = ref.encode(text)
    got = tok.encode(text, add_special_tokens=True).ids
    if got == want:
        return "match", want, got
    if got == ref.encode(text, quirks=False):
        return "known", want, got
    if ref.tied and any(t in text for t in ref.tied):
        return "tied", want, got
    return "mismatch", want, got


def parity(tok: Any, ref: SlowRef, texts: list[str], reference: str,
           decode: bool = True) -> ParityResult:
    """Encode every text (with the class's special tokens) by both; compare ids, and the
    decoded text where the line has no added token and the reference can decode."""
    matched = known = 0
    bad: list[Mismatch] = []
    known_ex: list[Mismatch] = []
    dec_checked = dec_ok = 0
    added_re = re.compile("|".join(map(re.escape, ref.added))) if ref.added else None
    for text in texts:
        status, want, got = line_status(tok, ref, text)
        if status == "match":
            matched += 1
        elif status in ("known", "tied"):
            known += 1
            if len(known_ex) < 5:
                known_ex.append(Mismatch(
                    text=text[:200], expected=want[:40], got=got[:40],
                    why="a class behaviour tokenizer.json cannot express" if status == "known"
                    else "pieces tied in score: sentencepiece breaks ties by position"))
        elif len(bad) < 5:
            bad.append(Mismatch(text=text[:200], expected=want[:40], got=got[:40]))
        if decode and ref.decode is not None and not (added_re and added_re.search(text)):
            expect = ref.decode(ref.tokens(text))
            if expect is not None:
                dec_checked += 1
                body = tok.encode(text, add_special_tokens=False).ids
                dec_ok += tok.decode(body, skip_special_tokens=True) == expect
    n = len(texts)
    return ParityResult(reference=reference, examples=n, matched=matched,
                        known_differences=known, mismatched=n - matched - known,
                        rate=matched / n if n else 1.0, decode_checked=dec_checked,
                        decode_matched=dec_ok, first_mismatches=bad, first_known=known_ex)


def _transformers_parity(data: bytes, tc_bytes: bytes, tok: Any, texts: list[str]) -> int:
    """Load the files as a platform would (AutoTokenizer) and count identical encodings."""
    import tempfile

    from transformers import AutoTokenizer

    from modelport._trust import guard

    with tempfile.TemporaryDirectory(prefix="modelport-tok-") as d:
        Path(d, "tokenizer.json").write_bytes(data)
        Path(d, "tokenizer_config.json").write_bytes(tc_bytes)
        with guard(d):
            hf = AutoTokenizer.from_pretrained(d, trust_remote_code=False)
        return sum(hf(t, add_special_tokens=True)["input_ids"] == tok.encode(t).ids
                   for t in texts)


def _coverage(tok: Any, ref: SlowRef, name: str) -> tuple[Coverage, list[Mismatch]]:
    """The proof over the vocabulary's own pieces (``tok.coverage``), and its first
    mismatches."""
    t0 = time.perf_counter()
    lines, n, not_text = vocab_lines(tok)
    r = parity(tok, ref, lines, name, decode=False)  # ids only: Coverage keeps no decode
    return Coverage(vocab_size=n + not_text, pieces_as_text=n, not_text=not_text,
                    lines=len(lines), matched=r.matched, known_differences=r.known_differences,
                    mismatched=r.mismatched, seconds=round(time.perf_counter() - t0, 2)
                    ), r.first_mismatches


def corpus_for(ref: SlowRef) -> list[str]:
    specials = sorted(a for a in ref.added)
    lines = builtin_corpus(specials + [t for t in ref.corpus_tokens if t not in ref.added])
    # every added token at least once, inside text
    every = specials + [t for t in ref.corpus_tokens if t not in ref.added]
    for i in range(0, len(every), 40):
        chunk = every[i:i + 40]
        lines.append(" x".join(chunk) + " end")
    return lines


def tokenizer(folder: str | Path, out: str | Path | None = None,
              options: TokenizerOptions | None = None, **kwargs: Any) -> TokenizerReport:
    """Write ``tokenizer.json`` for a folder that has only slow tokenizer files.

    The tokenizer class comes from ``tokenizer_config.json``, ``config.json`` or ``family``;
    files that do not state it are refused (naming the candidates) unless ``accept_guess``.

    Raises:
        TokenizerParityError: a line differs from the class's reference (nothing written).
        AmbiguousTokenizerError: the class is not stated (exit 1), candidates named.
        InputError, UnsupportedError, MissingDependencyError.
    """
    o = options or TokenizerOptions(**kwargs)
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("is not a folder", path=folder)
    jsonio.require_valid(folder)
    existing = folder / "tokenizer.json"
    if existing.exists() and not (o.check or o.overwrite or out is not None):
        raise OutputExistsError("tokenizer.json already exists", path=existing,
                                hint="run the parity proof on it with --check, or --overwrite")
    if o.check and not existing.is_file():
        raise InputError("no tokenizer.json to check", path=folder)
    if out is not None:
        check_output(folder, Path(out), overwrite=o.overwrite)
    src = Source(folder)
    notes: list[str] = []
    others: list[SlowRef] = []  # candidates whose files are the same: each proved below
    try:
        res = resolve(src, o.family, o.accept_guess)
    except AmbiguousTokenizerError as refused:
        res, others = _same_files(src, refused)
    try:
        tok, ref, info = BUILDERS[res.kind](src, res, notes)
    except InputError as e:
        if e.path is None:
            e.path = str(folder)
        raise
    reason = f"{res.name} ({res.kind}) from {res.source}"
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
        info["post"] = "as in the existing tokenizer.json"
    texts = corpus_for(ref) + (_read_corpus(o.corpus) if o.corpus else [])
    name = f"{res.name} semantics over the {res.kind} file's own library"
    result = parity(tok, ref, texts, name)
    for other in others:  # the class is not stated: the file must be right for every candidate
        alt = parity(tok, other, corpus_for(other), name)
        if alt.mismatched or alt.known_differences != result.known_differences:
            names = ", ".join(res.candidates)
            raise AmbiguousTokenizerError(
                f"the tokenizer class is not stated, and the candidates {names} write the "
                "same file but encode differently", path=folder,
                hint="pass --family for the class the model was trained with")
    cov, cov_bad = _coverage(tok, ref, name)
    applied = {k: v for k, v in info["applied"].items() if v is not None}
    carried = {k: v for k, v in src.flags().items() if k in DECODE_FLAGS}
    carried.update({k: v for k, v in info.get("tc_defaults", {}).items() if k not in carried})
    ignored = {k: v for k, v in src.flags().items() if k not in applied and k not in carried}
    report = TokenizerReport(
        folder=str(folder), out=str(out) if out else None, kind=res.kind,
        tokenizer_class=res.name, class_source=res.source, guessed=res.guess,
        candidates=res.candidates, family=res.family, reason=reason, written=False,
        vocab_size=tok.get_vocab_size(with_added_tokens=True), special_tokens=info["roles"],
        post_processor=info["post"], flags_applied=applied, flags_carried=carried,
        flags_ignored=ignored,
        parity=result, coverage=cov, notes=notes, checked=o.check)
    report.known_static = list(info.get("static", []))
    report.certified = result.mismatched == 0 and cov.mismatched == 0 and not res.guess \
        and not report.known_static
    if cov.mismatched:
        notes.append(f"the vocabulary proof: {cov.mismatched} of {cov.lines} lines of the "
                     "vocabulary's own pieces differ from the class (listed under "
                     "coverage_mismatches); not certified")
        report.coverage_mismatches = cov_bad
    if result.known_differences:
        notes.append(f"{result.known_differences} line(s) differ only by a class behaviour "
                     "tokenizer.json cannot express (listed under known differences)")
    if o.check:
        return report
    if result.mismatched and not o.accept_mismatch:
        first = result.first_mismatches[0]
        raise TokenizerParityError(
            f"{result.mismatched} of {result.examples} lines differ from {res.name}: the first "
            f"is {first.text[:60]!r}: expected {first.expected[:8]}, got {first.got[:8]}",
            path=folder, hint="nothing was written; --accept-mismatch writes it anyway")
    data = tok.to_str(pretty=True).encode()
    tc = {k: v for k, v in src.tc.items() if k != "tokenizer_file"}
    for role, text in info["roles"].items():
        if tc.get(role) is None:
            tc[role] = text
    for k, v in info.get("tc_defaults", {}).items():
        tc.setdefault(k, v)
    tc["tokenizer_class"] = "PreTrainedTokenizerFast"
    notes.append(f"tokenizer_config tokenizer_class {src.tc.get('tokenizer_class') or 'absent'}"
                 " -> PreTrainedTokenizerFast (loads tokenizer.json as written: the class's "
                 "template and flags are in the file)")
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


def _same_files(src: Source, refused: AmbiguousTokenizerError) -> tuple[Resolved, list[SlowRef]]:
    """A class the files do not state is no guess when every candidate writes the same
    tokenizer.json and tokenizer_config (BERT or DistilBERT for a bare vocab.txt): the first is
    taken and the proof is run against each candidate's reference. Else ``refused`` stands."""
    cands = resolve(src, None, True).candidates
    built = []
    for c in cands:
        r = Resolved(c, *CLASSES[c], source="")
        try:
            tok, ref, info = BUILDERS[r.kind](src, r, [])
        except InputError:
            raise refused from None
        built.append((tok.to_str(), json.dumps([info["roles"], info.get("tc_defaults", {}),
                                                info["applied"]], sort_keys=True), ref))
    if len(cands) < 2 or len({(a, b) for a, b, _ in built}) != 1:
        raise refused
    first = cands[0]
    res = Resolved(first, *CLASSES[first], candidates=cands,
                   source=f"not stated; the candidates {', '.join(cands)} write the same files "
                          "(proved against each)")
    return res, [ref for _, _, ref in built[1:]]

