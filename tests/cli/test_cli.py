"""The CLI: one or two lines per error, typed exit codes, no tracebacks, --json for pipelines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from modelport.cli.main import cli
from tests.conftest import save_bin


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, list(args))
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    emb = torch.randn(8, 4)
    save_bin({"emb": emb, "head": emb, "b": torch.zeros(4)}, tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(
        json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    return tmp_path / "m"


def test_convert_json_report(model_dir: Path, tmp_path: Path) -> None:
    code, out, err = run("convert", str(model_dir), str(tmp_path / "o"), "--json")
    assert code == 0, err
    rep = json.loads(out)
    assert rep["aliases"] == {"head": "emb"}
    assert rep["verified"] is True
    assert {o["path"] for o in rep["outputs"]} == {"model.safetensors", "config.json"}


def test_convert_human_and_dry_run(model_dir: Path, tmp_path: Path) -> None:
    code, out, _ = run("convert", str(model_dir), str(tmp_path / "o"), "--dry-run")
    assert code == 0
    assert "1 shard(s)" in out
    assert "alias: head -> emb" in out
    assert not (tmp_path / "o").exists()
    code, out, _ = run("convert", str(model_dir), str(tmp_path / "o"))
    assert code == 0
    assert "verified" in out
    assert "sha256" in out


def test_inspect_json_and_exit_codes(model_dir: Path, tmp_path: Path) -> None:
    code, out, _ = run("inspect", str(model_dir), "--json")
    rep = json.loads(out)
    assert code == 0
    assert rep["weight_files"][0]["format"] == "zip pickle"
    assert rep["weight_files"][0]["aliases"] == 1
    assert rep["parameters"] == 8 * 4 + 4
    assert rep["config"]["model_type"] == "llama"
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model.safetensors").write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{bad")
    code, out, _ = run("inspect", str(tmp_path / "broken"))
    assert code == 1
    assert "error" in out


BAD_INPUTS = {
    "missing": (lambda d: d / "nope", 2, "does not exist"),
    "empty folder": (lambda d: (d / "e").mkdir() or d / "e", 2, "empty"),
    "not a pickle": (lambda d: (d / "x.bin").write_text("hello") and d / "x.bin", 2,
                     "not a readable pickle"),
    "truncated zip": (lambda d: _truncated(d), 2, "corrupt zip"),
    "empty file": (lambda d: (d / "z.pt").write_bytes(b"") or d / "z.pt", 2, "empty file"),
    "directory as weights": (lambda d: (d / "w" / "pytorch_model.bin").mkdir(parents=True)
                             or d / "w", 2, "directory"),
}


def _truncated(d: Path) -> Path:
    torch.save({"a": torch.randn(100)}, d / "t.pt")
    data = (d / "t.pt").read_bytes()
    (d / "t.pt").write_bytes(data[: len(data) // 2])
    return d / "t.pt"


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_one_or_two_lines(tmp_path: Path, case: str) -> None:
    make, code, text = BAD_INPUTS[case]
    src = make(tmp_path)
    rc, _out, err = run("convert", str(src), str(tmp_path / "out"))
    assert rc == code, err
    assert text in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2
    assert not (tmp_path / "out").exists()


def test_unsafe_exit_code_and_real_entry_point(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (print, ("pwned",))

    torch.save({"a": Evil()}, tmp_path / "e.pt")
    r = subprocess.run([sys.executable, "-m", "modelport.cli.main", "convert",
                        str(tmp_path / "e.pt"), str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 3
    assert "builtins.print" in r.stderr
    assert "pwned" not in r.stdout + r.stderr
    assert "Traceback" not in r.stderr


def test_bad_option_value(model_dir: Path, tmp_path: Path) -> None:
    rc, _, err = run("convert", str(model_dir), str(tmp_path / "o"), "--max-shard-size", "lots")
    assert rc == 2
    assert "not a size" in err


def test_normalize_cli(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    d = tmp_path / "m"
    d.mkdir()
    save_file({"w": torch.ones(4) * 1e5}, d / "model.safetensors")
    rc, out, err = run("normalize", str(d))
    assert rc == 2 and "--out" in err
    rc, out, _ = run("normalize", str(d), "--dry-run")
    assert rc == 0 and "would change" in out and "rewrite" in out
    rc, out, err = run("normalize", str(d), "--in-place", "--dtype", "fp16")
    assert rc == 2 and "overflows 1 tensor(s): w (4 values" in err and "--on-overflow" in err
    rc, out, _ = run("normalize", str(d), "--in-place", "--json")
    rep = json.loads(out)
    assert rc == 0 and rep["files"][0]["action"] == "header-insert-range"
    assert rep["files"][0]["data_sha256_before"] == rep["files"][0]["data_sha256_after"]
    rc, out, _ = run("normalize", str(d), "--in-place")
    assert rc == 0 and "nothing to change" in out
