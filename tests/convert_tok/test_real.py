"""Every real tokenizer case against the oracle (transformers 4.57.6's slow classes, the
authors' tokenizer.json where shipped, tiktoken): no line reported identical that the oracle
disagrees with, no difference the report does not list, and a clean refusal where the class
cannot be expressed or is not stated."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from modelport.errors import AmbiguousTokenizerError, UnsupportedError
from modelport.tok.verb import tokenizer
from tests.conftest import REAL, real_path
from tests.convert_tok.cases import BARE, PINNED, REFUSED, TIKTOKEN, real_cases
from tests.convert_tok.compare import Case, Row, run_case

pytestmark = pytest.mark.real
ROWS: list[Row] = []


@pytest.mark.parametrize("case", real_cases(), ids=lambda c: c.name.split("/")[1])
def test_real_case_matches_the_oracle(tmp_path: Path, case: Case) -> None:
    real_path(case.name)
    row = run_case(case, tmp_path / "out")
    ROWS.append(row)
    print(f"\n{row}")
    assert row.false_certificates == [], "the report counts lines identical that are not"
    assert row.unexplained == [], "lines differ from the truth without being listed"
    assert row.reported_mismatch == 0
    assert row.identical + row.reported_known >= row.lines
    assert (row.lines, row.identical) == PINNED[case.name], "known differences are pinned"
    # transformers 4 loads the written files and gives the same ids
    assert row.transformers4_load == row.identical


def test_the_readme_total_is_the_sum_of_the_pinned_cases() -> None:
    import re

    lines = sum(n for n, _ in PINNED.values())
    same = sum(k for _, k in PINNED.values())
    readme = " ".join((Path(__file__).parents[2] / "docs" / "cli-tokenizer.md").read_text()
                      .split())
    m = re.search(r"all lines: (\d+)/(\d+) ids identical to the truth \(([\d.]+)%\)", readme)
    assert m, "the docs' tokenizer total is gone"
    assert (int(m[1]), int(m[2])) == (same, lines)
    assert m[3] == f"{100 * same / lines:.2f}"
    assert f"the {lines - same} other lines are the listed known differences" in readme
    assert sorted(PINNED) == sorted(c.name for c in real_cases())


# bare files whose candidate classes write the same tokenizer.json: no guess to refuse
SAME_FILES = {"tok/bert_base_cased_torchtext": ("BertTokenizer", "DistilBertTokenizer")}


@pytest.mark.parametrize("name", sorted(SAME_FILES))
def test_candidates_that_write_the_same_files_are_no_guess(tmp_path: Path, name: str) -> None:
    """A torchtext BERT vocab.txt states no class; BERT and DistilBERT write the same files, so
    the file is written without --family, certified, and equals each class's ids (the oracle,
    asked once per class)."""
    rep = tokenizer(real_path(name), tmp_path / "out")
    assert rep.written and rep.certified and not rep.guessed
    assert rep.candidates == list(SAME_FILES[name]) and "write the same files" in rep.class_source
    from tokenizers import Tokenizer

    from modelport.tok.corpus import corpus
    from tests.convert_tok.oracle_client import ask

    texts = corpus([])
    ours = Tokenizer.from_file(str(tmp_path / "out" / "tokenizer.json"))
    got = [ours.encode(t).ids for t in texts]
    for cls in SAME_FILES[name]:
        o = ask({"folder": str(REAL / name), "texts": texts, "ours": str(tmp_path / "out"),
                 "class": cls, "init": {"do_lower_case": False}})
        assert o["class"] == cls and got == o["slow"], cls


@pytest.mark.parametrize("name", sorted(set(BARE) - set(SAME_FILES)) + sorted(TIKTOKEN))
def test_bare_files_are_refused_without_a_family(tmp_path: Path, name: str) -> None:
    folder = real_path(name)
    with pytest.raises(AmbiguousTokenizerError, match="candidates: ") as e:
        tokenizer(folder, tmp_path / "out")
    assert e.value.exit_code == 1
    assert "--family" in e.value.hint
    assert not (tmp_path / "out").exists()


def test_accept_guess_is_recorded_and_never_certified(tmp_path: Path) -> None:
    d = tmp_path / "in"
    shutil.copytree(real_path("tok/llama2c_llama2"), d)
    rep = tokenizer(d, tmp_path / "out", accept_guess=True)
    assert rep.guessed and rep.tokenizer_class == "LlamaTokenizer"
    assert rep.candidates == ["LlamaTokenizer", "GemmaTokenizer"]
    assert "guess" in rep.class_source
    assert not rep.certified


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_inexpressible_classes_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(UnsupportedError, match=REFUSED[name]):
        tokenizer(real_path(name), tmp_path / "out")
    assert not (tmp_path / "out").exists()
