"""Run DeepSpeed on N CPU processes (gloo) to write a real ZeRO checkpoint."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

WRITER = Path(__file__).with_name("ds_writer.py")


def write_zero(out: Path, stage: int, dtype: str, model: str, ranks: int,
               freeze: bool = False) -> Path:
    import deepspeed  # noqa: F401 - writes the ZeRO checkpoints; a test dependency, never skipped
    # a file rendezvous: no port to choose, so no race with other tests for one
    rdzv = out.parent / f".rdzv-{out.name}-{secrets.token_hex(4)}"
    procs = []
    for r in range(ranks):
        env = {**os.environ, "DS_ACCELERATOR": "cpu", "RANK": str(r), "LOCAL_RANK": str(r),
               "WORLD_SIZE": str(ranks), "MODELPORT_RDZV": f"file://{rdzv}",
               "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
        procs.append(subprocess.Popen(
            [sys.executable, str(WRITER), str(out), str(stage), dtype, model,
             "freeze" if freeze else "-"], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT))
    logs = [p.communicate(timeout=300)[0].decode(errors="replace") for p in procs]
    rdzv.unlink(missing_ok=True)
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log[-3000:]
    return out
