"""Every hostile pickle kind through every verb that reads pickles: nothing runs, ever."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import modelport
from modelport.cli.main import cli
from modelport.errors import CheckpointError, UnsafeCheckpointError
from tests.hostile.payloads import PAYLOADS, appeared, second_pickle_in_zip

ROOT = Path(__file__).resolve().parents[2]
CONTROL = {
    "pickle": "import pickle, sys; pickle.loads(open(sys.argv[1], 'rb').read())",
    "torch": "import torch, sys; torch.load(sys.argv[1], weights_only=False)",
}


def _control(path: Path, how: str, marker: Path) -> None:
    """Prove the payload is live: a plain, unsafe load creates the marker."""
    subprocess.run([sys.executable, "-c", CONTROL[how], str(path)], capture_output=True,
                   timeout=120, cwd=ROOT)
    assert appeared(marker), "control: an unsafe load should run this payload"
    marker.unlink()


@pytest.mark.hostile_class("hostile pickles")
@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_payload_never_runs_in_any_verb(tmp_path: Path, kind: str) -> None:
    marker = tmp_path / "PWNED"
    name, data, how = PAYLOADS[kind](marker)
    f = tmp_path / name
    f.write_bytes(data)
    _control(f, how, marker)

    with pytest.raises((UnsafeCheckpointError, CheckpointError)) as ei:
        modelport.convert(f, tmp_path / "out", progress=False)
    if isinstance(ei.value, UnsafeCheckpointError):
        assert ei.value.globals
    assert not (tmp_path / "out").exists()

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "pytorch_model.bin").write_bytes(data)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama",
                                                    "architectures": ["LlamaForCausalLM"]}))
    info = modelport.inspect(folder)
    assert not info.ok
    rep = modelport.check(folder, ["watsonx-saas"])
    assert not rep.ok
    r = CliRunner().invoke(cli, ["prepare", str(folder), "--out", str(tmp_path / "bundle")])
    assert r.exit_code in (2, 3) and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2
    assert not (tmp_path / "bundle").exists()
    assert not marker.exists(), f"{kind}: the payload ran"


@pytest.mark.hostile_class("hostile pickles")
def test_second_pickle_inside_the_zip_is_never_read(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    f = tmp_path / "m.bin"
    f.write_bytes(second_pickle_in_zip(marker))
    rep = modelport.convert(f, tmp_path / "out", progress=False)
    assert rep.tensors_written == 1 and not marker.exists()


@pytest.mark.hostile_class("hostile pickles")
def test_unregistered_extension_code_is_a_typed_error(tmp_path: Path) -> None:
    f = tmp_path / "ext.pt"
    f.write_bytes(b"\x80\x02\x82\xf0(S'x'\ntR.")  # EXT1 240: resolved through copyreg
    with pytest.raises(CheckpointError):
        modelport.convert(f, tmp_path / "out", progress=False)


@pytest.mark.hostile_class("hostile pickles")
def test_forged_allowed_globals_are_inert(tmp_path: Path) -> None:
    # allowed names, hostile arguments: the stand-ins validate and never call torch
    f = tmp_path / "forged.pt"
    f.write_bytes(b"\x80\x02}q\x00X\x01\x00\x00\x00wq\x01ctorch._utils\n_rebuild_tensor_v2\n"
                  b"(X\x03\x00\x00\x00notK\x00K\x03\x85K\x01\x85\x89tRs.")
    with pytest.raises(CheckpointError, match="storage"):
        modelport.convert(f, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.hostile_class("hostile pickles")
@pytest.mark.parametrize("body", [
    b"\x80\x02N r\x00\x00\x00\x80.",  # LONG_BINPUT 2**31: the unpickler would allocate 16 GB
    b"\x80\x02Nj\xff\xff\xff\x7f.",  # LONG_BINGET far past the memo
    b"\x80\x02B\xff\xff\xff\x7fabc.",  # BINBYTES claiming 2 GB in a 12-byte file
], ids=["memo-put-bomb", "memo-get-bomb", "length-bomb"])
def test_memory_bombs_are_refused_without_the_memory(tmp_path: Path, body: bytes) -> None:
    """Refused before allocating what the bomb claims (2 GB, 2^31 memo slots): the peak of
    Python's allocations, measured, stays under 64 MiB (a wall-clock bound would depend on
    the machine)."""
    import tracemalloc

    f = tmp_path / "bomb.pt"
    f.write_bytes(body)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError):
            modelport.convert(f, tmp_path / "out", progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, peak
