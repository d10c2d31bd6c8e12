"""The documentation site builds with ``--strict``: a broken page, link, nav entry or
docstring (mkdocstrings reads the public API's) fails the tests, so the docs cannot drift from
the code they describe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_site_builds_strict(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q",
                        "-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path / "site")],
                       capture_output=True, text=True, timeout=600, cwd=ROOT,
                       env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert "local_session" in api and "plan_convert" in api  # the docstrings are in
    assert (tmp_path / "site" / "cli-convert" / "index.html").is_file()


def test_the_readme_is_short_and_links_only_pages_that_exist() -> None:
    import re

    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    links = re.findall(r"\]\((docs/[^)#]+)\)", readme)
    assert links and all((ROOT / link).is_file() for link in links)
