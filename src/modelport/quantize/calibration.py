"""Calibration text: the built-in multilingual and code set, or the user's text / JSONL file.

Every document is tokenized with the model's own tokenizer and cut into windows of at most
``seqlen`` tokens; the first ``samples`` windows (in file order) are used. The built-in set
(``data/calibration.jsonl``) was written for modelport: prose in 20 languages, instructions,
chat, code in seven languages, JSON, YAML and mathematics; four of its documents are held out
of calibration to measure the quantized model's logits.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from modelport._io import jsonio
from modelport._types import Record
from modelport.errors import InputError

BUILTIN = "builtin"
MIN_TOKENS = 8  # shorter windows carry too little signal; GPTQModel drops them too


class Calibration(Record):
    """What was fed to the quantizer."""

    source: str
    documents: int
    samples: int
    tokens: int
    seqlen: int


def builtin_texts(split: str = "calibration") -> list[str]:
    """The documents of the built-in set: ``calibration`` or ``heldout`` (for verification)."""
    raw = resources.files("modelport.quantize").joinpath("data", "calibration.jsonl").read_text(
        encoding="utf-8")
    rows = [json.loads(line) for line in raw.splitlines() if line.strip()]
    return [r["text"] for r in rows if r["split"] == split]


def read_texts(path: str | Path) -> list[str]:
    """Documents from a file: JSONL with a ``text`` field per line, or plain text where blank
    lines separate documents."""
    p = Path(path)
    try:
        raw = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read calibration text: {e}", path=p,
                         hint="give a UTF-8 text file or JSONL with a 'text' field") from e
    texts: list[str] = []
    if p.suffix in (".jsonl", ".json") or raw.lstrip().startswith("{"):
        for n, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = jsonio.loads(line)
            except ValueError as e:
                raise InputError(f"line {n} is not JSON: {e}", path=p,
                                 hint="one JSON object with a 'text' field per line") from e
            if not isinstance(rec, dict) or not isinstance(rec.get("text"), str):
                raise InputError(f"line {n} has no string field 'text'", path=p,
                                 hint="one JSON object with a 'text' field per line")
            texts.append(rec["text"])
    else:
        texts = [block.strip() for block in raw.split("\n\n") if block.strip()]
    if not texts:
        raise InputError("the calibration file holds no text", path=p)
    return texts


def samples(tokenizer: Any, source: str | Path = BUILTIN, *, n: int = 128, seqlen: int = 512
            ) -> tuple[list[dict[str, list[int]]], Calibration]:
    """Token windows for the quantizer, and a record of them.

    Raises:
        InputError: unreadable file, or fewer than one usable window.
    """
    if n < 1 or seqlen < MIN_TOKENS:
        raise InputError(f"need at least 1 sample of {MIN_TOKENS} tokens (got {n} x {seqlen})")
    texts = builtin_texts() if str(source) == BUILTIN else read_texts(source)
    out: list[dict[str, list[int]]] = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=True)["input_ids"]
        for start in range(0, len(ids), seqlen):
            window = ids[start:start + seqlen]
            if len(window) >= MIN_TOKENS:
                out.append({"input_ids": window, "attention_mask": [1] * len(window)})
        if len(out) >= n:
            break
    out = out[:n]
    if not out:
        raise InputError(f"no calibration window of at least {MIN_TOKENS} tokens",
                         path=None if str(source) == BUILTIN else Path(source),
                         hint="give longer calibration text")
    return out, Calibration(source=str(source), documents=len(texts), samples=len(out),
                            tokens=sum(len(s["input_ids"]) for s in out), seqlen=seqlen)
