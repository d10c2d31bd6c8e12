"""LoRA merge of a ~1 GB bf16 llama: modelport merge vs PEFT's merge_and_unload + save, in one
run, each in its own process (wall time and peak anonymous memory, sampled every 5 ms)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from convert_bench import run_measured

BUILD = r"""
import sys, torch
from pathlib import Path
from transformers import LlamaConfig, LlamaForCausalLM
from peft import LoraConfig, get_peft_model
d = Path(sys.argv[1])
torch.manual_seed(0)
cfg = LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=8,
                  num_attention_heads=16, num_key_value_heads=4, torch_dtype="bfloat16")
m = LlamaForCausalLM(cfg).to(torch.bfloat16)
m.save_pretrained(d / "base")
p = get_peft_model(m, LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj",
                   "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
for n, t in p.named_parameters():
    if "lora_B" in n:
        t.data.normal_(0, 0.01)
p.save_pretrained(d / "adapter")
"""
OURS = r"""
import sys
from modelport.convert.lora import merge
merge(sys.argv[1] + "/base", sys.argv[1] + "/adapter", sys.argv[1] + "/ours")
"""
PEFT = r"""
import sys, torch
from transformers import AutoModelForCausalLM
from peft import PeftModel
base = AutoModelForCausalLM.from_pretrained(sys.argv[1] + "/base", dtype=torch.bfloat16)
PeftModel.from_pretrained(base, sys.argv[1] + "/adapter").merge_and_unload().save_pretrained(
    sys.argv[1] + "/peft")
"""


def run(code: str, d: str) -> tuple[float, float]:
    """Wall seconds and peak RssAnon in GiB (file pages mapped from the model do not count)."""
    dt, peak = run_measured([sys.executable, "-W", "ignore", "-c", code, d])
    return dt, peak / 2**30


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, "-W", "ignore", "-c", BUILD, d], check=True,
                       capture_output=True)
        size = sum(p.stat().st_size for p in Path(d, "base").glob("*.safetensors"))
        ours, peft = run(OURS, d), run(PEFT, d)
    print(f"LoRA merge, {size / 2**30:.2f} GiB bf16 base (r=16, 7 target modules, 8 layers)")
    print("| tool | wall s | peak RssAnon |\n|---|---|---|")
    print(f"| modelport merge (verified) | {ours[0]:.1f} | {ours[1]:.2f} GiB |")
    print(f"| PEFT merge_and_unload + save_pretrained | {peft[0]:.1f} | {peft[1]:.2f} GiB |")


if __name__ == "__main__":
    main()
