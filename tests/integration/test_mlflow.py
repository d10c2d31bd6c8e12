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


ROOT = Path(__file__).resolve().parents[2]
MLFLOW2 = ROOT / ".venv-mlflow2" / "bin" / "python"


def _bf16_llama(tmp_path: Path) -> Path:
    folder, model = _llama(tmp_path)
    model.to(torch.bfloat16).save_pretrained(folder)  # the config says bfloat16 too
    return folder


@pytest.mark.parametrize("major", ["3", "2"])
@pytest.mark.parametrize("task", ["llm/v1/completions", "llm/v1/chat"])
def test_both_mlflow_majors_log_and_load_back(tmp_path: Path, major: str, task: str) -> None:
    """The Databricks page: MLflow 2.11 or later (Runtime 15.0 ML's) and 3.x. The same script
    under each major: logged with the task and metadata, the weights in their config's dtype
    (bf16 stays bf16), MLflow's own loader gives the same outputs as transformers."""
    import os
    import subprocess
    import sys

    py = Path(sys.executable) if major == "3" else MLFLOW2
    if not py.is_file():
        pytest.fail(f"{py} is missing: run `make setup`")
    folder = _bf16_llama(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    # MLflow 3 wants a database store; MLflow 2's sqlite store needs an older SQLAlchemy than
    # the project's, so it gets the file store Databricks users of 2.x had locally
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}" if major == "3" else \
        (tmp_path / "mlruns").as_uri()
    r = subprocess.run([str(py), str(ROOT / "tests" / "integration" / "mlflow_roundtrip.py"),
                        str(folder), uri, task], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["mlflow"].split(".")[0] == major and got["reported"] == got["mlflow"]
    assert got["dtype"] == "bfloat16" and got["loaded_dtype"] == "torch.bfloat16"
    assert got["same_outputs"] and got["weights"] and got["input_example"]
    assert got["task_in_mlmodel"] and got["model_type_in_mlmodel"]


def test_the_arguments_each_mlflow_version_takes() -> None:
    from modelport.package.mlflow_log import log_model_kwargs, registry_uri

    assert log_model_kwargs("3.17.2", "llm/v1/chat", {}) == {
        "name": "model", "task": "llm/v1/chat", "metadata": None}
    assert log_model_kwargs("2.22.1", "llm/v1/chat", {"a": 1}) == {
        "artifact_path": "model", "task": "llm/v1/chat", "metadata": {"a": 1}}
    # the task argument came with 2.12; 2.11 (Databricks Runtime 15.0 ML) reads it from metadata
    assert log_model_kwargs("2.11.3", "llm/v1/embeddings", {}) == {
        "artifact_path": "model", "metadata": {"task": "llm/v1/embeddings"}}
    assert registry_uri("databricks", "main.ml.llama") == "databricks-uc"
    assert registry_uri("databricks", "llama") is None
    assert registry_uri("file:///tmp/mlruns", "main.ml.llama") is None


def test_cli_metadata_is_key_value(tmp_path: Path) -> None:
    folder, _ = _llama(tmp_path)
    r = CliRunner().invoke(cli, ["mlflow-log", str(folder), "--metadata", "model_type"])
    assert r.exit_code == 2 and "KEY=VALUE" in r.stderr
    uri = f"sqlite:///{tmp_path / 'db'}"
    r = CliRunner().invoke(cli, ["mlflow-log", str(folder), "--tracking-uri", uri,
                                 "--metadata", "model_type=gte-large", "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    mlflow.set_tracking_uri(uri)
    local = Path(mlflow.artifacts.download_artifacts(rep["model_uri"]))
    assert "model_type: gte-large" in (local / "MLmodel").read_text()


def test_the_hub_is_never_asked(tmp_path: Path) -> None:
    """The weights are the folder's: MLflow's model-card and license look-ups under the
    folder's name must not reach the Hugging Face Hub (without a network they cost 50 s of
    timeouts). A local server stands in for the Hub and counts what arrives."""
    import http.server
    import os
    import subprocess
    import sys
    import threading

    asked: list[str] = []

    class Hub(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_error(404)

        do_HEAD = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        folder, _ = _llama(tmp_path)
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        env["HF_ENDPOINT"] = f"http://127.0.0.1:{server.server_port}"
        # a relative folder name is a valid Hub repo id: what MLflow would look up
        r = subprocess.run([str(Path(sys.executable).parent / "modelport"), "mlflow-log",
                            folder.name, "--tracking-uri", f"sqlite:///{tmp_path / 'db'}"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert asked == []
    finally:
        server.shutdown()
