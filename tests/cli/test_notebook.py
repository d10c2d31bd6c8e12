"""In a notebook: ``print(report)`` is the summary the CLI prints (the CLI prints exactly
``str(report)``), and Jupyter renders a report as an HTML table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import modelport
from modelport.cli.main import cli
from tests.conftest import save_bin, tiny_model


def _folder(d: Path) -> Path:
    m = tiny_model("llama")
    m.config.save_pretrained(d)
    save_bin(m.state_dict(), d, shards=2)
    return d


def _capture(monkeypatch: pytest.MonkeyPatch, module: str, name: str) -> list[Any]:
    """Keep every report the CLI's library call returns."""
    import importlib

    mod = importlib.import_module(module)
    real: Callable[..., Any] = getattr(mod, name)
    got: list[Any] = []

    def keep(*a: Any, **k: Any) -> Any:
        got.append(real(*a, **k))
        return got[-1]

    monkeypatch.setattr(mod, name, keep)
    return got


@pytest.mark.parametrize("verb", ["inspect", "convert", "prepare"])
def test_the_cli_prints_str_of_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          verb: str) -> None:
    src = _folder(tmp_path / "src")
    where = {"inspect": ("modelport.convert.inspect", "inspect", ["inspect", str(src)]),
             "convert": ("modelport.convert.checkpoint", "convert",
                         ["convert", str(src), str(tmp_path / "out")]),
             "prepare": ("modelport.pipeline.prepare", "prepare",
                         ["prepare", str(src), "--out", str(tmp_path / "b"), "--force"])}
    module, name, args = where[verb]
    got = _capture(monkeypatch, module, name)
    r = CliRunner().invoke(cli, args)
    assert r.exit_code in (0, 1), r.output
    rep = got[-1]
    assert r.stdout.rstrip("\n") == str(rep)
    assert "\n" in str(rep) and not str(rep).startswith(type(rep).__name__ + "(")
    html = rep._repr_html_()
    first = str(rep).split("\n", 1)[0]
    assert html.startswith("<div><b>") and "<table>" in html and first.split()[0] in html


def test_every_report_prints_a_line_per_field(tmp_path: Path) -> None:
    """A report without a verb summary still prints readably, not as one pydantic line."""
    src = _folder(tmp_path / "src")
    modelport.convert(src, tmp_path / "st", progress=False)
    rep = modelport.normalize(tmp_path / "st", tmp_path / "n")
    text = str(rep)
    assert text.splitlines()[0] == type(rep).__name__
    assert all(f"  {k}:" in text for k in type(rep).model_fields)
    assert "<table>" in rep._repr_html_()
