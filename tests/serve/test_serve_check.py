"""serve-check against the real engine: vLLM 0.32 for CPU in .venv-serve (make setup builds
it). The page's example bundle (docs/cli-serve-check.md, run here with vLLM's answer kept)
and a GPTQ bundle (quantize) are served and their greedy tokens equal transformers';
prepare --serve-check passes on vLLM's real answer for the same model; an architecture vLLM
does not serve is refused in one line with vLLM's reason; a difference is reported at its
prompt and position, and prepare then keeps the bundle and uploads nothing."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import modelport
from modelport.errors import ServeMismatchError
from modelport.package import serve_check as sc
from modelport.package.localstore import LocalS3
from modelport.package.upload import UploadOptions
from tests.functional.test_docs_examples import blocks, run_console
from tests.spark.conftest import write_wordlevel_tokenizer

ROOT = Path(__file__).resolve().parents[2]
SERVE = ROOT / ".venv-serve" / "bin" / "python"
LLAMA = ROOT / "fixtures" / "tiny-llama-bin"
CLI = Path(sys.executable).parent / "modelport"
PAGE = ROOT / "docs" / "cli-serve-check.md"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict]:
    """The example of docs/cli-serve-check.md (`prepare`, then `serve-check`) run through the
    CLI in this process with the page's runner and matcher, keeping vLLM's real answer."""
    from click.testing import CliRunner

    from modelport.cli.main import cli

    tmp = tmp_path_factory.mktemp("served")
    shutil.copytree(LLAMA, tmp / "fixtures" / LLAMA.name)
    (block,) = [b for b in blocks(PAGE) if b.run_by == "tests/serve/test_serve_check.py"]
    answers: list[dict] = []
    real = sc._run_vllm
    printed: list[str] = []

    def keep(python: str, req: dict, timeout: float) -> dict:
        answers.append(real(python, req, timeout))
        return answers[-1]

    def modelport_cli(cmd: str) -> tuple[int, str]:
        argv = shlex.split(cmd)
        assert argv[0] == "modelport", cmd
        r = CliRunner().invoke(cli, argv[1:])
        printed.append(r.output)
        return r.exit_code, r.output

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sc, "_run_vllm", keep)
        mp.chdir(tmp)
        assert run_console(block, modelport_cli) == 2
    assert len(answers) == 1  # one vLLM start, by serve-check
    return tmp / "bundle", printed[-1], answers[0]


def test_the_pages_example_is_served_and_recorded(served: tuple[Path, str, dict]) -> None:
    bundle, printed, _ = served
    assert "3 prompt(s), 48 token(s) compared" in printed and "vLLM 0.32.0" in printed
    manifest = json.loads((bundle / "modelport.manifest.json").read_text())
    assert manifest["serve_check"]["ok"] and manifest["serve_check"]["tokens_compared"] == 48
    assert modelport.verify(bundle).ok  # the manifest rewrite kept every digest


def test_prepare_serve_check_passes_on_vllms_real_answer(
        served: tuple[Path, str, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """prepare --serve-check on the same model, given vLLM's real answer for it."""
    monkeypatch.setattr(sc, "_run_vllm", lambda python, req, timeout: served[2])
    rep = modelport.prepare(LLAMA, tmp_path / "b", ["watsonx-saas"], serve_check=True,
                            serve_python=SERVE, progress=False)
    assert rep.serve is not None and rep.serve.ok, rep.serve and rep.serve.summary()
    assert rep.serve.tokens_compared == 3 * 16 and rep.serve.vllm_version == "0.32.0"
    manifest = json.loads((tmp_path / "b" / "modelport.manifest.json").read_text())
    assert manifest["serve_check"]["ok"] and modelport.verify(tmp_path / "b").ok


# GPTQModel calls transformers' deprecated is_gradient_checkpointing while quantizing
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_a_gptq_bundle_is_served(tmp_path: Path) -> None:
    modelport.convert(LLAMA, tmp_path / "st", progress=False)
    modelport.tokenizer(tmp_path / "st")
    modelport.quantize(tmp_path / "st", tmp_path / "gptq", method="gptq", progress=False)
    rep = modelport.serve_check(tmp_path / "gptq", python=str(SERVE), max_tokens=8)
    assert rep.dtype == "bfloat16"  # vLLM's GPTQ kernels take no float32
    assert rep.ok, rep.summary()
    assert rep.tokens_compared == 3 * 8


def test_an_architecture_vllm_does_not_serve_is_refused_in_one_line(tmp_path: Path) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model("codegen", vocab_size=256, n_embd=128, n_layer=1, n_head=4,
                               n_positions=64, rotary_dim=8)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(tmp_path / "m")
    write_wordlevel_tokenizer(tmp_path / "m")  # any tokenizer: vLLM stops at the class
    r = subprocess.run([str(CLI), "serve-check", str(tmp_path / "m"), "--python", str(SERVE)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2 and "Traceback" not in r.stderr
    assert "CodeGenForCausalLM" in lines[0] and "not supported" in lines[0]


def _planted(real: dict, position: int) -> dict:
    """vLLM's real answer with one generated token changed."""
    out = json.loads(json.dumps(real))
    ids = out["results"][1]["output_ids"]
    ids[position] = (ids[position] + 1) % 512
    return out


def test_a_difference_is_reported_and_prepare_uploads_nothing(
        served: tuple[Path, str, dict], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """vLLM's real answer for the same bundle, one generated token changed."""
    answer = served[2]

    def once(python: str, req: dict, timeout: float) -> dict:
        return _planted(answer, 5)

    monkeypatch.setattr(sc, "_run_vllm", once)
    with LocalS3(tmp_path / "s3") as s3:
        for k, v in s3.env().items():
            monkeypatch.setenv(k, v)
        with pytest.raises(ServeMismatchError) as e:
            modelport.prepare(LLAMA, tmp_path / "b", ["watsonx-saas"], serve_check=True,
                              serve_python=SERVE, upload_url="s3://models/x",
                              upload_options=UploadOptions(endpoint_url=s3.endpoint),
                              progress=False)
        import boto3

        c = boto3.client("s3", endpoint_url=s3.endpoint, aws_access_key_id=s3.access_key,
                         aws_secret_access_key=s3.secret_key, region_name="us-east-1")
        assert c.list_objects_v2(Bucket="models").get("KeyCount") == 0
    assert "prompt 1" in str(e.value) and "position 5" in str(e.value)
    manifest = json.loads((tmp_path / "b" / "modelport.manifest.json").read_text())
    diff = manifest["serve_check"]["first_difference"]
    assert (manifest["serve_check"]["ok"], diff["prompt"], diff["position"]) == (False, 1, 5)
    assert diff["where"] == "output" and diff["vllm_token"] != diff["transformers_token"]
    assert set(diff["transformers_logprobs"]) == {str(diff["vllm_token"]),
                                                  str(diff["transformers_token"])}


def test_the_cli_exits_1_at_the_first_difference(served: tuple[Path, str, dict],
                                                 tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from modelport.cli.main import cli

    bundle = Path(shutil.copytree(served[0], tmp_path / "b"))
    monkeypatch.setattr(sc, "_run_vllm", lambda python, req, timeout: _planted(served[2], 2))
    r = CliRunner().invoke(cli, ["serve-check", str(bundle), "--python", str(SERVE)])
    assert r.exit_code == 1, r.output
    assert "DIFFER" in r.output and "first difference: prompt 1" in r.output
    assert "output position 2" in r.output
