"""Tokenizer folders trained here, one per class, for the flags and layouts no real case has.

Each is trained on Python's own standard-library sources (offline, public domain for our
purposes) plus a few lines of other scripts, with the trainers of sentencepiece and
tokenizers, and written the way the class's models ship (file names, tokenizer_config).
"""

from __future__ import annotations

import base64
import json
import sysconfig
from pathlib import Path
from typing import Any

EXTRA = "\nGrüße Straße ¿Dónde? Съешь 你好世界 我们 😀 déjà vu 1,000,000.00 [INST] x [/INST]\n"


def training_text(folder: Path) -> Path:
    lib = Path(sysconfig.get_paths()["stdlib"])
    text = "\n".join((lib / f).read_text(encoding="utf-8", errors="ignore")
                     for f in ("textwrap.py", "argparse.py", "json/decoder.py", "difflib.py"))
    p = folder / "train.txt"
    p.write_text(text + EXTRA * 3, encoding="utf-8")
    return p


def spm(folder: Path, text: Path, name: str, tc: dict[str, Any], vocab: int = 600,
        **kw: Any) -> Path:
    import sentencepiece as sp

    folder.mkdir(parents=True)
    args: dict[str, Any] = {"model_type": "unigram", "character_coverage": 1.0,
                            "minloglevel": 2, "num_threads": 1} | kw
    sp.SentencePieceTrainer.train(input=str(text), model_prefix=str(folder / "m"),
                                  vocab_size=vocab, **args)
    (folder / "m.model").rename(folder / name)
    (folder / "m.vocab").unlink()
    (folder / "tokenizer_config.json").write_text(json.dumps(tc))
    return folder


def byte_bpe(folder: Path, text: Path, tc: dict[str, Any], specials: list[str],
             vocab: int = 700) -> Path:
    from tokenizers import ByteLevelBPETokenizer

    folder.mkdir(parents=True)
    t = ByteLevelBPETokenizer()
    t.train([str(text)], vocab_size=vocab, min_frequency=2, special_tokens=specials,
            show_progress=False)
    t.save_model(str(folder))
    (folder / "tokenizer_config.json").write_text(json.dumps(tc))
    return folder


def wordpiece(folder: Path, text: Path, tc: dict[str, Any], lowercase: bool) -> Path:
    from tokenizers import BertWordPieceTokenizer

    folder.mkdir(parents=True)
    t = BertWordPieceTokenizer(lowercase=lowercase, strip_accents=False)
    t.train([str(text)], vocab_size=700, show_progress=False)
    t.save_model(str(folder))
    (folder / "tokenizer_config.json").write_text(json.dumps(tc))
    return folder


TEKKEN_PATTERN = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|"
                  r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|"
                  r"\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def tekken(folder: Path, text: Path, n_special: int = 20) -> Path:
    """A tekken.json: 256 byte ranks, then the merges a byte-level BPE trainer learned."""
    from tokenizers import ByteLevelBPETokenizer

    from modelport.tok.reference import bytes_to_unicode

    folder.mkdir(parents=True)
    t = ByteLevelBPETokenizer()
    t.train([str(text)], vocab_size=700, min_frequency=2, show_progress=False)
    u2b = {v: k for k, v in bytes_to_unicode().items()}
    model = json.loads(t.to_str())["model"]
    ranks: dict[bytes, int] = {bytes([b]): b for b in range(256)}
    for m in model["merges"]:
        a, b = m.split(" ") if isinstance(m, str) else m
        tok = bytes(u2b[c] for c in a + b)
        ranks.setdefault(tok, len(ranks))
    names = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]",
             "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[TOOL_CALLS]"]
    data = {
        "config": {"pattern": TEKKEN_PATTERN, "num_vocab_tokens": len(ranks),
                   "default_vocab_size": len(ranks) + n_special,
                   "default_num_special_tokens": n_special, "version": "v7"},
        "vocab": [{"rank": r, "token_bytes": base64.b64encode(b).decode(),
                   "token_str": b.decode("utf-8", "replace")}
                  for b, r in sorted(ranks.items(), key=lambda x: x[1])],
        "special_tokens": [{"rank": i, "token_str": s, "is_control": True}
                           for i, s in enumerate(names)],
    }
    (folder / "tekken.json").write_text(json.dumps(data))
    return folder
