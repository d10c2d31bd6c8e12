"""tests/README.md maps each statement of the documentation (README.md and the pages of
docs/, the site mkdocs builds) to what backs it; this keeps them honest: every quote is still
in the documentation, every named test exists, every section that says what modelport does
has a row, and the counts at the top add up."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# the pages that say what modelport does, in the order of the site (the README's first part is
# the site's overview, docs/index.md)
PAGES = ["index.md", "cli.md", "cli-inspect.md", "cli-convert.md", "safety.md", "trust.md",
         "cli-normalize.md", "cli-check.md", "platform-pages.md", "watsonx.md",
         "databricks.md", "oci.md", "cli-merge.md",
         "cli-tokenizer.md", "cli-tsfm-config.md", "cli-package.md", "cli-upload.md",
         "cli-mlflow-log.md", "cli-verify.md", "cli-prepare.md", "cli-check-data.md",
         "cli-quantize.md", "cli-serve-check.md", "hostile-input.md", "spark.md",
         "object-storage.md", "python-api.md", "benchmarks.md", "troubleshooting.md"]


def _docs() -> str:
    """README.md and every page of docs/."""
    return "\n".join(p.read_text() for p in [ROOT / "README.md",
                                             *sorted((ROOT / "docs").glob("*.md"))])
ROW = re.compile(r"^\| (\d+) \| «(.+?)»[^|]*\| (.+) \|$")


def _norm(text: str) -> str:
    return " ".join(text.replace("\\|", "|").split())


def _rows() -> list[tuple[int, str, str]]:
    rows = []
    for line in (ROOT / "tests" / "README.md").read_text().splitlines():
        m = ROW.match(line)
        if m:
            rows.append((int(m[1]), m[2], m[3]))
    return rows


def _functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}


def _kind(ref: str) -> str:
    """test / figure / mechanism for a reference that exists; raises for one that does not."""
    path, _, name = ref.partition("::")
    assert (ROOT / path).is_file(), f"{ref}: no such file"
    if name:
        assert name in _functions(ROOT / path), f"{ref}: no such function"
    if path.startswith("tests/") and name.startswith("test_"):
        return "test"
    return "figure" if path.startswith("bench/") else "mechanism"


def test_every_quote_is_in_the_readme_and_every_reference_exists() -> None:
    readme = _norm(_docs())
    rows = _rows()
    assert len(rows) > 100
    assert [n for n, _, _ in rows] == list(range(1, len(rows) + 1)), "rows numbered in order"
    for n, quote, refs in rows:
        assert _norm(quote) in readme, f"row {n}: the documentation no longer says «{quote}»"
        if not refs.startswith("none"):
            for ref in refs.split(", "):
                _kind(ref.strip())


def test_the_counts_at_the_top_add_up() -> None:
    kinds = {"test": 0, "figure": 0, "mechanism": 0, "none": 0}
    for _, _, refs in _rows():
        if refs.startswith("none"):
            kinds["none"] += 1
            continue
        found = {_kind(r.strip()) for r in refs.split(", ")}
        kinds["test" if "test" in found else "figure" if "figure" in found
              else "mechanism"] += 1
    text = (ROOT / "tests" / "README.md").read_text()
    m = re.search(r"Statements: (\d+); backed by a test: (\d+); by a `make bench` figure only: "
                  r"(\d+); by the mechanism itself \(configuration, CI script, hook\): (\d+); "
                  r"by nothing: (\d+)\.", " ".join(text.split()))
    assert m, "the counts line of tests/README.md is gone"
    assert [int(x) for x in m.groups()] == [sum(kinds.values()), kinds["test"],
                                            kinds["figure"], kinds["mechanism"],
                                            kinds["none"]]


def test_every_section_that_says_what_modelport_does_has_a_row() -> None:
    index = (ROOT / "docs" / "index.md").read_text()
    body = index[index.index("## Two commands"):] + "\n".join(
        (ROOT / "docs" / p).read_text() for p in PAGES[1:])
    sections = [h.lstrip("#").strip() for h in body.splitlines()
                if h.startswith(("# ", "## ", "### "))]
    ours = {h.lstrip("#").strip() for h in (ROOT / "tests" / "README.md").read_text()
            .splitlines() if h.startswith("## ")}
    assert [s for s in sections if s not in ours] == []
    assert sorted(PAGES) == sorted(p.name for p in (ROOT / "docs").glob("*.md")
                                   if p.name not in ("tests.md", "layout.md", "status.md",
                                                     "api.md", "hostile-report.md",
                                                     "mutants.md")), "a page without rows"


def test_the_readme_hostile_table_is_the_generated_one() -> None:
    readme = (ROOT / "docs" / "hostile-input.md").read_text()
    generated = (ROOT / "docs" / "hostile-report.md").read_text()
    table = [x for x in generated.splitlines() if x.startswith("|")]
    assert len(table) > 5 and "\n".join(table) in readme
