"""Run by the MLflow tests under each MLflow major (.venv: 3.x, .venv-mlflow2: 2.x):
``python mlflow_roundtrip.py FOLDER TRACKING_URI TASK`` logs FOLDER with modelport, loads it
back with MLflow's own loader and prints what the test compares, as JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mlflow
import torch
from transformers import AutoModel, AutoModelForCausalLM

from modelport.package.mlflow_log import log_mlflow

folder, uri, task = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
rep = log_mlflow(folder, task, tracking_uri=uri, metadata={"model_type": "tiny"})  # type: ignore[arg-type]
comp = mlflow.transformers.load_model(rep.model_uri, return_type="components")
cls = AutoModel if task == "llm/v1/embeddings" else AutoModelForCausalLM
ref = cls.from_pretrained(folder, dtype="auto", trust_remote_code=False).eval()
ids = torch.arange(12).view(1, 12) % 64
with torch.no_grad():
    a = ref(input_ids=ids)[0]
    b = comp["model"].eval()(input_ids=ids)[0]
local = Path(mlflow.artifacts.download_artifacts(rep.model_uri))
mlmodel = (local / "MLmodel").read_text()
print(json.dumps({
    "mlflow": mlflow.__version__, "reported": rep.mlflow_version, "dtype": rep.dtype,
    "loaded_dtype": str(comp["model"].dtype), "same_outputs": bool(torch.equal(a, b)),
    "task_in_mlmodel": f"task: {task}" in mlmodel, "model_type_in_mlmodel":
        "model_type: tiny" in mlmodel, "weights": bool(list(local.rglob("*.safetensors"))),
    "input_example": (local / "input_example.json").is_file()}))
