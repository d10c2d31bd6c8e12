"""check-data for continued pre-training: a folder of text files, streamed in pieces."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from modelport.errors import InputError
from modelport.package import data_rules as R
from modelport.package.data_check import MAX_TOKENS, DataReport, _Findings


def _read_text(f: Path, tok: Any, fs: _Findings, chunk: int = 1 << 22) -> int:
    """Stream a text file in 4 MiB pieces: UTF-8 checked throughout (incrementally, so a
    character split between pieces is fine), tokens counted piece by piece, each cut after
    its last newline so no word is split (a piece without one is taken whole)."""
    import codecs

    dec = codecs.getincrementaldecoder("utf-8")()
    tokens, carry, offset = 0, "", 0
    with f.open("rb") as fh:
        while True:
            raw = fh.read(chunk)
            try:
                text = carry + dec.decode(raw, final=not raw)
            except UnicodeDecodeError as e:
                fs.add("encoding.utf8", "error", f"not UTF-8 (byte {offset + e.start})", str(f))
                return tokens
            offset += len(raw)
            cut = text.rfind("\n") + 1 if raw else len(text)
            if cut == 0 and len(text) >= chunk:  # no newline in a whole piece: never carry more
                cut = len(text)
            piece, carry = text[:cut], text[cut:]
            if tok is not None and piece.strip():
                tokens += len(tok.encode(piece, add_special_tokens=False).ids)
            if not raw:
                return tokens


def pretraining(src: Path, tok: Any, ctx: int, bm: R.BaseModel | None, fs: _Findings,
                 t0: float) -> DataReport:
    """Continued pre-training: text files of 60-256 MB (over 1 GB: slow), at least 1.5 M
    tokens recommended, at most 10 billion; each file streamed once."""
    if not src.exists():
        raise InputError("does not exist", path=src)
    files = R.pretraining_files(src)
    if not files:
        raise InputError("no .txt files for continued pre-training", path=src)
    n_bytes = tokens = 0
    sizes = {f: f.stat().st_size for f in files}
    for f, size in sizes.items():
        mb = size / 2**20
        if not R.PRETRAIN_MIN_MB <= mb <= R.PRETRAIN_MAX_MB:
            fs.add("pretraining.file_size", "warning", f"continued pre-training works on files "
                   f"of {R.PRETRAIN_MIN_MB}-{R.PRETRAIN_MAX_MB} MB", f"{f} ({mb:.1f} MB)")
        if size > R.PRETRAIN_SLOW_GB * 2**30:
            fs.add("pretraining.file_slow", "warning", "files over 1 GB may take longer to "
                   "process", str(f))
    if tok is None and sum(sizes.values()) // 4 > MAX_TOKENS:
        n_bytes = sum(sizes.values())  # refused whatever the contents: not read
    else:
        for f in files:
            n_bytes += sizes[f]
            tokens += _read_text(f, tok, fs)
    counted = tokens if tok is not None else n_bytes // 4
    est = "" if tok is not None else " (estimated: bytes / 4)"
    if counted < R.PRETRAIN_MIN_TOKENS:
        fs.add("tokens.pretraining_few", "warning", f"{counted:,} tokens{est}: the page "
               "recommends at least 1.5 million for continued pre-training", str(src))
    if counted > MAX_TOKENS:
        fs.add("tokens.too_many", "error", f"{counted:,} tokens{est}: over the 10 billion the "
               "service accepts", str(src))
    return DataReport(target="databricks-fine-tuning", sources=[str(f) for f in files],
                      format="text", lines=0, examples=len(files), bytes=n_bytes,
                      tokens=tokens if tok is not None else None, tokens_estimated=n_bytes // 4,
                      context_length=ctx, base_model=bm, findings=list(fs.by_kind.values()),
                      seconds=round(time.perf_counter() - t0, 3))
