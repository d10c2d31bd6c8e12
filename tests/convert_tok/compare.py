"""One real or trained tokenizer case: modelport's tokenizer.json against the oracle.

Shared by the tests (assertions) and ``bench/tokenizer_parity.py`` (the README table). The
truth for a line is the authors' tokenizer.json where the case ships one, else the slow class
of transformers 4.57.6 (or Meta's llama-models / mistral-common for their files).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelport.tok import run
from modelport.tok.classes import resolve
from modelport.tok.source import Source
from tests.convert_tok.oracle_client import ask


@dataclass
class Case:
    name: str
    folder: Path
    family: str | None = None  # what the test passes as --family (bare files)
    oracle_class: str | None = None  # the slow class, when the folder does not state it
    oracle_init: dict[str, Any] = field(default_factory=dict)
    tiktoken: str | None = None  # llama3.1: the oracle is Meta's own tokenizer.py
    tekken: bool = False  # the oracle is mistral-common


@dataclass
class Row:
    case: str
    tokenizer_class: str
    class_source: str
    lines: int
    identical: int  # tokenizer.json ids == the truth
    reported_match: int
    reported_known: int
    reported_mismatch: int
    false_certificates: list[str]  # lines the report counts identical where the truth differs
    unexplained: list[str]  # lines that differ from the truth, not listed as known
    transformers4_load: int  # our files loaded by transformers 4 == the truth
    decode: tuple[int, int]  # decode identical to the slow class (both skip settings), of
    decode_fast: tuple[int, int]  # ... to the authors' file, else transformers 4's converter
    converter: str  # transformers 4.57.6's own fast converter vs the truth
    transformers5: str  # transformers 5's own conversion of the slow files vs the truth
    truth: str
    coverage: str = ""  # the vocabulary proof: pieces run as text / vocabulary, seconds
    certified: bool = False
    known_static: int = 0  # behaviours found in the model file (tok.ties), never certified


def _transformers5(folder: Path, cls: str | None, texts: list[str], truth: list[list[int]]
                   ) -> str:
    import transformers

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if cls:
                tok = getattr(transformers, cls).from_pretrained(folder)
            else:
                tok = transformers.AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
            ids = [tok(t, add_special_tokens=True)["input_ids"] for t in texts]
        except Exception as e:  # transformers' own failure is a result here
            return f"fails ({type(e).__name__})"
    return f"{sum(a == b for a, b in zip(ids, truth, strict=True))}/{len(texts)}"


def _reference(case: Case, out: Path) -> tuple[Any, Any]:
    """The class reference modelport proves against, and the written tokenizer.json."""
    from tokenizers import Tokenizer

    src = Source(case.folder)
    res = resolve(src, case.family, False)
    _, ref, _ = run.BUILDERS[res.kind](src, res, [])
    return ref, Tokenizer.from_file(str(out / "tokenizer.json"))


def _ask_truth(case: Case, texts: list[str], **extra: Any) -> tuple[dict[str, Any], Any]:
    """The oracle's answer for ``texts`` and its truth (the authors' file, else the slow
    class or the vendor's own tokenizer)."""
    req: dict[str, Any] = {"folder": str(case.folder), "texts": texts,
                           "class": case.oracle_class, "init": case.oracle_init, **extra}
    if case.tiktoken:
        req["tiktoken"] = case.tiktoken
    if case.tekken:
        req["tekken"] = True
    authors = case.folder / "ref" / "tokenizer.json"
    if authors.is_file():
        req["ref"] = str(authors)
    o = ask(req)
    return o, o.get("ref") or o["slow"]


def run_case(case: Case, out: Path, with_transformers5: bool = False) -> Row:
    rep = run.tokenizer(case.folder, out, family=case.family, accept_mismatch=True,
                        overwrite=True)
    ref, tok = _reference(case, out)
    texts = run.corpus_for(ref)
    statuses = [run.line_status(tok, ref, t)[0] for t in texts]
    o, truth = _ask_truth(case, texts, ours=str(out))
    ours = [tok.encode(t).ids for t in texts]
    false_cert = [t for t, s, a, b in zip(texts, statuses, ours, truth, strict=True)
                  if s == "match" and a != b]
    unexplained = [t for t, s, a, b in zip(texts, statuses, ours, truth, strict=True)
                   if s not in ("known", "tied") and a != b]
    # tiktoken/mistral-common decode without a skip_special_tokens setting: compare the first
    k = 2 if o["slow_decode"] and o["slow_decode"][0][1] is not None else 1
    dec = sum(x[:k] == y[:k] for x, y in zip(o["ours_decode"], o["slow_decode"], strict=True))
    fd = o.get("fast_decode")
    dec_fast = sum(x == y for x, y in zip(o["ours_decode"], fd, strict=True)) if fd else 0
    conv = o.get("fast")
    return Row(
        case=case.name, tokenizer_class=rep.tokenizer_class, class_source=rep.class_source,
        lines=len(texts), identical=sum(a == b for a, b in zip(ours, truth, strict=True)),
        reported_match=rep.parity.matched, reported_known=rep.parity.known_differences,
        reported_mismatch=rep.parity.mismatched, false_certificates=false_cert,
        unexplained=unexplained,
        transformers4_load=sum(a == b for a, b in zip(o["ours"], truth, strict=True)),
        decode=(dec, len(texts)), decode_fast=(dec_fast, len(texts) if fd else 0),
        converter=(f"{sum(a == b for a, b in zip(conv, truth, strict=True))}/{len(texts)}"
                   if conv else o.get("fast_error", "none")[:40]),
        transformers5=(_transformers5(case.folder, case.oracle_class, texts, truth)
                       if with_transformers5 else "-"),
        truth="authors' tokenizer.json" if o.get("ref") else o.get("class", "?"),
        coverage=(f"{rep.coverage.pieces_as_text}/{rep.coverage.vocab_size}, "
                  f"{rep.coverage.seconds:g} s" if rep.coverage else "-"),
        certified=rep.certified, known_static=len(rep.known_static))


def vocab_check(case: Case, out: Path) -> tuple[int, int, int]:
    """The vocabulary proof's lines for the files written at ``out``, against the truth:
    (lines, ids identical to the truth, lines the proof calls identical where the truth
    differs)."""
    from modelport.tok.coverage import vocab_lines

    ref, tok = _reference(case, out)
    texts = vocab_lines(tok)[0]
    _, truth = _ask_truth(case, texts, truth_only=True)
    ours = [tok.encode(t).ids for t in texts]
    said = [run.line_status(tok, ref, t)[0] == "match" for t in texts]
    return (len(texts), sum(a == b for a, b in zip(ours, truth, strict=True)),
            sum(s and a != b for s, a, b in zip(said, ours, truth, strict=True)))
