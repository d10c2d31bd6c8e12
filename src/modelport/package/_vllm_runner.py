"""Run in the serving venv's interpreter (it has vLLM, not modelport): serve a bundle with
vLLM offline and print the greedy tokens as one JSON line.

    PYTHON _vllm_runner.py REQUEST.json

The request: ``{"model", "prompts", "max_tokens", "max_model_len", "dtype"}``. The answer,
on the last line of stdout: ``{"vllm", "seconds", "results": [{"prompt_ids", "output_ids",
"logprobs"}]}`` (the 5 likeliest tokens at each generated position),
or ``{"refused": "vLLM's reason, one line"}`` with exit 3 when vLLM does not load the bundle.
The folder's own code never runs (``trust_remote_code=False``).
"""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        req = json.load(f)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB: tiny models, small machines
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    os.environ["HF_HUB_OFFLINE"] = "1"  # the bundle is local: nothing from the Hub
    t0 = time.perf_counter()
    try:
        import vllm
        from vllm import LLM, SamplingParams

        llm = LLM(model=req["model"], tokenizer=req["model"], trust_remote_code=False,
                  enforce_eager=True, max_model_len=req["max_model_len"], dtype=req["dtype"],
                  seed=0)
    except Exception as e:  # vLLM's refusal of the bundle, said in one line
        reason = " ".join(f"{type(e).__name__}: {e}".split())
        reason = reason.split(" Supported architectures:")[0].split(" [type=")[0][:500]
        print(json.dumps({"refused": reason}))
        return 3
    params = SamplingParams(temperature=0.0, max_tokens=req["max_tokens"], ignore_eos=True,
                            logprobs=5)
    try:
        outs = llm.generate(req["prompts"], params, use_tqdm=False)
    except Exception as e:  # a prompt vLLM does not take is a refusal too
        print(json.dumps({"refused": " ".join(f"{type(e).__name__}: {e}".split())[:500]}))
        return 3
    print(json.dumps({
        "vllm": vllm.__version__, "seconds": round(time.perf_counter() - t0, 2),
        "results": [{"prompt_ids": list(o.prompt_token_ids),
                     "output_ids": list(o.outputs[0].token_ids),
                     "logprobs": [{str(t): round(lp.logprob, 4) for t, lp in top.items()}
                                  for top in (o.outputs[0].logprobs or [])]}
                    for o in outs]}))
    return 0


if __name__ == "__main__":  # vLLM spawns its engine process: the guard is required
    sys.exit(main())
