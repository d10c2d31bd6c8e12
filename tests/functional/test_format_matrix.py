"""Every format through every verb that takes a model: each cell works, with the tensors
``convert`` writes, or refuses in one line that says why. (The formats come from the builders
of their own tests; ZeRO and the s3:// and Spark columns have their own suites.)"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from modelport.cli.main import cli
from tests.conftest import save_bin, tiny_model


def _hf_st(d: Path) -> Path:
    tiny_model("llama").save_pretrained(d)
    return d


def _hf_pickle(legacy: bool) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        m = tiny_model("llama")
        m.config.save_pretrained(d)
        save_bin(m.state_dict(), d, legacy=legacy)
        return d
    return make


def _dcp(d: Path) -> Path:
    import torch.distributed.checkpoint as dcp

    m = tiny_model("llama")
    dcp.save(m.state_dict(), checkpoint_id=d)
    m.config.save_pretrained(d)
    return d


def _meta(d: Path) -> Path:
    from tests.convert_meta.test_meta import _hf
    from tests.convert_meta.test_meta import _meta as write

    write(_hf(2), d, 2)
    return d


def _gguf(d: Path) -> Path:
    from tests.convert_meta.test_gguf import _write_gguf

    d.mkdir()
    _write_gguf(d / "tiny.gguf", "F32")
    return d / "tiny.gguf"


def _llama2c(d: Path) -> Path:
    from tests.convert_meta.test_llama2c import _llama2c as write
    from tests.convert_meta.test_llama2c import _tiny

    write(_tiny(), d / "ckpt.pt", compiled=True)
    return d / "ckpt.pt"


def _megatron(d: Path) -> Path:
    from tests.convert_meta.test_megatron import _llama, write_megatron

    return write_megatron(_llama(), d, 2)


def _adapter(d: Path) -> Path:
    d.mkdir()
    (d / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    from safetensors.torch import save_file

    save_file({"base_model.model.x.lora_A.weight": torch.ones(4, 8)},
              d / "adapter_model.safetensors")
    return d


FORMATS: dict[str, Callable[[Path], Path]] = {
    "hf safetensors": _hf_st, "hf zip pickle": _hf_pickle(False),
    "hf legacy pickle": _hf_pickle(True), "dcp": _dcp, "meta": _meta, "gguf": _gguf,
    "llama2c": _llama2c, "megatron": _megatron, "peft adapter": _adapter,
}


def _tensors(folder: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for p in sorted(folder.glob("*.safetensors")):
        out.update(load_file(p))
    return out


def _run(*args: str):  # type: ignore[no-untyped-def]
    r = CliRunner().invoke(cli, list(args))
    assert r.exit_code != 70 and "internal error" not in r.stderr, r.output
    assert "Traceback" not in r.stderr
    if r.exit_code not in (0, 1):
        assert len(r.stderr.strip().splitlines()) <= 2, r.stderr
    return r


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_format_through_every_verb(tmp_path: Path, fmt: str) -> None:
    src = FORMATS[fmt](tmp_path / "src")
    r = _run("inspect", str(src), "--json")
    assert r.exit_code in (0, 1)
    assert json.loads(r.stdout)["weight_files"], r.stdout
    shard_args = ("--max-shard-size", "100KB")  # several shards: names and split compared
    conv = _run("convert", str(src), str(tmp_path / "conv"), *shard_args, "--json")
    if fmt == "peft adapter":  # merged, never converted
        assert conv.exit_code == 2 and "modelport merge" in conv.stderr
        pre = _run("prepare", str(src), "--out", str(tmp_path / "b"))
        assert pre.exit_code == 2 and "--adapter" in pre.stderr
        return
    assert conv.exit_code == 0, conv.output
    written = {o["path"]: o["tensors"] for o in json.loads(conv.stdout)["outputs"]
               if o["role"] == "weights"}
    ours = _tensors(tmp_path / "conv")
    assert len(written) > 1
    # the plan is what convert wrote: the same shards, each with the same tensors
    dry = _run("convert", str(src), str(tmp_path / "dry"), *shard_args, "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    plan = json.loads(dry.stdout)
    assert {s["file"]: s["tensors"] for s in plan["shards"]} == written
    for s in plan["shards"]:
        assert s["bytes"] == sum(t.nbytes for t in load_file(tmp_path / "conv" / s["file"])
                                 .values())
    assert not (tmp_path / "dry").exists()
    pre = _run("prepare", str(src), "--out", str(tmp_path / "bundle"), "--force", "--json")
    assert pre.exit_code == 0, pre.output
    bundled = _tensors(tmp_path / "bundle")
    assert bundled.keys() == ours.keys()
    assert all(torch.equal(bundled[k], ours[k]) for k in ours)
    assert json.loads((tmp_path / "bundle" / "config.json").read_text())["architectures"]
    shutil.rmtree(tmp_path / "bundle")


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "peft adapter"])
def test_inspect_imports_neither_torch_nor_transformers(tmp_path: Path, fmt: str) -> None:
    """``inspect`` of every format reads headers and metadata only: in a fresh process it
    loads neither torch nor transformers (each costs seconds to import)."""
    import subprocess
    import sys

    src = FORMATS[fmt](tmp_path / "src")
    code = ("import sys, modelport; r = modelport.inspect(sys.argv[1]); "
            "print(r.tensors, 'torch' in sys.modules, 'transformers' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code, str(src)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    tensors, torch_loaded, hf_loaded = r.stdout.split()
    assert int(tensors) > 0 and (torch_loaded, hf_loaded) == ("False", "False")
