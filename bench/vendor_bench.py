"""Vendor layouts at ~3 GB, each tool in its own process on the same input (wall time, peak
anonymous memory sampled every 5 ms):

* Meta's original layout, a 1.48B-parameter bf16 llama (2.97 GB) in 2 tensor-parallel ranks:
  ``modelport convert`` against the method of transformers' ``convert_llama_weights_to_hf.py``
  — every rank loaded with ``torch.load``, concatenated and permuted in memory, then saved
  (the script itself is not shipped in the transformers wheel, so its method is run here).
* GGUF, the same model in F16 (2.97 GB): ``modelport convert`` against transformers' own GGUF
  loading (``from_pretrained(..., gguf_file=...)``, then its state dict saved as safetensors:
  ``save_pretrained`` refuses a GGUF-loaded model).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from convert_bench import gib, run_measured

DIM, FF, HEADS, KV, VOCAB = 2048, 5632, 16, 4, 32000
LAYERS = int(os.environ.get("VENDOR_BENCH_LAYERS", "30"))

BUILD = r"""
import json, sys, numpy as np, torch, gguf
from pathlib import Path
root, dim, ff, heads, kv, vocab, layers = Path(sys.argv[1]), *map(int, sys.argv[2:8])
hd = dim // heads
g = torch.Generator().manual_seed(0)
def t(*shape):
    return (torch.randn(*shape, generator=g) * 0.02).to(torch.bfloat16)
meta = {"tok_embeddings.weight": (t(vocab, dim), 1), "norm.weight": (t(dim), None),
        "output.weight": (t(vocab, dim), 0)}
for i in range(layers):
    p = f"layers.{i}."
    meta[p + "attention.wq.weight"] = (t(dim, dim), 0)
    meta[p + "attention.wk.weight"] = (t(kv * hd, dim), 0)
    meta[p + "attention.wv.weight"] = (t(kv * hd, dim), 0)
    meta[p + "attention.wo.weight"] = (t(dim, dim), 1)
    meta[p + "feed_forward.w1.weight"] = (t(ff, dim), 0)
    meta[p + "feed_forward.w2.weight"] = (t(dim, ff), 1)
    meta[p + "feed_forward.w3.weight"] = (t(ff, dim), 0)
    meta[p + "attention_norm.weight"] = (t(dim), None)
    meta[p + "ffn_norm.weight"] = (t(dim), None)
(root / "meta").mkdir(parents=True)
for r in range(2):
    torch.save({k: (v.chunk(2, dim=d)[r] if d is not None else v).clone()
                for k, (v, d) in meta.items()}, root / "meta" / f"consolidated.{r:02d}.pth")
(root / "meta" / "params.json").write_text(json.dumps({
    "dim": dim, "n_layers": layers, "n_heads": heads, "n_kv_heads": kv, "vocab_size": vocab,
    "multiple_of": 256, "norm_eps": 1e-5, "rope_theta": 10000.0}))
w = gguf.GGUFWriter(root / "model.gguf", "llama")
w.add_context_length(4096); w.add_embedding_length(dim); w.add_block_count(layers)
w.add_feed_forward_length(ff); w.add_head_count(heads); w.add_head_count_kv(kv)
w.add_layer_norm_rms_eps(1e-5); w.add_rope_freq_base(10000.0)
w.add_tokenizer_model("llama")
w.add_token_list([f"<t{i}>" for i in range(vocab)])
w.add_token_scores([0.0] * vocab); w.add_token_types([1] * vocab)
names = {"tok_embeddings": "token_embd", "norm": "output_norm", "output": "output",
         "attention.wq": "attn_q", "attention.wk": "attn_k", "attention.wv": "attn_v",
         "attention.wo": "attn_output", "feed_forward.w1": "ffn_gate",
         "feed_forward.w2": "ffn_down", "feed_forward.w3": "ffn_up",
         "attention_norm": "attn_norm", "ffn_norm": "ffn_norm"}
for k, (v, _) in meta.items():
    base = k.removesuffix(".weight")
    if base.startswith("layers."):
        i, rest = base.split(".", 2)[1:]
        name = f"blk.{i}.{names[rest]}.weight"
    else:
        name = names[base] + ".weight"
    a = v.float()  # Meta's q/k order is llama.cpp's: the GGUF stores them as they are
    w.add_tensor(name, a.numpy().astype(np.float32 if a.ndim == 1 else np.float16))
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
"""

OURS = "import sys, modelport; modelport.convert(sys.argv[1], sys.argv[2], progress=False)"

META_ANCHOR = r"""
import json, sys, torch
from pathlib import Path
from safetensors.torch import save_file
def permute(w, n_heads):  # convert_llama_weights_to_hf.py's permute
    rows, cols = w.shape
    return w.view(n_heads, rows // n_heads // 2, 2, cols).transpose(1, 2).reshape(rows, cols)
src, out = Path(sys.argv[1]), Path(sys.argv[2])
p = json.loads((src / "params.json").read_text())
ranks = [torch.load(src / f"consolidated.{r:02d}.pth", map_location="cpu") for r in range(2)]
sd = {}
rows = ("wq", "wk", "wv", "w1", "w3", "output")
for k in ranks[0]:
    if ranks[0][k].ndim == 1:
        sd[k] = ranks[0][k]
        continue
    d = 0 if any(f".{r}." in k or k.startswith(r) for r in rows) else 1
    w = torch.cat([r[k] for r in ranks], dim=d)
    if "attention.wq" in k:
        w = permute(w, p["n_heads"])
    elif "attention.wk" in k:
        w = permute(w, p["n_kv_heads"])
    sd[k] = w.contiguous()
out.mkdir()
save_file(sd, out / "model.safetensors")
"""

GGUF_ANCHOR = r"""
import sys, torch
from pathlib import Path
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM
src, out = Path(sys.argv[1]), Path(sys.argv[2])
m = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name)
out.mkdir()  # save_pretrained refuses a GGUF-loaded model: its state dict, as safetensors
save_file({k: v.contiguous() for k, v in m.state_dict().items()}, out / "model.safetensors")
"""


def main() -> None:
    py = sys.executable
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        root = Path(tmp)
        subprocess.run([py, "-W", "ignore", "-c", BUILD, str(root), str(DIM), str(FF),
                        str(HEADS), str(KV), str(VOCAB), str(LAYERS)], check=True)
        meta_size = sum(p.stat().st_size for p in (root / "meta").glob("*.pth"))
        gguf_size = (root / "model.gguf").stat().st_size
        rows = []
        for label, script, src, out in (
                ("modelport convert, Meta layout (2 ranks)", OURS, root / "meta",
                 root / "o1"),
                ("the anchor's method: torch.load every rank, cat, permute, save", META_ANCHOR,
                 root / "meta", root / "a1"),
                ("modelport convert, GGUF F16", OURS, root / "model.gguf", root / "o2"),
                ("transformers from_pretrained(gguf_file=), state dict saved", GGUF_ANCHOR,
                 root / "model.gguf", root / "a2")):
            secs, rss = run_measured([py, "-W", "ignore", "-c", script, str(src), str(out)])
            largest = max(p.stat().st_size for p in out.glob("*.safetensors"))
            rows.append((label, secs, rss, largest))
        print(f"\nMeta layout {meta_size / 1e9:.2f} GB in 2 ranks; GGUF {gguf_size / 1e9:.2f} GB")
        print("| tool | wall s | peak RssAnon | largest output shard |\n|---|---|---|---|")
        for label, secs, rss, largest in rows:
            print(f"| {label} | {secs:.1f} | {gib(rss)} | {gib(largest)} |")


if __name__ == "__main__":
    main()
