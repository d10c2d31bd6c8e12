"""DeepSpeed ZeRO 1/2/3 checkpoints written by DeepSpeed itself on the CPU, converted by
modelport and compared with DeepSpeed's own zero_to_fp32 (tensors identical, logits identical
after reload with transformers)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

import modelport
from modelport._types import MANIFEST
from modelport.cli.main import cli
from modelport.errors import CheckpointError, UnsupportedError
from tests.convert_zero.writers import write_zero

ANCHOR = r"""
import os, sys
os.environ["DS_ACCELERATOR"] = "cpu"
from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
from safetensors.torch import save_file
sd = get_fp32_state_dict_from_zero_checkpoint(sys.argv[1])
save_file({k: v.contiguous().clone() for k, v in sd.items()}, sys.argv[2])
"""

CASES = {  # name: (stage, dtype, model, ranks, freeze)
    "z1-bf16": (1, "bf16", "llama", 2, False),
    "z2-fp32-frozen": (2, "fp32", "llama-odd", 2, True),
    "z2-bf16-tied": (2, "bf16", "gpt2", 2, False),
    "z3-bf16": (3, "bf16", "llama", 2, False),
    "z3-fp32-4ranks-odd": (3, "fp32", "llama-odd", 4, False),
    "z3-bf16-frozen": (3, "bf16", "llama-odd", 2, True),
}


class _Lazy(dict):  # type: ignore[type-arg]
    """Each checkpoint written on first use (a test worker writes only those it needs)."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def __missing__(self, name: str) -> Path:
        self[name] = write_zero(self.root / name, *CASES[name])
        return self[name]


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _Lazy(tmp_path_factory.mktemp("zero"))


def _anchor(src: Path, tmp: Path) -> dict[str, torch.Tensor]:
    out = tmp / "anchor.safetensors"
    r = subprocess.run([sys.executable, "-c", ANCHOR, str(src), str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return load_file(out)


def _ours(folder: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(f))
    return out


def _logits(model: torch.nn.Module) -> torch.Tensor:
    ids = torch.randint(2, 250, (2, 10), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.mark.parametrize("case", list(CASES))
def test_identical_to_zero_to_fp32(case: str, ckpts: dict[str, Path], tmp_path: Path) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM

    src = ckpts[case]
    rep = modelport.convert(src, tmp_path / "out", max_shard_size=40_000, progress=False)
    ours, ref = _ours(tmp_path / "out"), _anchor(src, tmp_path)
    written = set(ours)
    # tied parameters are written once; the anchor repeats them under the shared name
    assert written | set(rep.aliases) == set(ref)
    for k, v in ref.items():
        got = ours[rep.aliases.get(k, k)]
        assert got.dtype == v.dtype and torch.equal(got, v), k
    stage = CASES[case][0]
    assert rep.warnings[0].startswith(f"DeepSpeed ZeRO stage {stage}, {CASES[case][3]} rank")
    assert any(s.name.startswith("optimizer state") for s in rep.skipped_entries)
    assert {s.name for s in rep.skipped_files} >= {"latest", "zero_to_fp32.py"}
    assert len(list((tmp_path / "out").glob("*.safetensors"))) > 1  # sharded
    # the dry-run plan is what convert wrote: the same shards, each with the same tensors
    plan = modelport.plan_convert(src, tmp_path / "dry", modelport.ConvertOptions(
        max_shard_size=40_000))
    plan.close()
    assert [(s.filename, len(s.tensors)) for s in plan.shards] == [
        (o.path, o.tensors) for o in rep.outputs if o.role == "weights"]
    # identical logits: transformers loads our folder; the anchor's state dict goes into a
    # model built from the same config
    mine = AutoModelForCausalLM.from_pretrained(tmp_path / "out", dtype=torch.float32).eval()
    theirs = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(src)).eval()
    _, unexpected = theirs.load_state_dict(ref, strict=False)
    assert not unexpected
    assert torch.equal(_logits(mine), _logits(theirs))


def test_module_weights_stage_2_and_refused_for_stage_3(ckpts: dict[str, Path],
                                                         tmp_path: Path) -> None:
    src = ckpts["z2-bf16-tied"]
    rep = modelport.convert(src, tmp_path / "m", zero_weights="module", progress=False)
    # the anchor: the module DeepSpeed saved, read with torch itself
    path = src / "global_step2" / "mp_rank_00_model_states.pt"
    sd = torch.load(path, weights_only=False)["module"]  # noqa: TID251
    ours = _ours(tmp_path / "m")
    assert set(ours) == set(sd) and all(torch.equal(ours[k], sd[k]) for k in sd)
    assert rep.dtypes == {"bfloat16": len(sd)}  # the engine's module was bf16
    with pytest.raises(UnsupportedError, match="stage-3 module weights"):
        modelport.convert(ckpts["z3-bf16"], tmp_path / "m3", zero_weights="module")
    assert not (tmp_path / "m3").exists()


def test_a_missing_rank_is_named_and_nothing_written(ckpts: dict[str, Path],
                                                     tmp_path: Path) -> None:
    import shutil

    src = tmp_path / "broken"
    shutil.copytree(ckpts["z3-fp32-4ranks-odd"], src)
    (src / "global_step2" / "zero_pp_rank_2_mp_rank_00_optim_states.pt").unlink()
    with pytest.raises(CheckpointError, match=r"written by 4 ranks.*rank\(s\) 2 are missing"):
        modelport.convert(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    r = CliRunner().invoke(cli, ["convert", str(src), str(tmp_path / "out"), "--weights",
                                 "fp32"])
    assert r.exit_code != 0 and "Traceback" not in r.output
    assert "rank(s) 2 are missing" in r.output


def test_inspect_and_prepare_from_a_trainer_folder(ckpts: dict[str, Path],
                                                   tmp_path: Path) -> None:
    import shutil

    src = tmp_path / "checkpoint-2"
    shutil.copytree(ckpts["z3-bf16"], src)
    from tests.spark.conftest import write_wordlevel_tokenizer

    write_wordlevel_tokenizer(src)
    info = modelport.inspect(src)
    (wf,) = info.weight_files
    assert wf.format.startswith("DeepSpeed ZeRO-3") and wf.tensors == 21
    assert info.parameters == sum(v.numel() for v in _anchor(src, tmp_path).values())
    rep = modelport.prepare(src, tmp_path / "bundle", ["watsonx-saas"], progress=False)
    assert [s.verb for s in rep.steps if s.status == "done"][:2] == ["inspect", "convert"]
    m = json.loads((tmp_path / "bundle" / MANIFEST).read_text())
    assert m["model"]["dtypes"] == {"float32": 21}
    assert not [f for f in m["files"] if f["path"] in ("latest", "zero_to_fp32.py")]
