"""check-data: Databricks fine-tuning JSONL, streamed, findings with line numbers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import modelport
from modelport.cli.main import cli


def _chat(*roles: str) -> dict:
    return {"messages": [{"role": r, "content": f"{r} says hello there"} for r in roles]}


GOOD = _chat("system", "user", "assistant", "user", "assistant")


def _write(p: Path, lines: list[object], end: bytes = b"\n", bom: bool = False) -> Path:
    data = b"".join((x if isinstance(x, bytes) else json.dumps(x).encode()) + end
                    for x in lines)
    p.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return p


def _kinds(rep: object) -> dict[str, object]:
    return {f.kind: f for f in rep.findings}  # type: ignore[attr-defined]


def test_good_chat_data(tmp_path: Path) -> None:
    p = _write(tmp_path / "train.jsonl", [GOOD] * 50)
    rep = modelport.check_data(p, context_length=100)
    assert rep.ok and rep.format == "chat" and rep.examples == 50 and rep.findings == []


@pytest.mark.parametrize(("line", "kind"), [
    (_chat("user", "assistant", "system"), "chat.system_position"),
    (_chat("user", "user", "assistant"), "chat.alternation"),
    (_chat("assistant", "user", "assistant"), "chat.alternation"),
    (_chat("user", "assistant", "user"), "chat.last"),
    (_chat("user", "bot"), "chat.role"),
    ({"messages": []}, "chat.messages"),
    ({"messages": [{"role": "user"}]}, "chat.message"),
    ({"prompt": "p"}, "instruction.fields"),
    ({"text": "t"}, "format.unknown"),
    ([1, 2], "json.not_object"),
    (b"{nope", "json.invalid"),
    (b"\xff\xfe{}", "encoding.utf8"),
])
def test_each_rule_with_its_line_number(tmp_path: Path, line: object, kind: str) -> None:
    p = _write(tmp_path / "d.jsonl", [GOOD, GOOD, line, GOOD, line])
    rep = modelport.check_data(p, context_length=10)
    f = _kinds(rep)[kind]
    assert f.severity == "error" and not rep.ok
    assert f.count == 2 and f.lines == [f"{p}:3", f"{p}:5"]


def test_real_world_shapes_bom_crlf_truncated_last_line(tmp_path: Path) -> None:
    p = _write(tmp_path / "win.jsonl", [GOOD] * 3, end=b"\r\n", bom=True)
    p.write_bytes(p.read_bytes() + json.dumps(GOOD).encode()[:40])  # cut off, no newline
    rep = modelport.check_data(p, context_length=10)
    k = _kinds(rep)
    assert k["encoding.bom"].severity == "warning" and k["encoding.bom"].lines == [f"{p}:1"]
    assert k["encoding.crlf"].severity == "info" and k["encoding.crlf"].count == 3
    assert k["json.truncated"].lines == [f"{p}:4"] and rep.examples == 3


def test_mixed_formats_and_mistral_system_role(tmp_path: Path) -> None:
    d = tmp_path / "data"
    d.mkdir()
    _write(d / "a.jsonl", [GOOD])
    _write(d / "b.jsonl", [{"prompt": "p", "response": "r"}])
    rep = modelport.check_data(d, context_length=1)
    assert rep.format == "mixed" and "format.mixed" in _kinds(rep)
    m = tmp_path / "mistral"
    m.mkdir()
    (m / "config.json").write_text(json.dumps({"model_type": "mistral",
                                               "max_position_embeddings": 8}))
    from tokenizers import Tokenizer, models, pre_tokenizers

    t = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1}, unk_token="[UNK]"))
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    t.save(str(m / "tokenizer.json"))
    rep = modelport.check_data(d / "a.jsonl", model=m)
    assert "chat.system_mistral" in _kinds(rep) and rep.examples == 0
    c = _write(tmp_path / "c.jsonl", [_chat("user", "assistant", "user", "assistant")])
    rep = modelport.check_data(c, model=m)
    assert rep.ok and rep.tokens == 4 * 4 and rep.context_length == 8  # 4 words a message


def test_token_floor_and_exit_codes(tmp_path: Path) -> None:
    p = _write(tmp_path / "small.jsonl", [GOOD] * 3)
    r = CliRunner().invoke(cli, ["check-data", str(p), "--target", "databricks"])
    assert r.exit_code == 0 and "tokens.too_few" in r.stdout  # estimated: a warning
    assert "estimated" in r.stdout
    bad = _write(tmp_path / "bad.jsonl", [GOOD, b"{nope"])
    r = CliRunner().invoke(cli, ["check-data", str(bad), "--json"])
    assert r.exit_code == 1 and json.loads(r.stdout)["findings"]
    r = CliRunner().invoke(cli, ["check-data", str(tmp_path / "none.jsonl")])
    assert r.exit_code == 2 and "Traceback" not in r.stderr


def test_large_file_streams_in_bounded_memory(tmp_path: Path) -> None:
    """~200 MB here (the 1 GB run is in make bench); peak RSS stays far below the file."""
    p = tmp_path / "big.jsonl"
    line = (json.dumps(_chat("user", "assistant") | {"pad": "x" * 900}) + "\n").encode()
    with p.open("wb") as f:
        for _ in range(200):
            f.write(line * 1000)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forking parent
    code = ("import sys, modelport\n"
            "r = modelport.check_data(sys.argv[1], context_length=10)\n"
            "assert r.ok and r.examples == 200000, r\n"
            "print(next(x.split()[1] for x in open('/proc/self/status')"
            " if x.startswith('VmHWM')))")
    out = subprocess.run([sys.executable, "-c", code, str(p)], capture_output=True, text=True,
                         timeout=600, check=True)
    peak_mib = int(out.stdout.split()[-1]) / 1024
    assert peak_mib < 400, f"peak RSS {peak_mib:.0f} MiB for a {p.stat().st_size >> 20} MiB file"
