"""stderr carries modelport's own lines only; third-party noise comes back with --debug."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.quantize.models import random_model

NOISE = ("Failed to load", "_pytree", "tokenicer", "register_constant", "Warning")


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "modelport.cli.main", *args],
                          capture_output=True, text=True, timeout=600)


def test_quantize_stderr_is_quiet_unless_debug(tmp_path: Path) -> None:
    src = random_model(tmp_path / "llama", hidden=64)
    r = _run(["quantize", str(src), "--out", str(tmp_path / "q"), "--method", "gptq",
              "--group-size", "32", "--json"])
    assert r.returncode == 0, r.stderr
    assert not [x for x in r.stderr.splitlines() if any(n in x for n in NOISE)], r.stderr
    r = _run(["quantize", str(src), "--out", str(tmp_path / "q2"), "--method", "gptq",
              "--group-size", "32", "--json", "--debug"])
    assert r.returncode == 0, r.stderr
    assert any(n in r.stderr for n in NOISE), "with --debug the libraries' lines are shown"
