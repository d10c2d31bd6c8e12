"""Memory as YARN's container check and ``top`` count it: resident pages, the source files'
mapped pages included. A conversion reads each source tensor through a mapping (to hash and
compare it) and unmaps it once read, so the peak stays about a shard whatever the model size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

SHARD = 128 * 10**6  # the output shards asked for
CHILD = r"""
import sys, modelport
modelport.convert(sys.argv[1], sys.argv[2], progress=False, max_shard_size=int(sys.argv[3]))
print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')))
"""


def _source(folder: Path, files: int = 8, per_file: int = 64 * 2**20) -> int:
    """``files`` safetensors shards of random fp16 tensors (8 MiB each)."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    weight_map = {}
    for f in range(files):
        name = f"model-{f + 1:05d}-of-{files:05d}.safetensors"
        tensors = {f"layers.{f}.{j}.weight": rng.standard_normal((2048, 2048), np.float32)
                   .astype(np.float16) for j in range(per_file // (2048 * 2048 * 2))}
        save_file(tensors, folder / name, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(tensors, name))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    return files * per_file


def test_peak_resident_memory_is_about_a_shard_not_the_model(tmp_path: Path) -> None:
    """512 MiB of weights re-sharded into 128 MB files: the process's peak resident set
    (VmHWM: anonymous and file pages) stays under 1.5 shards; before the pages were unmapped
    it held every source byte it had read (here over 4 shards)."""
    total = _source(tmp_path / "src")
    r = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "src"), str(tmp_path / "out"),
                        str(SHARD)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    peak = int(r.stdout.split()[-1]) * 1024
    largest = max(p.stat().st_size for p in (tmp_path / "out").glob("*.safetensors"))
    assert largest <= SHARD and total > 4 * largest
    assert peak <= 1.5 * largest, f"peak resident {peak / 2**20:.0f} MiB"


CHILD_COMPUTED = r"""
import sys, torch, gguf, modelport
from modelport.convert import checkpoint, gguf_source, meta_llama  # noqa: F401 - imports first
base = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS:'))
modelport.convert(sys.argv[1], sys.argv[2], progress=False, max_shard_size=int(sys.argv[3]))
print(base, next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')))
"""


@pytest.mark.parametrize("fmt", ["meta", "model.gguf"])
def test_computed_routes_give_their_source_pages_back(tmp_path: Path, fmt: str) -> None:
    """A 315 MB llama in Meta's layout (2 ranks: q/k permuted, columns concatenated) and as an
    F16 GGUF (q/k permuted), into 64 MB files: what the conversion adds to the resident set
    after its imports stays under 1.5 shards, though a third of the bytes are computed from
    mapped source pages (they are unmapped once copied out, as the copied ones are)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from vendor_bench import BUILD

    subprocess.run([sys.executable, "-W", "ignore", "-c", BUILD, str(tmp_path), "1024", "2816",
                    "8", "4", "8000", "12"], check=True, capture_output=True, timeout=600)
    shard = 64 * 10**6
    r = subprocess.run([sys.executable, "-W", "ignore", "-c", CHILD_COMPUTED,
                        str(tmp_path / fmt), str(tmp_path / "out"), str(shard)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    base, peak = (int(x) * 1024 for x in r.stdout.split()[-2:])
    outs = list((tmp_path / "out").glob("*.safetensors"))
    largest = max(p.stat().st_size for p in outs)
    assert largest <= shard and sum(p.stat().st_size for p in outs) > 4 * largest
    assert peak - base <= 1.5 * largest, f"the conversion added {(peak - base) / 2**20:.0f} MiB"
