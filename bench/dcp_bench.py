"""A ~2.6 GiB bf16 llama (26 layers; DCP_BENCH_LAYERS changes it) saved as a distributed
checkpoint by 4 gloo processes (DTensors split on rows and columns): modelport convert vs
torch's dcp_to_torch_save, each in its own process (wall time and peak anonymous memory,
sampled every 5 ms)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent))
from convert_bench import run_measured

from tests.convert_dcp.writers import save_distributed

BUILD = r"""
import sys, torch
from transformers import LlamaConfig, LlamaForCausalLM
torch.manual_seed(0)
cfg = LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632,
                  num_hidden_layers=int(sys.argv[2]), num_attention_heads=16,
                  num_key_value_heads=4, torch_dtype="bfloat16")
LlamaForCausalLM(cfg).to(torch.bfloat16).save_pretrained(sys.argv[1])
"""
OURS = "import sys, modelport; modelport.convert(sys.argv[1], sys.argv[2], progress=False)"
ANCHOR = ("import sys\nfrom torch.distributed.checkpoint.format_utils import dcp_to_torch_save\n"
          "dcp_to_torch_save(sys.argv[1], sys.argv[2] + '.pt')")


def main() -> None:
    import subprocess

    with tempfile.TemporaryDirectory() as d:
        m, ck = Path(d, "m"), Path(d, "ck")
        layers = os.environ.get("DCP_BENCH_LAYERS", "26")
        subprocess.run([sys.executable, "-W", "ignore", "-c", BUILD, str(m), layers],
                       check=True, capture_output=True)
        save_distributed(m, ck, 4, "dtensor")
        shutil.copy(m / "config.json", ck / "config.json")
        size = sum(p.stat().st_size for p in ck.glob("*.distcp"))
        ours = run_measured([sys.executable, "-W", "ignore", "-c", OURS, str(ck), d + "/ours"])
        anchor = run_measured([sys.executable, "-W", "ignore", "-c", ANCHOR, str(ck),
                               d + "/anchor"])
    print(f"DCP -> weights, {size / 2**30:.2f} GiB in 4 .distcp files (bf16 llama, {layers} "
          "layers)")
    print("| tool | wall s | peak RssAnon |\n|---|---|---|")
    print(f"| modelport convert (verified, safetensors) | {ours[0]:.1f} | "
          f"{ours[1] / 2**30:.2f} GiB |")
    print(f"| torch dcp_to_torch_save (one pickle, no verification) | {anchor[0]:.1f} | "
          f"{anchor[1] / 2**30:.2f} GiB |")


if __name__ == "__main__":
    main()
