"""The second hostile campaign, part 1: nothing from a model folder runs, and no verb fails
with an internal error on what a user's config.json or side file may hold.

Every verb runs as a real process with ``y`` answered on its stdin, the way a pipeline that
pipes ``yes`` would run it; the folder's code writes a canary file when it runs. A positive
control proves the canary is written when transformers is allowed to run the code, so its
absence means the code did not run (and not that the payload was inert).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from modelport.cli.main import cli
from tests.conftest import st_folder

MODELPORT = str(Path(sys.executable).parent / "modelport")
YES = b"y\n" * 200
PAYLOAD = """import pathlib
pathlib.Path({canary!r}).write_text("ran")
from transformers import PretrainedConfig, PreTrainedTokenizer
class EvilConfig(PretrainedConfig):
    model_type = "evil"
class EvilTokenizer(PreTrainedTokenizer):
    pass
"""
AUTO_MAP = {"AutoConfig": "configuration_evil.EvilConfig",
            "AutoModelForCausalLM": "configuration_evil.EvilConfig",
            "AutoModel": "configuration_evil.EvilConfig"}


def _evil(tmp: Path, *, names: str = "plain", tokenizer: bool = False) -> tuple[Path, Path]:
    """A folder whose config.json needs its own code (``auto_map``, a model_type transformers
    does not ship); its code writes ``canary``."""
    d, canary = tmp / "evil", tmp / "CANARY"
    d.mkdir()
    (d / "configuration_evil.py").write_text(PAYLOAD.format(canary=str(canary)))
    (d / "config.json").write_text(json.dumps({"model_type": "evil", "auto_map": AUTO_MAP}))
    w = {"model.embed_tokens.weight": torch.ones(4, 4)}
    if names == "plain":
        save_file(w, d / "model.safetensors", metadata={"format": "pt"})
    else:  # a DDP / torch.compile prefix: convert must build the model to fit the names
        torch.save({f"module.{k}": v for k, v in w.items()}, d / "pytorch_model.bin")
    if tokenizer:
        (d / "vocab.txt").write_text("[UNK]\n[CLS]\n[SEP]\na\n")
        (d / "tokenizer_config.json").write_text(json.dumps({
            "tokenizer_class": "EvilTokenizer",
            "auto_map": {"AutoTokenizer": ["configuration_evil.EvilTokenizer", None]}}))
    return d, canary


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("MODELPORT_DEBUG", None)
    r = subprocess.run([MODELPORT, *args], input=YES.decode(), capture_output=True, text=True,
                       cwd=cwd, timeout=300, env=env)
    return r


def test_control_the_payload_runs_when_allowed(tmp_path: Path) -> None:
    """Without this, a missing canary could mean a payload that never runs."""
    d, canary = _evil(tmp_path)
    code = ("from transformers import AutoConfig; "
            f"AutoConfig.from_pretrained({str(d)!r}, trust_remote_code=True)")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=300)
    assert canary.read_text() == "ran"


VERBS = {
    "inspect": (lambda d, o: ["inspect", str(d)], "plain"),
    "check": (lambda d, o: ["check", str(d)], "plain"),
    "convert (names to fit)": (lambda d, o: ["convert", str(d), str(o)], "prefixed"),
    "prepare (no architectures)": (lambda d, o: ["prepare", str(d), "--out", str(o)], "plain"),
    "quantize": (lambda d, o: ["quantize", str(d), "--out", str(o)], "plain"),
    "tokenizer": (lambda d, o: ["tokenizer", str(d), "--out", str(o)], "plain"),
    "mlflow-log": (lambda d, o: ["mlflow-log", str(d), "--tracking-uri",
                                 f"file://{o.parent / 'mlruns'}"], "plain"),
}


@pytest.mark.hostile_class("remote code answered y on stdin")
@pytest.mark.parametrize("verb", list(VERBS))
def test_no_folder_code_runs(tmp_path: Path, verb: str) -> None:
    make_args, names = VERBS[verb]
    d, canary = _evil(tmp_path, names=names, tokenizer=verb == "tokenizer")
    r = _run(*make_args(d, tmp_path / "out"), cwd=tmp_path)
    assert not canary.exists(), f"{verb} ran the folder's code: {r.stdout}{r.stderr}"
    assert r.returncode != 70 and "internal error" not in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "[y/N]" not in r.stdout + r.stderr
    if r.returncode != 0:
        assert len(r.stderr.strip().splitlines()) <= 2, r.stderr
    if verb in ("convert (names to fit)", "prepare (no architectures)", "mlflow-log"):
        # these need the model's class: refused, naming the auto_map entries
        assert r.returncode == 2 and "configuration_evil.EvilConfig" in r.stderr, r.stderr
    if verb in ("inspect", "check"):  # the finding is reported, nothing loaded
        assert "auto_map" in r.stdout + r.stderr


SIDE = ["config.json", "tokenizer_config.json", "adapter_config.json", "params.json"]
SIDE_VERBS = {
    "inspect": lambda d, o: ["inspect", str(d)],
    "check": lambda d, o: ["check", str(d)],
    "convert": lambda d, o: ["convert", str(d), str(o)],
    "convert --dry-run": lambda d, o: ["convert", str(d), str(o), "--dry-run"],
    "prepare": lambda d, o: ["prepare", str(d), "--out", str(o)],
    "normalize": lambda d, o: ["normalize", str(d), "--out", str(o)],
    "tokenizer": lambda d, o: ["tokenizer", str(d), "--out", str(o)],
    "package": lambda d, o: ["package", str(d), "--out", str(o)],
    "quantize": lambda d, o: ["quantize", str(d), "--out", str(o)],
    "tsfm-config": lambda d, o: ["tsfm-config", str(d)],
    "merge (as base)": lambda d, o: ["merge", str(d), str(d), "--out", str(o)],
    "mlflow-log": lambda d, o: ["mlflow-log", str(d)],
}


@pytest.mark.hostile_class("broken JSON side files x verbs")
@pytest.mark.parametrize("verb", list(SIDE_VERBS))
@pytest.mark.parametrize("side", SIDE)
def test_broken_side_json(tmp_path: Path, side: str, verb: str) -> None:
    d = st_folder(tmp_path / "m")
    (d / "vocab.txt").write_text("[UNK]\n[CLS]\n[SEP]\na\n")
    (d / side).write_text('{\n  "model_type": "llama",\n  "x": nope\n}')
    before = sorted(p.name for p in tmp_path.rglob("*"))
    r = CliRunner().invoke(cli, SIDE_VERBS[verb](d, tmp_path / "out"), input="y\n")
    assert r.exit_code == 2, r.output
    assert f"{side}: is not valid JSON" in r.stderr and "line 3 column 8" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


N = int(os.environ.get("MODELPORT_FUZZ_EXAMPLES", "150")) // 3
FUZZ = settings(max_examples=max(N, 10), deadline=None, derandomize=N <= 50,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats()
           | st.text(max_size=12) | st.sampled_from(["llama", "bert", "evil", "gpt2", "t5",
                                                     "bfloat16", "float16", "", "🦙"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
KEYS = ["model_type", "architectures", "auto_map", "torch_dtype", "dtype", "vocab_size",
        "hidden_size", "num_hidden_layers", "num_attention_heads", "tie_word_embeddings",
        "quantization_config", "rope_scaling", "max_position_embeddings", "tokenizer_class"]
configs = st.dictionaries(st.sampled_from(KEYS), values | st.just(AUTO_MAP), max_size=6) | values
FUZZ_VERBS = ("inspect", "check", "convert", "normalize", "prepare")


@pytest.mark.hostile_class("fuzz: config.json values x verbs, stdin open")
@pytest.mark.parametrize("verb", FUZZ_VERBS)
def test_config_fuzz_no_internal_error(tmp_path_factory: pytest.TempPathFactory,
                                       verb: str) -> None:
    canary = tmp_path_factory.mktemp("canary") / "CANARY"

    @FUZZ
    @given(cfg=configs)
    def one(cfg: object) -> None:
        tmp = tmp_path_factory.mktemp("f")
        d = tmp / "m"
        d.mkdir()
        (d / "configuration_evil.py").write_text(PAYLOAD.format(canary=str(canary)))
        save_file({"model.embed_tokens.weight": torch.ones(4, 4)}, d / "model.safetensors",
                  metadata={"format": "pt"})
        (d / "config.json").write_text(json.dumps(cfg, allow_nan=True))
        args = {"inspect": ["inspect", str(d)], "check": ["check", str(d)],
                "convert": ["convert", str(d), str(tmp / "o")],
                "normalize": ["normalize", str(d), "--out", str(tmp / "o")],
                "prepare": ["prepare", str(d), "--out", str(tmp / "o")]}[verb]
        r = CliRunner().invoke(cli, args, input="y\n" * 20)
        assert r.exit_code in (0, 1, 2, 3, 4), (cfg, r.output, r.exception)
        assert "internal error" not in r.stderr and "Traceback" not in r.output, (cfg, r.stderr)
        assert not canary.exists(), cfg

    one()
