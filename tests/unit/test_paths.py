"""Output paths are refused before any work starts."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.parametrize(("dst", "match"), [
    ("src", "is the input"), ("src/out", "inside the input"), (".", "contains the input"),
    ("file.txt", "not a folder"), ("taken", "already exists")])
def test_check_output_refuses_before_any_work(tmp_path: Path, dst: str, match: str) -> None:
    from modelport._io.paths import check_output
    from modelport.errors import InputError

    (tmp_path / "src").mkdir()
    (tmp_path / "taken").mkdir()
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(InputError, match=match):
        check_output(tmp_path / "src", tmp_path / dst)


def test_tokenizer_out_inside_its_folder_is_refused(tmp_path: Path) -> None:
    import modelport
    from modelport.errors import InputError

    (tmp_path / "vocab.txt").write_text("[UNK]\n[CLS]\n[SEP]\na\n")
    with pytest.raises(InputError, match="inside the input"):
        modelport.tokenizer(tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()
