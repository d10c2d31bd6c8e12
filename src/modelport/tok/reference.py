"""Reference tokenizers, independent of the Rust ``tokenizers`` library, for parity proofs.

* SentencePiece: the ``sentencepiece`` library itself.
* Byte-level BPE: the GPT-2 algorithm (regex pre-split, byte-to-unicode map, lowest-rank merge
  first) written from the original description.
* WordPiece: BERT's basic tokenizer as transformers 4 runs it (clean, CJK split, NFC,
  lower-case and accent strip, punctuation split) and greedy longest-match-first word pieces.
* OpenAI GPT's ``</w>`` BPE.

The class semantics around them (added tokens, templates, flags) are in ``tok/slow.py``.
"""

from __future__ import annotations

import itertools
import unicodedata
from functools import cache

GPT2_PATTERN = (r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
QWEN2_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"""
                 r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")


def merge_pair(parts: list[str], pair: tuple[str, str]) -> list[str]:
    """Merge every occurrence of ``pair``, left to right (one BPE step)."""
    merged: list[str] = []
    j = 0
    while j < len(parts):
        if j < len(parts) - 1 and (parts[j], parts[j + 1]) == pair:
            merged.append(parts[j] + parts[j + 1])
            j += 2
        else:
            merged.append(parts[j])
            j += 1
    return merged


@cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable unicode characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


class ByteLevelBPE:
    """GPT-2 style byte-level BPE."""

    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]], pattern: str,
                 nfc: bool = False) -> None:
        import regex

        self.vocab = vocab
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.pat = regex.compile(pattern)
        self.nfc = nfc
        self.byte_map = bytes_to_unicode()
        self._cache: dict[str, list[str]] = {}

    def _bpe(self, word: str) -> list[str]:
        if word in self._cache:
            return self._cache[word]
        parts = list(word)  # the cache key is the word: dropped characters change it
        while len(parts) > 1:
            best = min(((self.ranks.get(p, 1 << 60), i) for i, p in
                        enumerate(itertools.pairwise(parts))))
            if best[0] == 1 << 60:
                break
            i = best[1]
            parts = merge_pair(parts, (parts[i], parts[i + 1]))
        self._cache[word] = parts
        return parts

    def tokens(self, text: str, drop_unknown: bool = False) -> list[str]:
        """Byte-level BPE tokens; ``drop_unknown`` leaves out byte characters missing from
        the vocabulary before merging, as the tokenizers library does without an unk token."""
        if self.nfc:
            text = unicodedata.normalize("NFC", text)
        out: list[str] = []
        for piece in self.pat.findall(text):
            chars = "".join(self.byte_map[b] for b in piece.encode("utf-8"))
            if drop_unknown:
                chars = "".join(c for c in chars if c in self.vocab)
                if not chars:
                    continue
            out += self._bpe(chars)
        return out


def _is_punct(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return any(a <= cp <= b for a, b in (
        (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
        (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)))


class WordPieceRef:
    """BERT's original basic + WordPiece tokenization."""

    def __init__(self, vocab: dict[str, int], unk: str, lowercase: bool,
                 strip_accents: bool | None, chinese_chars: bool = True) -> None:
        self.vocab, self.unk = vocab, unk
        self.lowercase = lowercase
        self.strip_accents = lowercase if strip_accents is None else strip_accents
        self.chinese = chinese_chars

    def basic_tokens(self, text: str) -> list[str]:
        """transformers 4's BasicTokenizer (it NFC-normalizes before splitting)."""
        cleaned = []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD or (unicodedata.category(ch).startswith("C")
                                           and ch not in "\t\n\r"):
                continue
            if ch in " \t\n\r" or unicodedata.category(ch) == "Zs":
                cleaned.append(" ")
            elif self.chinese and _is_cjk(cp):
                cleaned.append(f" {ch} ")
            else:
                cleaned.append(ch)
        out: list[str] = []
        joined = unicodedata.normalize("NFC", "".join(cleaned))
        for word in joined.split():
            if self.lowercase:
                word = word.lower()
            if self.strip_accents:
                word = "".join(c for c in unicodedata.normalize("NFD", word)
                               if unicodedata.category(c) != "Mn")
            cur = ""
            for ch in word:
                if _is_punct(ch):
                    if cur:
                        out.append(cur)
                    out.append(ch)
                    cur = ""
                else:
                    cur += ch
            if cur:
                out.append(cur)
        return out

    def _pieces(self, word: str) -> list[str]:
        if len(word) > 100:
            return [self.unk]
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                sub = word[start:end] if start == 0 else "##" + word[start:end]
                if sub in self.vocab:
                    pieces.append(sub)
                    break
                end -= 1
            else:
                return [self.unk]
            start = end
        return pieces

    def tokens(self, text: str) -> list[str]:
        """transformers 4's BertTokenizer._tokenize."""
        return [p for w in self.basic_tokens(text) for p in self._pieces(w)]


class SuffixBPE:
    """OpenAI GPT's BPE: words end in ``</w>``, lowest-rank merge first."""

    def __init__(self, merges: list[tuple[str, str]]) -> None:
        self.ranks = {m: i for i, m in enumerate(merges)}
        self._cache: dict[str, list[str]] = {}

    def pieces(self, token: str) -> list[str]:
        if token in self._cache:
            return self._cache[token]
        word = [*token[:-1], token[-1] + "</w>"]
        while len(word) > 1:
            pairs = list(itertools.pairwise(word))
            best = min(pairs, key=lambda p: self.ranks.get(p, 1 << 60))
            if best not in self.ranks:
                break
            word = merge_pair(word, best)
        self._cache[token] = word
        return word

