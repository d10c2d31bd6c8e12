"""One rank of a DeepSpeed training run on the CPU that saves a ZeRO checkpoint.

Run by ``writers.write_zero`` once per rank (RANK, WORLD_SIZE, MODELPORT_RDZV set):
``python ds_writer.py OUT STAGE DTYPE MODEL [freeze]``. The model is built from a config with
transformers, trained two steps, and saved by DeepSpeed itself (``save_checkpoint``) in the
layout the HF Trainer uses: OUT/config.json, OUT/latest, OUT/global_step2/.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("DS_ACCELERATOR", "cpu")

import deepspeed
import torch
from transformers import AutoConfig, AutoModelForCausalLM

CONFIGS = {
    # even shapes
    "llama": dict(model_type="llama", vocab_size=256, hidden_size=64, num_hidden_layers=2,
                  num_attention_heads=4, intermediate_size=128, num_key_value_heads=2,
                  head_dim=16),
    # odd numels (15 x 255, 15, 15 x 33): ZeRO-3 padding and ZeRO-2 alignment
    "llama-odd": dict(model_type="llama", vocab_size=255, hidden_size=15, num_hidden_layers=2,
                      num_attention_heads=3, head_dim=6, num_key_value_heads=1,
                      intermediate_size=33),
    # bench/formats_bench.py: 619M parameters, 2.48 GB of fp32 master weights (2 ranks: 4
    # CPU ranks of this size do not fit in 24 GiB)
    "bench": dict(model_type="llama", vocab_size=32000, hidden_size=2048,
                  num_hidden_layers=11, num_attention_heads=16, intermediate_size=5504,
                  num_key_value_heads=4),
    # tied input and output embeddings: DeepSpeed records them as shared parameters
    "gpt2": dict(model_type="gpt2", vocab_size=256, n_embd=32, n_layer=2, n_head=4,
                 n_positions=32),
}


def main() -> None:
    out, stage, dtype, which = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    freeze = len(sys.argv) > 5 and sys.argv[5] == "freeze"
    kw = dict(CONFIGS[which])
    cfg = AutoConfig.for_model(kw.pop("model_type"), bos_token_id=1, eos_token_id=1, **kw)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg)
    if freeze:  # frozen parameters are saved apart (frozen_param_fragments)
        model.get_input_embeddings().weight.requires_grad_(False)
    ds = {"train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 1,
          "optimizer": {"type": "Adam", "params": {"lr": 1e-2, "torch_adam": True}},
          "zero_optimization": {"stage": stage}, "steps_per_print": 1000}
    if dtype == "bf16":
        ds["bf16"] = {"enabled": True}
    deepspeed.init_distributed(dist_backend="gloo", init_method=os.environ["MODELPORT_RDZV"],
                               rank=int(os.environ["RANK"]),
                               world_size=int(os.environ["WORLD_SIZE"]), verbose=False,
                               auto_mpi_discovery=False)
    engine, *_ = deepspeed.initialize(
        model=model, model_parameters=[p for p in model.parameters() if p.requires_grad],
        config=ds)
    g = torch.Generator().manual_seed(int(os.environ["RANK"]))
    for _ in range(2):
        ids = torch.randint(0, cfg.vocab_size, (1, 8), generator=g)
        loss = engine(input_ids=ids, labels=ids).loss
        engine.backward(loss)
        engine.step()
    engine.save_checkpoint(out)
    if int(os.environ["RANK"]) == 0:
        cfg.architectures = [type(model).__name__]
        cfg.save_pretrained(out)
    torch.distributed.barrier()  # every rank's files are written before any rank leaves


if __name__ == "__main__":
    main()
    # Leave without running C++ destructors: under load, DeepSpeed's CPU shared-memory comm
    # op sometimes aborts at teardown ("terminate called without an active exception") after
    # the checkpoint is complete. The tests check the checkpoint itself, tensor by tensor.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
