"""Quantize a full-size (1.1B, TinyLlama-shaped) llama with GPTQ and AWQ on a GPU.

Builds the model on the GPU (random weights: no hub here), trains a small byte-level BPE on
Python's own sources, then for each method runs ``modelport quantize --device cuda`` in its
own process (so peak RSS is that run's) and checks the output with the tests' independent
numpy reference: schema of every layer, reference-dequantized weights against the source,
and misread variants for contrast. When GPTQModel can load the output with a GPU kernel, the
kernel's logits are compared with the reference-dequantized model's.

    python bench/quantize_gpu.py --out DIR [--layers 22]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]
from tests.quantize.reference import dequantize_folder, schema_problems  # noqa: E402


def build(folder: Path, layers: int, device: str) -> int:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    cfg = LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632,
                      num_hidden_layers=layers, num_attention_heads=32, num_key_value_heads=4,
                      max_position_embeddings=2048, tie_word_embeddings=False)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(cfg).half()
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(folder)
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    files = sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py")))[:200]
    tk.train(files, trainers.BpeTrainer(vocab_size=8000, special_tokens=["<s>", "</s>"],
                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>"
                            ).save_pretrained(folder)
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return params


def reference_check(src: Path, out: Path) -> dict:
    from safetensors.numpy import load_file

    qcfg = json.loads((out / "config.json").read_text())["quantization_config"]
    s = {}
    for f in sorted(src.glob("*.safetensors")):
        s.update(load_file(f))
    o = {}
    for f in sorted(out.glob("*.safetensors")):
        o.update(load_file(f))
    shapes = {k[: -len(".qweight")]: s[k[: -len(".qweight")] + ".weight"].shape
              for k in o if k.endswith(".qweight")}
    res = {"layers": len(shapes), "schema_problems": schema_problems(o, qcfg, shapes)}
    for variant in ("", "v2_zeros", "gptq_col_axis", "awq_plain_order"):
        d = dequantize_folder(o, qcfg, variant)
        errs = [np.linalg.norm(d[k] - s[k]) / np.linalg.norm(s[k].astype(np.float64))
                for k in d]
        res[f"weight_error{'_' + variant if variant else ''}"] = round(float(np.mean(errs)), 4)
    return res


def kernel_logits(src: Path, out: Path, device: str) -> dict:
    """GPTQModel's own GPU kernel against modelport's dequantized float32 weights."""
    from gptqmodel import BACKEND, GPTQModel

    from modelport.quantize.formats import layout_from_config
    from modelport.quantize.verify import logit_error

    qcfg = json.loads((out / "config.json").read_text())["quantization_config"]
    ids = torch.randint(10, 7000, (1, 128), generator=torch.Generator().manual_seed(0))
    backend = BACKEND.TORCH if qcfg["quant_method"] == "gptq" else BACKEND.AWQ_TORCH
    m = GPTQModel.load(str(out), device=device, backend=backend)  # no kernel downloads
    with torch.no_grad():
        k = m.model(ids.to(device)).logits.float().cpu()
    backend = type(next(x for x in m.model.modules() if hasattr(x, "qweight"))).__name__
    del m
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    from transformers import AutoConfig, AutoModelForCausalLM

    from modelport.quantize.verify import dequantized_state_dict

    cfg = AutoConfig.from_pretrained(str(out))
    del cfg.quantization_config
    q = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    q.load_state_dict(dequantized_state_dict(out, layout_from_config(qcfg)), strict=False)
    with torch.no_grad():
        r = q.to(device)(ids.to(device)).logits.float().cpu()
    rel = float((k - r).norm() / r.norm())
    return {"kernel": backend, "kernel_vs_reference_logit_error": round(rel, 5),
            "source_logit_error": logit_error(src, out, layout_from_config(qcfg),
                                              [ids[0].tolist()])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=Path("/tmp/mp-gpu"))
    ap.add_argument("--layers", type=int, default=22)
    ap.add_argument("--methods", default="gptq,awq")
    ap.add_argument("--device", default="cuda")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    src = a.work / "llama-1b"
    t = time.perf_counter()
    params = build(src, a.layers, a.device)
    name = torch.cuda.get_device_name(0) if a.device != "cpu" else "cpu"
    summary = {"device": name, "parameters": params,
               "build_seconds": round(time.perf_counter() - t, 1), "runs": {}}
    print(json.dumps(summary), flush=True)
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{os.environ.get('PYTHONPATH', '')}"}
    for method in a.methods.split(","):
        dst = a.work / f"llama-1b-{method}"
        t = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "modelport.cli.main", "quantize", str(src),
                            "--out", str(dst), "--method", method, "--device", a.device,
                            "--target", "watsonx-saas", "--no-logit-check", "--json"],
                           env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t
        (a.out / f"{method}-stderr.log").write_text(p.stderr[-200_000:])
        if p.returncode:
            summary["runs"][method] = {"rc": p.returncode, "stderr": p.stderr[-2000:]}
            print(json.dumps(summary["runs"][method]), flush=True)
            (a.out / "gpu-quantize.json").write_text(json.dumps(summary, indent=1))
            continue
        rep = json.loads(p.stdout)
        (a.out / f"{method}-report.json").write_text(json.dumps(rep, indent=1))
        run = {k: rep[k] for k in ("quantize_seconds", "verify_seconds", "peak_rss_bytes",
                                   "peak_gpu_bytes", "mean_weight_error", "max_weight_error",
                                   "bytes_in", "bytes_out", "target_errors", "calibration")}
        run["wall_seconds"] = round(wall, 1)
        run["reference"] = reference_check(src, dst)
        try:
            run["kernel"] = kernel_logits(src, dst, a.device)
        except Exception as e:  # report whatever the kernel path says
            run["kernel"] = {"error": f"{type(e).__name__}: {e}"[:500]}
        summary["runs"][method] = run
        print(json.dumps({method: run}), flush=True)
        (a.out / "gpu-quantize.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
