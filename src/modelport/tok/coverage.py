"""Proof text from the vocabulary itself: a fixed corpus cannot certify a 55k or 150k
vocabulary, so every piece's text is run too.

Each piece's surface text (what it stands for in the input: a SentencePiece ``▁`` is a space,
a byte-level piece is its bytes, a WordPiece ``##`` continues a word) appears three times: in
a space-separated list (nearly alone), and in two seeded random orders concatenated without
separators, so that competing merges meet. Pieces that are not text on their own (byte
fallback ``<0xNN>``, byte-level fragments of a UTF-8 character) are counted, not hidden; added
and special tokens are run by the fixed corpus, each inside text.
"""

from __future__ import annotations

import random
from typing import Any

from modelport._types import Record
from modelport.tok.reference import bytes_to_unicode

PER_LINE = 32


class Coverage(Record):
    """How much of the vocabulary the proof ran, and what it found."""

    vocab_size: int  # the model's pieces, added and special tokens aside
    pieces_as_text: int  # pieces whose text the proof ran
    not_text: int  # byte fallback and UTF-8 fragments: not text on their own
    lines: int
    matched: int
    known_differences: int = 0
    mismatched: int = 0
    seconds: float = 0.0

    @property
    def fraction(self) -> float:
        return self.pieces_as_text / max(self.vocab_size, 1)


def _surface(tok: Any) -> tuple[dict[int, str], int]:
    """piece id -> the text it stands for, for the pieces that are text on their own."""
    vocab: dict[str, int] = tok.get_vocab(with_added_tokens=False)
    added = {t.content for t in tok.get_added_tokens_decoder().values()}
    kind = type(tok.decoder).__name__ if tok.decoder is not None else ""
    byte_of = {c: b for b, c in bytes_to_unicode().items()}
    out: dict[int, str] = {}
    skipped = 0
    for piece, i in vocab.items():
        if piece in added:  # run by the fixed corpus, each inside text
            skipped += 1
            continue
        text: str | None
        if kind == "ByteLevel" or (kind == "" and all(c in byte_of for c in piece)):
            try:
                text = bytes(byte_of[c] for c in piece).decode("utf-8")
            except (KeyError, UnicodeDecodeError):
                text = None
        elif piece.startswith("<0x") and piece.endswith(">") and len(piece) == 6:
            text = None  # byte fallback
        else:
            text = piece.replace("▁", " ")
            if text.startswith("##"):
                text = text[2:]
            if text.endswith("</w>"):
                text = text[:-4] + " "
        if text:
            out[i] = text
    return out, len(vocab) - skipped - len(out)


def vocab_lines(tok: Any, seed: int = 0) -> tuple[list[str], int, int]:
    """(lines, pieces whose text they hold, pieces that are not text on their own)."""
    surface, not_text = _surface(tok)
    ids = sorted(surface)
    lines = [" ".join(surface[i] for i in ids[k:k + PER_LINE]).strip()
             for k in range(0, len(ids), PER_LINE)]
    rng = random.Random(seed)  # noqa: S311 - a reproducible order, not a secret
    for _ in range(2):
        order = ids[:]
        rng.shuffle(order)
        lines += ["".join(surface[i] for i in order[k:k + PER_LINE]).strip()
                  for k in range(0, len(order), PER_LINE)]
    return [x for x in lines if x], len(ids), not_text


__all__ = ["PER_LINE", "Coverage", "vocab_lines"]
