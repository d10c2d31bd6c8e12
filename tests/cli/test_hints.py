"""A hint names only flags and verbs that exist: every ``--flag`` and every ``modelport VERB``
written anywhere in src/ (hints, messages, docstrings) is checked against the click CLI."""

from __future__ import annotations

import re
from pathlib import Path

import click

from modelport.cli.main import cli

SRC = Path(__file__).resolve().parents[2] / "src" / "modelport"
# flags of other programs that modelport's messages may quote
FOREIGN = {"--help",
           # Megatron-LM's: how a run saved (--ckpt-format), its pipeline-merging converter
           "--ckpt-format", "--target-pipeline-parallel-size"}


def _cli_names() -> tuple[set[str], set[str]]:
    flags: set[str] = set()
    verbs: set[str] = set()

    def walk(cmd: click.Command, prefix: str) -> None:
        for p in cmd.params:
            flags.update(o for o in [*p.opts, *p.secondary_opts] if o.startswith("--"))
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                verbs.add(f"{prefix}{name}".strip())
                walk(sub, f"{prefix}{name} ")

    walk(cli, "")
    return flags, verbs


def _mentions(pattern: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for m in re.findall(pattern, line):
                found.setdefault(m, []).append(f"{path.relative_to(SRC)}:{i}")
    return found


def test_every_flag_named_in_src_exists() -> None:
    flags, _ = _cli_names()
    named = _mentions(r"(?<![\w-])(--[a-z][a-z0-9-]+)")
    assert len(named) > 30  # the scan sees the hints
    assert {f: where for f, where in named.items() if f not in flags | FOREIGN} == {}


def test_every_verb_named_in_src_exists() -> None:
    _, verbs = _cli_names()
    # a verb as a command line: followed by an argument, a flag, a closing quote, or "shows"
    named = _mentions(r"modelport ([a-z][a-z0-9-]+)(?= [A-Z{]| --|[`'\"]| shows| lists)")
    assert len(named) > 5
    prose = {"on"}  # "modelport on Spark"
    assert {v: where for v, where in named.items() if v not in verbs | prose} == {}
