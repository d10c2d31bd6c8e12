"""The built-in calibration set and user calibration files."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import pytest

from modelport.errors import InputError
from modelport.quantize import calibration


class ByteTokenizer:
    """Deterministic stand-in: one token per UTF-8 byte."""

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": list(text.encode("utf-8"))}


def _rows() -> list[dict[str, str]]:
    raw = resources.files("modelport.quantize").joinpath("data", "calibration.jsonl").read_text(
        encoding="utf-8")
    return [json.loads(line) for line in raw.splitlines()]


def test_builtin_set_is_multilingual_code_and_holds_out_documents() -> None:
    rows = _rows()
    langs = {r["lang"] for r in rows}
    code = {"python", "javascript", "sql", "rust", "java", "c", "shell"}
    assert code <= langs
    assert len(langs - code - {"json", "yaml", "math"}) >= 20
    cal, held = calibration.builtin_texts(), calibration.builtin_texts("heldout")
    assert len(cal) >= 30 and len(held) == 4 and not set(cal) & set(held)


def test_builtin_windows_golden_values() -> None:
    """The deterministic path: same set, same tokenizer -> the same windows."""
    s, rec = calibration.samples(ByteTokenizer(), n=128, seqlen=512)
    assert (rec.documents, rec.samples, rec.tokens) == (33, 36, 12286)
    digest = hashlib.sha256(str([x["input_ids"] for x in s]).encode()).hexdigest()
    assert digest == "219afa8860350e07350741f4540676394b0f31fb37e5307610171054354d6f1c"
    s, rec = calibration.samples(ByteTokenizer(), n=10, seqlen=64)
    assert rec.samples == 10 and all(len(x["input_ids"]) == 64 for x in s)
    assert all(x["attention_mask"] == [1] * 64 for x in s)


def test_user_files_jsonl_and_text(tmp_path: Path) -> None:
    j = tmp_path / "c.jsonl"
    j.write_text('{"text": "first document here"}\n\n{"text": "second one, longer text"}\n')
    assert calibration.read_texts(j) == ["first document here", "second one, longer text"]
    t = tmp_path / "c.txt"
    t.write_text("para one is here\n\n\npara two follows\nwith two lines\n")
    assert calibration.read_texts(t) == ["para one is here", "para two follows\nwith two lines"]
    windows, rec = calibration.samples(ByteTokenizer(), t, n=5, seqlen=8)
    assert rec.source == str(t) and len(windows) == rec.samples == 5


@pytest.mark.parametrize(("content", "match"), [
    ('{"text": 3}\n', "no string field 'text'"),
    ('{"text": "a"}\nnot json\n', "line 2 is not JSON"),
    ("\n\n", "holds no text"),
    (b"\xff\xfe\x00bad", "cannot read"),
    ('{"text": ' + "[" * 100_000 + "\n", "line 1 is not JSON"),  # a nesting bomb
])
def test_bad_calibration_files(tmp_path: Path, content: str | bytes, match: str) -> None:
    p = tmp_path / ("c.jsonl" if isinstance(content, str) and "{" in content else "c.txt")
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(InputError, match=match):
        calibration.samples(ByteTokenizer(), p)


def test_too_short_text_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "c.txt"
    p.write_text("tiny")
    with pytest.raises(InputError, match="no calibration window"):
        calibration.samples(ByteTokenizer(), p)
    with pytest.raises(InputError, match="at least 1 sample"):
        calibration.samples(ByteTokenizer(), n=0)
