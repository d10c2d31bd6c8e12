"""Databricks: log a prepared folder as an MLflow transformers model with an LLM task.

Databricks serves fine-tuned models that are logged with the transformers flavor and a
``task`` (``llm/v1/chat``, ``llm/v1/completions``, ``llm/v1/embeddings``), with their weights
(``save_pretrained=True``: a Hub reference alone would not deploy). Optional extra:
``pip install 'modelport[mlflow]'``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from modelport._io import jsonio
from modelport._trust import guard
from modelport._types import Record
from modelport.errors import InputError, MissingDependencyError, RemoteCodeError

Task = Literal["llm/v1/chat", "llm/v1/completions", "llm/v1/embeddings"]


class MlflowReport(Record):
    run_id: str
    model_uri: str
    task: str
    registered_model: str | None = None
    trust_remote_code: bool = False
    mlflow_version: str = ""
    dtype: str = ""  # the weights' dtype as logged (the config's, never widened)


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
            model = cls.from_pretrained(folder, trust_remote_code=trust_remote_code,
                                        dtype="auto")
            tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except RemoteCodeError:
        raise
    except (OSError, ValueError) as e:
        raise InputError(f"transformers cannot load the folder ({e})", path=folder) from e
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    registry = registry_uri(tracking_uri or mlflow.get_tracking_uri(), registered_model_name)
    if registry:
        mlflow.set_registry_uri(registry)
    from importlib.metadata import version

    # pinned explicitly: MLflow's own inference imports optional packages (torchvision)
    reqs = [f"{p}=={version(p)}" for p in ("transformers", "tokenizers", "safetensors")]
    reqs.append(f"torch=={version('torch').split('+')[0]}")
    meta = {**(metadata or {}), **({"trust_remote_code": True} if trust_remote_code else {})}
    kw = log_model_kwargs(mlflow.__version__, task, meta)
    with mlflow.start_run() as run, _hub_offline():
        info = mlflow.transformers.log_model(
            transformers_model={"model": model, "tokenizer": tok}, save_pretrained=True,
            pip_requirements=reqs, input_example=INPUT_EXAMPLES[task],
            registered_model_name=registered_model_name, **kw)
    return MlflowReport(run_id=run.info.run_id, model_uri=info.model_uri, task=task,
                        registered_model=registered_model_name,
                        trust_remote_code=trust_remote_code, mlflow_version=mlflow.__version__,
                        dtype=str(model.dtype).removeprefix("torch."))


@contextmanager
def _hub_offline() -> Iterator[None]:
    """The weights are the folder's: MLflow's look-ups of a model card and a license on the
    Hugging Face Hub under the folder's name (50 s of timeouts where there is no internet)
    fail at once instead."""
    from huggingface_hub import constants

    was = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = was


# what each task's serving endpoint is sent (Databricks' LLM task schemas)
INPUT_EXAMPLES: dict[str, dict[str, Any]] = {
    "llm/v1/completions": {"prompt": "Hello"},
    "llm/v1/chat": {"messages": [{"role": "user", "content": "Hello"}]},
    "llm/v1/embeddings": {"input": ["Hello"]},
}


def log_model_kwargs(mlflow_version: str, task: str, metadata: dict[str, Any]
                     ) -> dict[str, Any]:
    """The arguments that differ between MLflow majors: 3.x names the model ``name``, 2.x
    ``artifact_path``; below 2.12 the task goes in ``metadata`` (the ``task`` argument of the
    LLM tasks came with 2.12)."""
    major, minor = (int(x) for x in mlflow_version.split(".")[:2])
    kw: dict[str, Any] = {"name": "model"} if major >= 3 else {"artifact_path": "model"}
    if (major, minor) >= (2, 12):
        kw["task"] = task
    else:
        metadata = {**metadata, "task": task}
    kw["metadata"] = metadata or None
    return kw


def registry_uri(tracking_uri: str, name: str | None) -> str | None:
    """Unity Catalog's registry for a three-part name logged to Databricks; else the default."""
    if name and name.count(".") == 2 and tracking_uri.startswith("databricks"):
        return "databricks-uc"
    return None
