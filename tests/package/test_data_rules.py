"""check-data against seed 002 (Databricks foundation model fine-tuning), statement by
statement: the supported models and their context lengths, the retired ones with their dates,
continued pre-training's files and tokens, and the paths Databricks users write."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

import modelport
from modelport._io.urls import location
from modelport.cli.main import cli
from modelport.package.data_rules import base_model


def _chat_file(p: Path, n: int = 10) -> Path:
    line = {"messages": [{"role": "user", "content": "hi there"},
                         {"role": "assistant", "content": "hello"}]}
    p.write_text("".join(json.dumps(line) + "\n" for _ in range(n)))
    return p


def _kinds(rep: object) -> dict[str, str]:
    return {f.kind: f.severity for f in rep.findings}  # type: ignore[attr-defined]


@pytest.mark.parametrize(("name", "context"), [
    # "Supported models": every row of the table, with its maximum context length
    ("meta-llama/Llama-3.2-1B", 131072), ("meta-llama/Llama-3.2-3B-Instruct", 131072),
    ("meta-llama/Meta-Llama-3.1-70B", 131072), ("meta-llama/Meta-Llama-3.1-8B-Instruct", 131072),
])
def test_supported_models_give_their_context_length(tmp_path: Path, name: str,
                                                    context: int) -> None:
    rep = modelport.check_data(_chat_file(tmp_path / "d.jsonl"), base_model=name)
    assert rep.base_model.status == "supported" and rep.context_length == context
    assert "model.retired" not in _kinds(rep) and "model.unlisted" not in _kinds(rep)


@pytest.mark.parametrize(("name", "after"), [
    # "Retired models": "no longer supported after April 30, 2025"
    ("mistralai/Mistral-7B-v0.1", "2025-04-30"), ("mistralai/Mistral-7B-Instruct-v0.2",
                                                  "2025-04-30"),
    ("mistralai/Mixtral-8x7B-v0.1", "2025-04-30"), ("databricks/dbrx-base", "2025-04-30"),
    ("databricks/dbrx-instruct", "2025-04-30"),
    # "after January 30, 2025 the Meta Llama 3.1 405B model family is retired"
    ("meta-llama/Meta-Llama-3.1-405B-Instruct", "2025-01-30"),
])
def test_retired_models_are_flagged_with_their_date(tmp_path: Path, name: str,
                                                    after: str) -> None:
    rep = modelport.check_data(_chat_file(tmp_path / "d.jsonl"), base_model=name)
    (f,) = [f for f in rep.findings if f.kind == "model.retired"]
    assert f.severity == "error" and after in f.message and not rep.ok
    assert base_model(name).status == "retired"


def test_the_base_model_comes_from_the_models_config(tmp_path: Path) -> None:
    """--model's config.json names its base (_name_or_path): the retired Mistral 7B v0.1 is
    flagged, and Mistral's no-system-role rule applies."""
    from tests.conftest import st_folder

    m = st_folder(tmp_path / "m")
    from tokenizers import Tokenizer, models, pre_tokenizers

    tk = Tokenizer(models.WordLevel({"[UNK]": 0, "hi": 1}, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.save(str(m / "tokenizer.json"))
    (m / "config.json").write_text(json.dumps({"model_type": "llama",
                                               "_name_or_path": "mistralai/Mistral-7B-v0.1"}))
    d = tmp_path / "d.jsonl"
    d.write_text(json.dumps({"messages": [{"role": "system", "content": "be brief"},
                                          {"role": "user", "content": "hi"},
                                          {"role": "assistant", "content": "hi"}]}) + "\n")
    kinds = _kinds(modelport.check_data(d, model=m))
    assert kinds["model.retired"] == "error" and kinds["chat.system_mistral"] == "error"


def test_an_unlisted_base_model_is_a_warning(tmp_path: Path) -> None:
    rep = modelport.check_data(_chat_file(tmp_path / "d.jsonl"), base_model="org/other-7b")
    assert _kinds(rep)["model.unlisted"] == "warning"


def _text(p: Path, mb: float) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    line = b"the quick brown fox jumps over the lazy dog again and again\n"
    with p.open("wb") as f:
        f.write(line * int(mb * 2**20 / len(line)))
    return p


def test_continued_pretraining_file_sizes_and_tokens(tmp_path: Path) -> None:
    """'workloads are limited to files of 60 to 256 MB'; 'files over 1 GB may cause longer
    processing times' (a sparse file stands for one); '1.5 million tokens minimum'."""
    d = tmp_path / "corpus"
    _text(d / "small.txt", 1)
    rep = modelport.check_data(d)
    assert rep.format == "text"
    kinds = _kinds(rep)
    assert kinds["pretraining.file_size"] == "warning"
    assert kinds["tokens.pretraining_few"] == "warning"  # 1 MiB: ~262k tokens estimated
    assert rep.ok  # recommendations, not refusals
    ok = tmp_path / "ok"
    _text(ok / "a.txt", 64)
    rep = modelport.check_data(ok)
    assert "pretraining.file_size" not in _kinds(rep)
    assert "tokens.pretraining_few" not in _kinds(rep)  # 64 MiB: ~16.8 M tokens
    big = tmp_path / "big"
    big.mkdir()
    with (big / "huge.txt").open("wb") as f:  # 1.1 GiB, sparse: zeros read as text
        f.truncate(int(1.1 * 2**30))
    assert _kinds(modelport.check_data(big, task="pretraining"))["pretraining.file_slow"] == \
        "warning"


def test_over_ten_billion_tokens_is_refused_for_any_task(tmp_path: Path) -> None:
    """'large datasets (over 10 billion tokens) are not supported': 41 GiB of (sparse) text,
    estimated at bytes / 4, is an error before a byte is read."""
    d = tmp_path / "huge"
    d.mkdir()
    with (d / "part0.txt").open("wb") as f:
        f.truncate(41 * 2**30)
    rep = modelport.check_data(d)
    assert _kinds(rep)["tokens.too_many"] == "error" and not rep.ok


def test_databricks_paths_are_read_where_a_cluster_mounts_them() -> None:
    """The page's example reads 'dbfs:/Volumes/main/mydirectory/ift/train.jsonl': the one
    location parser (every verb's) maps it to the volume's mount, not a folded URL."""
    assert str(location("dbfs:/Volumes/main/mydirectory/ift/train.jsonl")) == \
        "/Volumes/main/mydirectory/ift/train.jsonl"
    assert str(location("dbfs:/FileStore/x.jsonl")) == "/dbfs/FileStore/x.jsonl"
    assert str(location("/Volumes/a/b/c/d.jsonl")) == "/Volumes/a/b/c/d.jsonl"
    assert location("s3://b/k") == "s3://b/k"
    r = CliRunner().invoke(cli, ["check-data", "dbfs:/Volumes/no/such/volume/train.jsonl"])
    assert r.exit_code == 2 and "/Volumes/no/such/volume/train.jsonl" in r.stderr


def test_cli_base_model_and_task(tmp_path: Path) -> None:
    f = _chat_file(tmp_path / "d.jsonl")
    r = CliRunner().invoke(cli, ["check-data", str(f), "--base-model",
                                 "databricks/dbrx-instruct"])
    assert r.exit_code == 1 and "model.retired" in r.stdout and "2025-04-30" in r.stdout
    r = CliRunner().invoke(cli, ["check-data", str(f), "--task", "pretraining", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["format"] == "text"
    assert os.path.exists(f)


def test_pretraining_tokens_are_counted_exactly_across_pieces(tmp_path: Path) -> None:
    """With --model the tokens are counted, a 4 MiB piece at a time, cut after a newline: the
    count equals the tokenizer's over the whole text (10 MiB: three pieces)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    from tests.conftest import st_folder

    m = st_folder(tmp_path / "m")
    tk = Tokenizer(models.WordLevel({"[UNK]": 0, "fox": 1, "dog": 2}, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.save(str(m / "tokenizer.json"))
    f = _text(tmp_path / "c" / "a.txt", 10)
    rep = modelport.check_data(f.parent, model=m)
    whole = len(tk.encode(f.read_text(), add_special_tokens=False).ids)
    assert rep.tokens == whole and whole == 12 * (10 * 2**20 // 60)
