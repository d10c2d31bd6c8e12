"""Model folders for the quantize tests and bench: random and trained llama models with a
byte-level BPE trained on Python's own sources (public domain text available offline)."""

from __future__ import annotations

import json
import math
import sysconfig
import time
from pathlib import Path

import numpy as np
import torch

STDLIB = Path(sysconfig.get_paths()["stdlib"])
TRAIN_MODULES = ["argparse", "textwrap", "json/decoder", "json/encoder", "csv", "string",
                 "fractions", "statistics", "shlex", "heapq", "bisect", "calendar",
                 "difflib", "pprint", "dataclasses", "enum", "functools", "glob", "fnmatch",
                 "configparser", "base64", "colorsys", "copy", "gettext", "locale",
                 "netrc", "numbers", "operator", "optparse", "queue", "random", "sched",
                 "secrets", "selectors", "shutil", "tempfile", "token", "typing", "uuid"]
HELDOUT_MODULES = ["ipaddress", "datetime", "pathlib", "contextlib", "abc"]


def source_text(modules: list[str]) -> str:
    return "\n\n".join((STDLIB / f"{m}.py").read_text(encoding="utf-8") for m in modules)


def write_tokenizer(folder: Path, vocab: int = 512) -> None:
    """A byte-level BPE trained on the training modules (deterministic)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(
        [source_text(TRAIN_MODULES[:12])],
        trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<s>", "</s>"],
                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                            show_progress=False))
    folder.mkdir(parents=True, exist_ok=True)
    PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>"
                            ).save_pretrained(folder)


def llama_config(model_type: str = "llama", vocab: int = 512, hidden: int = 256,
                 inter: int = 512, layers: int = 2):  # type: ignore[no-untyped-def]
    """A small config of a llama-like type (also qwen2, mistral, mixtral, gpt_bigcode...)."""
    from transformers import AutoConfig

    if model_type == "gpt_bigcode":
        return AutoConfig.for_model(model_type, vocab_size=vocab, n_embd=hidden, n_inner=inter,
                                    n_layer=layers, n_head=4, bos_token_id=0, eos_token_id=1)
    extra = {"num_local_experts": 2, "num_experts_per_tok": 2} if model_type == "mixtral" else {}
    return AutoConfig.for_model(model_type, vocab_size=vocab, hidden_size=hidden,
                                intermediate_size=inter, num_hidden_layers=layers,
                                num_attention_heads=4, num_key_value_heads=4,
                                max_position_embeddings=512, tie_word_embeddings=False,
                                bos_token_id=0, eos_token_id=1, pad_token_id=1, **extra)


def random_model(folder: Path, seed: int = 0, model_type: str = "llama", **kw: int) -> Path:
    """A randomly initialised causal LM (float32 on disk) with a trained tokenizer."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(llama_config(model_type, **kw))
    model.save_pretrained(folder)
    write_tokenizer(folder)
    return folder


def windows(folder: Path, text: str, seqlen: int = 128) -> torch.Tensor:
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(str(folder))(text)["input_ids"]
    n = len(ids) // seqlen
    return torch.tensor(ids[: n * seqlen]).view(n, seqlen)


def trained_model(folder: Path, steps: int = 300, seed: int = 0) -> dict[str, float]:
    """Train a small llama on Python's sources; returns the training record."""
    from transformers import AutoModelForCausalLM

    write_tokenizer(folder)
    data = windows(folder, source_text(TRAIN_MODULES))
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(llama_config())
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    model.train()
    loss = torch.tensor(0.0)
    for _ in range(steps):
        batch = data[torch.randint(0, len(data), (16,), generator=g)]
        loss = model(batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
    model.save_pretrained(folder)
    rec = {"steps": steps, "train_seconds": round(time.perf_counter() - t0, 1),
           "final_train_loss": round(float(loss.detach()), 3), "windows": len(data)}
    (folder / "training.json").write_text(json.dumps(rec))
    return rec


def perplexity(model: torch.nn.Module, data: torch.Tensor) -> float:
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(data), 8):
            batch = data[i:i + 8]
            total += float(model(batch, labels=batch).loss) * batch.numel()
            count += batch.numel()
    return math.exp(total / count)


def numpy_tensors(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    out: dict[str, np.ndarray] = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(f))
    return out


def reference_model(folder: Path, variant: str = ""):  # type: ignore[no-untyped-def]
    """The quantized folder as a float32 model, dequantized by the tests' numpy reference and
    loaded by transformers' ``from_pretrained`` (which maps checkpoint names, e.g. Mixtral's
    experts, as it does for the source)."""
    import tempfile

    from safetensors.numpy import save_file
    from transformers import AutoModelForCausalLM

    from tests.quantize.reference import dequantize_folder

    cfg = json.loads((folder / "config.json").read_text())
    qcfg = cfg.pop("quantization_config")
    cfg["dtype"] = "float32"
    t = numpy_tensors(folder)
    sd = {k: v.astype(np.float32) for k, v in t.items()
          if k.rsplit(".", 1)[-1] not in ("qweight", "qzeros", "scales", "g_idx")}
    sd.update({k: np.ascontiguousarray(v, dtype=np.float32)
               for k, v in dequantize_folder(t, qcfg, variant).items()})
    with tempfile.TemporaryDirectory() as d:
        Path(d, "config.json").write_text(json.dumps(cfg))
        save_file(sd, str(Path(d, "model.safetensors")), metadata={"format": "pt"})
        return AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32,
                                                    trust_remote_code=False).eval()


def source_model(folder: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
