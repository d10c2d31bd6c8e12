"""Databricks: log a prepared model with MLflow (local tracking store), load it back."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
import torch
from click.testing import CliRunner

from modelport.cli.main import cli
from modelport.package.mlflow_log import log_mlflow
from tests.conftest import logits, tiny_model
from tests.integration.test_real_minilm import minilm_dir


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # MLflow puts artifacts under ./mlruns of a sqlite store


def _llama(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    from tokenizers import Tokenizer, models, pre_tokenizers

    m = tiny_model("llama")
    m.save_pretrained(tmp_path / "llama")
    tok = Tokenizer(models.WordLevel({f"w{i}": i for i in range(256)}, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "llama" / "tokenizer.json"))
    (tmp_path / "llama" / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "w1", "bos_token": "w1",
        "chat_template": "{% for m in messages %}{{ m.content }} {% endfor %}"}))
    return tmp_path / "llama", m


@pytest.mark.parametrize("task", ["llm/v1/completions", "llm/v1/chat"])
def test_log_and_load_back_identical(tmp_path: Path, task: str) -> None:
    folder, model = _llama(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    rep = log_mlflow(folder, task, tracking_uri=uri)  # type: ignore[arg-type]
    mlflow.set_tracking_uri(uri)
    comp = mlflow.transformers.load_model(rep.model_uri, return_type="components")
    assert torch.equal(logits(model, "llama"), logits(comp["model"].eval(), "llama"))
    local = Path(mlflow.artifacts.download_artifacts(rep.model_uri))
    mlmodel = (local / "MLmodel").read_text()
    assert f"task: {task}" in mlmodel
    assert list(local.rglob("*.safetensors"))  # the weights, not a Hub reference


def test_embeddings_task_with_real_bert(tmp_path: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    rep = log_mlflow(minilm_dir(), "llm/v1/embeddings", tracking_uri=uri)
    mlflow.set_tracking_uri(uri)
    comp = mlflow.transformers.load_model(rep.model_uri, return_type="components")
    tok = AutoTokenizer.from_pretrained(minilm_dir())
    batch = tok(["an embedding"], return_tensors="pt")
    with torch.no_grad():
        a = AutoModel.from_pretrained(minilm_dir()).eval()(**batch).last_hidden_state
        b = comp["model"].eval()(**batch).last_hidden_state
    assert torch.equal(a, b)


def test_cli(tmp_path: Path) -> None:
    folder, _ = _llama(tmp_path)
    r = CliRunner().invoke(cli, ["mlflow-log", str(folder), "--tracking-uri",
                                 f"sqlite:///{tmp_path / 'db'}", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["model_uri"].startswith("models:/")
