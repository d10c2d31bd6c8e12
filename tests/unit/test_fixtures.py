"""fixtures/: every file under 1 MB and described in its README, and the script there makes
the same files again (names; tensors' names, shapes and dtypes: the trained bytes may differ
from one CPU to another)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts
                  and p.name not in ("make_fixtures.py", "README.md"))


def _tensors(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    if path.suffix == ".safetensors":
        with safe_open(path, "np") as f:
            return {k: (str(f.get_slice(k).get_dtype()), tuple(f.get_slice(k).get_shape()))
                    for k in f.keys()}  # noqa: SIM118 - safe_open has no iterator
    state = torch.load(path, map_location="cpu", weights_only=True)  # noqa: TID251 - tensors only
    return {k: (str(v.dtype).removeprefix("torch."), tuple(v.shape)) for k, v in state.items()}


def test_small_and_described() -> None:
    readme = (FIXTURES / "README.md").read_text()
    files = _files(FIXTURES)
    assert files
    assert [f for f in files if (FIXTURES / f).stat().st_size >= 1_000_000] == []
    tops = {f.split("/")[0] for f in files}
    assert [t for t in sorted(tops) if f"`{t}" not in readme] == []


@pytest.mark.filterwarnings("ignore::FutureWarning")  # transformers' own deprecations
def test_the_script_makes_them_again(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(tmp_path)
    assert _files(tmp_path) == _files(FIXTURES)
    for f in _files(FIXTURES):
        if f.endswith((".bin", ".safetensors")):
            assert _tensors(tmp_path / f) == _tensors(FIXTURES / f), f
        elif f.endswith(".json") and not f.startswith("tiny-lora/"):
            # the writer's version stamp follows the installed transformers, not the content
            made, kept = (json.loads((d / f).read_text()) for d in (tmp_path, FIXTURES))
            for d in (made, kept):
                if isinstance(d, dict):
                    d.pop("transformers_version", None)
            assert made == kept, f
