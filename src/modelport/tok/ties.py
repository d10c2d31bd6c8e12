"""SentencePiece BPE pieces whose merge order a tokenizer.json cannot express, found from the
model file before any text is run.

sentencepiece's BPE merges, at each step, the adjacent pair whose joined piece has the highest
score, and breaks a tie by position (the leftmost pair first). tokenizer.json's BPE orders
merges by rank, a total order, so two *different* pieces with the *same* score are merged in
rank order wherever both apply. The two disagree only when such pieces compete for a symbol:
a piece made of ``a + b`` and another made of ``b + d`` with the same score meet on ``a b d``,
and the left one wins in sentencepiece wherever it stands, while the merge list always prefers
the same one. Trained BPE models give every piece its own score; models extended by hand (a
Chinese vocabulary appended with score 0) are where ties compete.

Ties among runs of one character (Llama 2's ``▁▁`` .. ``▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁``, all at the lowest
score) are left out: both orders grow the leftmost chunk of a run first (the merge list ranks
a longer left part first, and the leftmost chunk is the one that has grown), so they split
every run alike; the proof text runs such runs too.
"""

from __future__ import annotations

from collections import defaultdict

NORMAL = 1  # sentencepiece's ModelProto.SentencePiece.Type.NORMAL


def _run(piece: str) -> bool:
    return len(set(piece)) == 1


def competing(vocab: list[tuple[str, float]], types: list[int]) -> list[str]:
    """The normal pieces that share their score with a different piece they compete with (see
    the module docstring), in vocabulary order."""
    ids = {p: i for i, (p, _) in enumerate(vocab)}
    by_score: dict[float, list[str]] = defaultdict(list)
    for i, (piece, score) in enumerate(vocab):
        if types[i] == NORMAL and len(piece) > 1:
            by_score[score].append(piece)
    hit: set[str] = set()
    for pieces in by_score.values():
        if len(pieces) < 2:
            continue
        left: dict[str, set[str]] = defaultdict(set)  # symbol -> pieces it starts a merge of
        right: dict[str, set[str]] = defaultdict(set)  # symbol -> pieces it ends a merge of
        for piece in pieces:
            for k in range(1, len(piece)):
                a, b = piece[:k], piece[k:]
                if a in ids and b in ids:
                    left[a].add(piece)
                    right[b].add(piece)
        for sym in left.keys() & right.keys():
            meet = right[sym] | left[sym]  # a piece ending in sym meets one starting with it
            if len(meet) > 1 and not (all(_run(p) for p in meet)
                                      and len({p[0] for p in meet}) == 1):
                hit |= meet
    return sorted(hit, key=ids.__getitem__)


__all__ = ["competing"]
