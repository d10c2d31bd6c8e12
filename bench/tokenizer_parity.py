"""Parity of modelport's tokenizer.json vs transformers' own conversion, on real files.

For each real tokenizer in ../shared/real/tok: ids identical to the reference (sentencepiece
itself, or the independent BPE/WordPiece encoders) on the built-in corpus, for modelport and
for what transformers 5 builds from the same slow files (its family class, from_pretrained).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import modelport
from modelport.convert import tokenizer as T
from modelport.convert._tok_corpus import corpus

REAL = Path(__file__).resolve().parents[2] / "shared" / "real" / "tok"
CLASSES = {"sentencepiece": {"llama": "LlamaTokenizer", "t5": "T5Tokenizer"},
           "bpe": {"gpt2": "GPT2Tokenizer", "roberta": "RobertaTokenizer"},
           "wordpiece": {"bert": "BertTokenizer"}}


def transformers_rate(folder: Path, kind: str, family: str, encode: object,
                      specials: dict[str, int]) -> str:
    import transformers

    cls = getattr(transformers, CLASSES[kind][family])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            tok = cls.from_pretrained(folder)
        except Exception as e:  # transformers' own failure is a result here
            return f"fails ({type(e).__name__})"
    texts = corpus(sorted(specials))
    run = T.ref.with_specials(encode, specials)
    ok = sum(tok(t, add_special_tokens=False)["input_ids"] == run(t) for t in texts)
    return f"{ok}/{len(texts)}"


def main() -> None:
    if not REAL.exists():
        sys.exit(f"{REAL} not found")
    rows = ["| tokenizer | kind | modelport parity | transformers 5 conversion |",
            "|---|---|---|---|"]
    for case in sorted(p.name for p in REAL.iterdir()):
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp) / case
            shutil.copytree(REAL / case, d)
            try:
                rep = modelport.tokenizer(d)
            except modelport.errors.ModelportError as e:
                rows.append(f"| {case} | - | refused: {e.message[:70]} | - |")
                continue
            src = T._Source(REAL / case, None)
            sp = src.specials()
            _, enc, _ = {"sentencepiece": T._build_spm, "bpe": T._build_bpe,
                         "wordpiece": T._build_wordpiece}[src.kind](src, sp, [])
            from tokenizers import Tokenizer

            ids = {at.content: i for i, at in
                   Tokenizer.from_file(str(d / "tokenizer.json"))
                   .get_added_tokens_decoder().items()
                   if at.special or src.kind != "sentencepiece"}
            theirs = transformers_rate(REAL / case, src.kind, src.family, enc, ids)
            p = rep.parity
            rows.append(f"| {case} | {rep.kind} ({rep.family}) | {p.matched}/{p.examples} | "
                        f"{theirs} |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
