"""Databricks: log a prepared folder as an MLflow transformers model with an LLM task.

Databricks serves fine-tuned models that are logged with the transformers flavor and a
``task`` (``llm/v1/chat``, ``llm/v1/completions``, ``llm/v1/embeddings``), with their weights
(``save_pretrained=True``: a Hub reference alone would not deploy). Optional extra:
``pip install 'modelport[mlflow]'``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from modelport._io import jsonio
from modelport._types import Record
from modelport.convert.trust import guard
from modelport.errors import InputError, MissingDependencyError, RemoteCodeError

Task = Literal["llm/v1/chat", "llm/v1/completions", "llm/v1/embeddings"]


class MlflowReport(Record):
    run_id: str
    model_uri: str
    task: str
    registered_model: str | None = None
    trust_remote_code: bool = False


def log_mlflow(folder: str | Path, task: Task = "llm/v1/completions", *,
               tracking_uri: str | None = None, registered_model_name: str | None = None,
               metadata: dict[str, Any] | None = None, trust_remote_code: bool = False
               ) -> MlflowReport:
    """Log ``folder`` (weights, tokenizer) as an MLflow transformers model with ``task``.
    The folder's own code (``auto_map``) runs only with ``trust_remote_code`` (recorded in
    the report and in the logged model's metadata).

    Raises:
        MissingDependencyError: mlflow is not installed; InputError: the folder does not load.
    """
    try:
        import mlflow
    except ImportError as e:
        raise MissingDependencyError("mlflow", "mlflow") from e
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    folder = Path(folder)
    if task not in ("llm/v1/chat", "llm/v1/completions", "llm/v1/embeddings"):
        raise InputError(f"unknown task {task!r}", hint="llm/v1/chat, llm/v1/completions "
                         "or llm/v1/embeddings")
    jsonio.require_valid(folder)
    cls = AutoModel if task == "llm/v1/embeddings" else AutoModelForCausalLM
    try:
        with guard(folder, hint="pass --trust-remote-code if you have read the folder's code"):
            model = cls.from_pretrained(folder, trust_remote_code=trust_remote_code)
            tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except RemoteCodeError:
        raise
    except (OSError, ValueError) as e:
        raise InputError(f"transformers cannot load the folder ({e})", path=folder) from e
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    from importlib.metadata import version

    # pinned explicitly: MLflow's own inference imports optional packages (torchvision)
    reqs = [f"{p}=={version(p)}" for p in ("transformers", "tokenizers", "safetensors")]
    reqs.append(f"torch=={version('torch').split('+')[0]}")
    with mlflow.start_run() as run:
        info = mlflow.transformers.log_model(
            transformers_model={"model": model, "tokenizer": tok}, name="model", task=task,
            save_pretrained=True, pip_requirements=reqs,
            metadata={**(metadata or {}), **({"trust_remote_code": True}
                                              if trust_remote_code else {})} or None,
            registered_model_name=registered_model_name)
    return MlflowReport(run_id=run.info.run_id, model_uri=info.model_uri, task=task,
                        registered_model=registered_model_name,
                        trust_remote_code=trust_remote_code)
