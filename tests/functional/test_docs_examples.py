"""Every shell and Python example of the README and the docs runs here, against the shared
``fixtures/`` and a real S3 server (SeaweedFS), page by page in the order written.

What counts as an example: a ```console, ```sh, ```bash or ```python block, or a block whose
first line starts with ``$ ``. ``<!-- not run: REASON -->`` on the line before a block exempts
it (the reason is required: a real cloud account, a cluster); ``<!-- run by: TEST_FILE -->``
hands a block to a test file that runs it with this module's parser and matcher (it must name
the page and call them: the serve tests keep vLLM's answer from it). In a console block each ``$ ``
command (``\\`` continues it) must exit 0, or the N of a trailing ``# exits N``; the lines
shown under it must appear in its output in that order, ``…`` standing for any text and a
line of ``...`` for lines left out. A Python block must run to the end (its asserts are its
checks). The blocks of one page share a working folder, where ``fixtures/`` is copied.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from modelport.package.localstore import LocalS3

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\s*$")
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(.*?)\s*-->\s*$")
RUN_BY = re.compile(r"^<!--\s*run by:\s*(\S+)\s*-->\s*$")
EXITS = re.compile(r"\s+#\s*exits\s+(\d+)\s*$")
RUN_KINDS = {"console", "sh", "bash", "python"}


@dataclass
class Block:
    page: str
    line: int
    kind: str
    text: str
    not_run: str | None = None  # the reason
    run_by: str | None = None  # the test file that runs it instead


@dataclass
class Command:
    cmd: str
    exits: int = 0
    shown: list[str] = field(default_factory=list)


def blocks(page: Path) -> list[Block]:
    """The example blocks of ``page`` (run or marked)."""
    out: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, kind = i, m.group(1)
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        body = "\n".join(lines[start + 1: j])
        prev = next((ln for ln in reversed(lines[:start]) if ln.strip()), "")
        shell_like = body.lstrip().startswith("$ ")
        if kind in RUN_KINDS or shell_like:
            mark, by = NOT_RUN.match(prev), RUN_BY.match(prev)
            out.append(Block(page.name, start + 1, "console" if shell_like else kind, body,
                             mark.group(1) if mark else None, by.group(1) if by else None))
        i = j + 1
    return out


def commands(text: str) -> list[Command]:
    """The ``$ `` commands of a console block, with the lines shown under each."""
    out: list[Command] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("$ "):
            cmd = line[2:]
            while cmd.endswith("\\") and i + 1 < len(lines):
                i += 1
                cmd = cmd[:-1] + " " + lines[i].strip()
            m = EXITS.search(cmd)
            out.append(Command(EXITS.sub("", cmd), int(m.group(1)) if m else 0))
        elif out:
            out[-1].shown.append(line)
        else:
            raise AssertionError(f"console text before its first `$ ` command: {line!r}")
        i += 1
    return out


def _pattern(shown: str) -> re.Pattern[str]:
    return re.compile(".*?".join(re.escape(part) for part in shown.rstrip().split("…")))


def shown_in(shown: list[str], output: str) -> str | None:
    """None when every shown line is in ``output`` in order; else the first that is not."""
    got = [ln.rstrip() for ln in output.splitlines()]
    pos = 0
    for line in shown:
        if not line.strip() or line.strip() in ("...", "…"):
            continue
        pat = _pattern(line)
        while pos < len(got) and not pat.fullmatch(got[pos]):
            pos += 1
        if pos == len(got):
            return line
        pos += 1
    return None


def _runnable_pages() -> list[Path]:
    return [p for p in PAGES if any(b.not_run is None and b.run_by is None for b in blocks(p))]


def test_every_example_is_run_or_says_why_not() -> None:
    found = [b for p in PAGES for b in blocks(p)]
    assert [b for b in found if b.not_run == ""] == [], "a `not run` mark without its reason"
    run = [b for b in found if b.not_run is None]
    assert len(run) >= 20, f"only {len(run)} examples run"
    for b in run:
        if b.run_by is not None:  # the file exists, names the page and uses this runner
            text = (ROOT / b.run_by).read_text(encoding="utf-8")
            assert b.page in text and "run_console(" in text, f"{b.page}:{b.line}: {b.run_by}"
    for b in run:
        if b.kind == "console":
            assert commands(b.text), f"{b.page}:{b.line}: a console block without a command"


def test_the_matcher_can_fail() -> None:
    out = "converted 21 tensors in 0.09 s\n  model.safetensors  1.6 MiB\n"
    assert shown_in(["converted 21 tensors in … s", "...", "  model.safetensors  …"], out) is None
    assert shown_in(["converted 22 tensors in … s"], out) == "converted 22 tensors in … s"
    assert shown_in(["  model.safetensors  …", "converted 21 tensors in … s"], out) is not None
    first, second = commands("$ a \\\n  b   # exits 1\nshown\n$ c")
    assert (first.cmd, first.exits, first.shown, second.cmd) == ("a  b", 1, ["shown"], "c")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with LocalS3(tmp_path_factory.mktemp("docs-s3"), bucket="models") as s3:
        yield s3


def _env(s3: LocalS3, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MODELPORT_"))}
    env.update(s3.env(), AWS_ENDPOINT_URL=s3.endpoint, HOME=str(home),
               PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]))
    return env


@pytest.mark.parametrize("page", _runnable_pages(), ids=lambda p: p.name)
def test_page_examples_run(page: Path, store: LocalS3, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "fixtures", tmp_path / "fixtures",
                    ignore=shutil.ignore_patterns("*.py", "README.md", "__pycache__"))
    env = _env(store, tmp_path)

    def bash(cmd: str) -> tuple[int, str]:
        r = subprocess.run(["bash", "-euo", "pipefail", "-c", cmd], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=600)
        return r.returncode, r.stdout + r.stderr

    ran = 0
    for b in blocks(page):
        if b.not_run is not None or b.run_by is not None:
            continue
        where = f"{b.page}:{b.line}"
        if b.kind == "python":
            script = tmp_path / f"example_{b.line}.py"
            script.write_text(b.text)
            r = subprocess.run([sys.executable, script.name], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=600)
            assert r.returncode == 0, f"{where}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
            ran += 1
            continue
        ran += run_console(b, bash)
    assert ran > 0


def run_console(b: Block, run: Callable[[str], tuple[int, str]]) -> int:
    """Run a shell block's commands through ``run`` (exit code, output), checking each
    command's exit code and shown lines against the page; returns how many ran."""
    cmds = commands(b.text) if b.kind == "console" else [Command(b.text)]
    for c in cmds:
        code, output = run(c.cmd)
        assert code == c.exits, (
            f"{b.page}:{b.line}: `{c.cmd}` exited {code}, the page says {c.exits}\n{output}")
        missing = shown_in(c.shown, output)
        assert missing is None, f"{b.page}:{b.line}: `{c.cmd}` did not print {missing!r}\n{output}"
    return len(cmds)
