"""Distributed checkpoints saved by torch itself (one process; FSDP2 on 2 gloo processes with
optimizer state; DTensors split on rows and columns over 4), converted and compared with
torch's own dcp_to_torch_save and with the model's logits."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

import modelport
from modelport.errors import CheckpointError
from tests.conftest import logits, tiny_model
from tests.convert_dcp.writers import save_distributed


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("m") / "llama"
    tiny_model("llama").save_pretrained(d)
    return d


def _with_config(ckpt: Path, model_dir: Path) -> Path:
    shutil.copy(model_dir / "config.json", ckpt / "config.json")
    return ckpt


def _anchor(ckpt: Path, tmp: Path) -> dict[str, torch.Tensor]:
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    dcp_to_torch_save(ckpt, tmp / "anchor.pt")
    sd = torch.load(tmp / "anchor.pt", weights_only=False)  # noqa: TID251 - torch's own file
    flat: dict[str, torch.Tensor] = {}

    def walk(prefix: str, node: object) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}{k}.", v)
        elif isinstance(node, torch.Tensor):
            flat[prefix[:-1]] = node

    walk("", sd)
    return flat


def _same(out: Path, anchor: dict[str, torch.Tensor], fitted: dict[str, str]) -> None:
    from safetensors.torch import load_file

    ours: dict[str, torch.Tensor] = {}
    for f in sorted(out.glob("*.safetensors")):
        ours.update(load_file(f))
    back = {v: k for k, v in fitted.items()}  # anchor names are the checkpoint's
    for name, t in ours.items():
        a = anchor[back.get(name, name)]
        a = a.full_tensor() if hasattr(a, "full_tensor") else a
        assert torch.equal(t, a), name
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(out)
    assert torch.equal(logits(reloaded, "llama"), logits(tiny_model("llama"), "llama"))


def test_single_process_state_dict(model_dir: Path, tmp_path: Path) -> None:
    import torch.distributed.checkpoint as dcp

    ckpt = tmp_path / "ck"
    dcp.save(tiny_model("llama").state_dict(), checkpoint_id=ckpt)
    rep = modelport.convert(_with_config(ckpt, model_dir), tmp_path / "out", progress=False,
                            max_shard_size=60_000)
    assert rep.inputs[0].format == "dcp" and rep.verified and len(rep.outputs) > 3
    _same(tmp_path / "out", _anchor(ckpt, tmp_path), rep.renamed)


def test_chunks_not_stored_plainly_are_read_from_their_blobs(
        model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunk that does not lie plainly in its file (compressed, strided, or in another
    dtype) is read through its torch.save blob, allow-listed, and put in place: here every
    chunk, on rows and columns, is taken that way."""
    from modelport.convert import dcp

    ckpt = tmp_path / "ck"
    save_distributed(model_dir, ckpt, 4, "dtensor")
    _with_config(ckpt, model_dir)
    read: list[str] = []
    real = dcp.read_chunk

    def spy(folder: Path, c: object, dtype: str) -> object:
        read.append(dtype)
        return real(folder, c, dtype)  # type: ignore[arg-type]

    monkeypatch.setattr(dcp, "chunk_span", lambda *a: None)
    monkeypatch.setattr(dcp, "read_chunk", spy)
    rep = modelport.convert(ckpt, tmp_path / "out", progress=False)
    assert len(read) == 4 * len(rep.tensor_map)  # every tensor's 4 chunks, each from its blob
    _same(tmp_path / "out", _anchor(ckpt, tmp_path), rep.renamed)


@pytest.mark.parametrize(("mode", "world"), [("fsdp2", 2), ("dtensor", 4)])
def test_multi_rank_checkpoints(model_dir: Path, tmp_path: Path, mode: str, world: int,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Equal to torch's own converter; a tensor split on rows (all of FSDP2's) is copied from
    the ranks' files, never reassembled in memory; only a column split is."""
    from modelport.convert import dcp_convert

    assembled: list[str] = []
    real = dcp_convert.assemble
    monkeypatch.setattr(dcp_convert, "assemble",
                        lambda folder, t, out: assembled.append(t.fqn) or real(folder, t, out))
    ckpt = tmp_path / "ck"
    save_distributed(model_dir, ckpt, world, mode)
    rep = modelport.convert(_with_config(ckpt, model_dir), tmp_path / "out", progress=False)
    assert len(list(ckpt.glob("*.distcp"))) == world
    state = tiny_model("llama").state_dict()  # the writer splits the i-th tensor on dim i % ndim
    columns = {k for i, (k, v) in enumerate(state.items()) if v.dim() > 1 and i % v.dim()}
    assert len(assembled) == (len(columns) if mode == "dtensor" else 0)
    assert mode == "fsdp2" or columns
    assert any("removed leading 'model.'" in w for w in rep.warnings)  # the app-state key
    if mode == "fsdp2":
        left = {s.name for s in rep.skipped_entries}
        assert "optim" in left and "step" in left  # optimizer state is listed, not copied
    _same(tmp_path / "out", _anchor(ckpt, tmp_path), rep.renamed)
    if mode == "fsdp2":  # a byte lost on disk in a tensor copied from two ranks' files
        from modelport.errors import VerificationError
        from tests.functional.test_convert_atomic import _flip_after_write

        flipped = _flip_after_write(monkeypatch, "embed_tokens.weight")
        with pytest.raises(VerificationError, match="bytes differ from the source"):
            modelport.convert(ckpt, tmp_path / "out2", progress=False)
        assert flipped and not (tmp_path / "out2").exists()


def test_broken_checkpoints_write_nothing(model_dir: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "ck"
    save_distributed(model_dir, ckpt, 2, "dtensor")
    _with_config(ckpt, model_dir)
    (ckpt / "__1_0.distcp").rename(tmp_path / "kept.distcp")
    with pytest.raises(CheckpointError, match=r"__1_0\.distcp is missing"):
        modelport.convert(ckpt, tmp_path / "o1", progress=False)
    (tmp_path / "kept.distcp").rename(ckpt / "__1_0.distcp")
    data = (ckpt / ".metadata").read_bytes()
    (ckpt / ".metadata").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable pickle"):
        modelport.convert(ckpt, tmp_path / "o2", progress=False)
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_trainer_layout_inspect_and_prepare(model_dir: Path, tmp_path: Path) -> None:
    """The HF Trainer's checkpoint-N/pytorch_model_fsdp_0/ with config.json one level up."""
    import torch.distributed.checkpoint as dcp

    run = tmp_path / "checkpoint-500"
    dcp.save({"model": tiny_model("llama").state_dict(), "step": 500},
             checkpoint_id=run / "pytorch_model_fsdp_0")
    shutil.copy(model_dir / "config.json", run / "config.json")
    info = modelport.inspect(run)
    (w,) = info.weight_files
    assert w.format == "distributed checkpoint (1 files)" and w.tensors == 21
    assert info.parameters == sum(p.numel() for p in tiny_model("llama").state_dict().values())
    rep = modelport.prepare(run, tmp_path / "bundle", ["watsonx-saas"])
    assert next(s for s in rep.steps if s.verb == "convert").status == "done"
    _same(tmp_path / "bundle", _anchor(run / "pytorch_model_fsdp_0", tmp_path), {
        k: k.removeprefix("model.") for k in _anchor(run / "pytorch_model_fsdp_0", tmp_path)})
