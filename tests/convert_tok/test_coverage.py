"""The vocabulary proof: every piece's text is run, so a piece the fixed corpus never meets
still counts. A WordPiece vocabulary holding U+0E00 (an unassigned code point, which the slow
BertTokenizer deletes as a control character and tokenizers' normaliser keeps) passes the
fixed corpus but not the vocabulary proof; transformers 4.57.6's slow class (the oracle)
confirms the difference, and the report does not certify the file."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

import modelport
from modelport.cli.main import cli
from tests.convert_tok.oracle_client import ask

WORDS = ["the", "cat", "sat", "on", "mat", "dog", "ran", "un", "##able", "##s", "##ing",
         "play", "a", "b", "c", ".", ",", "!", "x", "y"]


def _bert(folder: Path, extra: list[str]) -> Path:
    folder.mkdir()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *extra]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "BertTokenizer", "do_lower_case": False}))
    return folder


def test_a_piece_the_corpus_never_meets_is_found(tmp_path: Path) -> None:
    src = _bert(tmp_path / "bert", ["\u0e00"])
    rep = modelport.tokenizer(src, tmp_path / "out")
    assert rep.written and rep.parity.mismatched == 0  # the fixed corpus alone passes
    cov = rep.coverage
    assert cov is not None and cov.pieces_as_text == cov.vocab_size == len(WORDS) + 1
    assert cov.mismatched >= 1 and not rep.certified
    line = next(m.text for m in rep.coverage_mismatches if "\u0e00" in m.text)
    truth = ask({"folder": str(src), "class": "BertTokenizer", "init": {"do_lower_case": False},
                 "texts": [line], "ours": str(tmp_path / "out")})
    assert truth["slow"][0] != truth["ours"][0]  # the slow class itself disagrees with the file
    r = CliRunner().invoke(cli, ["tokenizer", str(src), "--out", str(tmp_path / "cli")])
    assert r.exit_code == 0 and "vocabulary proof: 21 of 21 pieces" in r.stdout, r.output
    assert "(100%)" not in r.stdout


def test_a_vocabulary_run_whole_is_certified(tmp_path: Path) -> None:
    src = _bert(tmp_path / "bert", [])
    rep = modelport.tokenizer(src, tmp_path / "out")
    cov = rep.coverage
    assert cov is not None and cov.mismatched == 0 and cov.fraction == 1.0 and rep.certified
    truth = ask({"folder": str(src), "class": "BertTokenizer", "init": {"do_lower_case": False},
                 "texts": [" ".join(WORDS).replace(" ##", "")], "ours": str(tmp_path / "out")})
    assert truth["slow"] == truth["ours"]
    r = CliRunner().invoke(cli, ["tokenizer", str(src), "--out", str(tmp_path / "cli")])
    assert r.exit_code == 0 and "(100%)" in r.stdout, r.output
