"""Call the tests' tokenizer oracle (transformers 4.57.6 in .venv-tokref) in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ORACLE = Path(__file__).with_name("oracle.py")


def oracle_python() -> Path:
    """The oracle's interpreter; `make setup` creates it. Missing is a failure, not a skip."""
    py = Path(os.environ.get("MODELPORT_TOKREF", ROOT / ".venv-tokref")) / "bin" / "python"
    if not py.is_file():
        pytest.fail(f"the tokenizer oracle is missing ({py}): run `make setup`")
    return py


def ask(request: dict[str, Any]) -> dict[str, Any]:
    p = subprocess.run([str(oracle_python()), str(ORACLE)], input=json.dumps(request),
                       capture_output=True, text=True, timeout=600,
                       env={**os.environ, "TRANSFORMERS_VERBOSITY": "error",
                            "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    if p.returncode:
        raise AssertionError(f"oracle failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout)
