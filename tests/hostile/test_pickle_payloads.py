"""Pickles that would run code if loaded: modelport must name them and run nothing.

Each payload creates a marker file when it runs. A control load (plain ``torch.load`` with
``weights_only=False`` in a subprocess) proves the payload is live, so a passing test means
modelport refused it, not that the payload was broken.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import modelport
from modelport.convert.torch_files import load_pickle_checkpoint
from modelport.errors import UnsafeCheckpointError
from tests.conftest import real_path
from tests.hostile.payloads import EvalPayload, PopenPayload, SystemPayload, appeared

PAYLOADS = {"os.system": SystemPayload, "eval": EvalPayload, "subprocess.Popen": PopenPayload}


def _write(path: Path, obj: object, legacy: bool) -> None:
    torch.save(obj, path, **({"_use_new_zipfile_serialization": False} if legacy else {}))


def _control_load_runs_payload(path: Path, marker: Path) -> None:
    code = f"import torch; torch.load({str(path)!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60,
                   cwd=Path(__file__).resolve().parents[2])
    assert appeared(marker), "control: the payload should run under an unsafe load"
    marker.unlink()


@pytest.mark.hostile_class("hostile pickles")
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_payload_never_runs(tmp_path: Path, marker: Path, kind: str, legacy: bool) -> None:
    src = tmp_path / "evil.bin"
    state = {"weight": torch.ones(3), "bias": PAYLOADS[kind](marker)}
    _write(src, state, legacy)
    _control_load_runs_payload(src, marker)

    with pytest.raises(UnsafeCheckpointError) as ei:
        modelport.convert(src, tmp_path / "out", progress=False)
    assert not marker.exists()
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
    assert ei.value.globals  # named, e.g. posix.system / builtins.eval
    assert "nothing was executed" in str(ei.value)
    info = modelport.inspect(src)
    assert not marker.exists()
    assert any("allow-list" in p.message for p in info.problems)


def test_every_offending_global_is_named(tmp_path: Path, marker: Path) -> None:
    src = tmp_path / "evil.pt"
    torch.save({"a": SystemPayload(marker), "b": EvalPayload(marker),
                "c": PopenPayload(marker), "w": torch.ones(1)}, src)
    with pytest.raises(UnsafeCheckpointError) as ei:
        load_pickle_checkpoint(src)
    names = set(ei.value.globals)
    assert {"builtins.eval", "subprocess.Popen"} <= names
    assert names & {"posix.system", "os.system"}
    assert not marker.exists()


def test_payload_in_lightning_extras_is_refused(tmp_path: Path, marker: Path) -> None:
    # the state dict itself is clean; the payload hides in the callbacks
    src = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "callbacks": {"x": SystemPayload(marker)}},
               src)
    with pytest.raises(UnsafeCheckpointError):
        modelport.convert(src, tmp_path / "out", progress=False)
    assert not marker.exists()


def test_allowed_global_is_rebuilt_as_inert_record(tmp_path: Path) -> None:
    import argparse
    import collections

    src = tmp_path / "model.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "hparams": argparse.Namespace(lr=0.1),
                "extra": collections.Counter(a=1)}, src)
    with pytest.raises(UnsafeCheckpointError, match=r"collections\.Counter") as ei:
        modelport.convert(src, tmp_path / "out", progress=False)
    assert "argparse.Namespace" not in ei.value.globals  # inert by default: a plain record
    rep = modelport.convert(src, tmp_path / "out", progress=False,
                            allow_globals=("collections.Counter",))
    assert rep.tensors_written == 1


@pytest.mark.real
def test_real_training_args_pickle_is_refused(tmp_path: Path) -> None:
    p = real_path("ckpt", "hf_training_args_neg", "training_args.bin")
    with pytest.raises(UnsafeCheckpointError) as ei:
        modelport.convert(p, tmp_path / "out", progress=False)
    assert "transformers.training_args.TrainingArguments" in ei.value.globals
    assert not (tmp_path / "out").exists()
