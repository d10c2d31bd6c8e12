"""Distributed checkpoints written by torch itself on the CPU: one process, or 2-4 gloo
processes saving an FSDP2 (``fully_shard``) model (with its optimizer state, or without:
``fsdp2-model``) or DTensors sharded on rows and columns."""

from __future__ import annotations

import os
import sys
from pathlib import Path

SCRIPT = r'''
import os, sys, torch, torch.distributed as dist
import torch.distributed.checkpoint as dcp
from pathlib import Path
rank, world, out, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
model_dir = sys.argv[5]
# a file rendezvous: no port to choose, so no race with other tests for one
dist.init_process_group("gloo", init_method=sys.argv[6], rank=rank, world_size=world)
from torch.distributed.device_mesh import init_device_mesh
from transformers import AutoModelForCausalLM
mesh = init_device_mesh("cpu", (world,))
model = AutoModelForCausalLM.from_pretrained(model_dir)
if mode.startswith("fsdp2"):
    from torch.distributed.fsdp import fully_shard
    for layer in model.model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_state_dict
    if mode == "fsdp2-model":  # the model's state only, as a checkpoint saved for inference
        state = {"model": get_model_state_dict(model)}
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        loss = model(input_ids=torch.arange(8).view(1, 8),
                     labels=torch.arange(8).view(1, 8)).loss
        loss.backward(); opt.zero_grad()  # optimizer state exists, weights unchanged
        msd, osd = get_state_dict(model, opt)
        state = {"model": msd, "optim": osd, "step": 7}
else:  # dtensors: rows for some tensors, columns for others (uneven where sizes do not split)
    from torch.distributed.tensor import Shard, distribute_tensor
    msd = {}
    for i, (k, v) in enumerate(model.state_dict().items()):
        placement = Shard(i % v.dim()) if v.dim() else Shard(0)
        msd[k] = distribute_tensor(v, mesh, [placement]) if v.dim() else v
    state = {"model": msd}
dcp.save(state, checkpoint_id=out)
dist.barrier()
dist.destroy_process_group()
'''


def save_distributed(model_dir: Path, out: Path, world: int, mode: str) -> None:
    """Run ``world`` gloo processes that save ``model_dir``'s model as a DCP at ``out``."""
    import secrets
    import subprocess

    rdzv = out.parent / f".rdzv-{out.name}-{secrets.token_hex(4)}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "error"}
    procs = [subprocess.Popen([sys.executable, "-W", "ignore", "-c", SCRIPT, str(r), str(world),
                               str(out), mode, str(model_dir), f"file://{rdzv}"], env=env,
                              stderr=subprocess.PIPE, text=True) for r in range(world)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    rdzv.unlink(missing_ok=True)
    bad = [e for p, e in zip(procs, errs, strict=True) if p.returncode]
    if bad:
        raise RuntimeError(bad[0][-3000:])
