"""GGUF (llama.cpp) files of the llama architecture into a Hugging Face folder.

The header (fields, vocabulary, tensor locations) comes from one walk
(``gguf_header``, tested against gguf's ``GGUFReader``); then tensor by tensor: F32/F16/BF16
kept as they are (copied from the file's bytes by the kernel, except the permuted q/k),
quantized types dequantized to float32 by the ``gguf`` package's ``gguf.quants`` (``pip
install 'modelport[gguf]'``; the weights are then *not* the original ones: the report says so,
with the type's error bound), llama.cpp's names mapped back, and its q/k permutation undone.
config.json comes from the GGUF metadata; the embedded vocabulary becomes tokenizer files
(``gguf_vocab``). Anchor: transformers' GGUF loading (its ``gguf_file=``
argument, the whole model dequantized in memory).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from modelport._io.pages import drop_view
from modelport.convert.gguf_header import read_gguf_header
from modelport.convert.gguf_vocab import field
from modelport.convert.llama_config import llama_config
from modelport.convert.meta_llama import permute_into
from modelport.convert.opened import Opened, Produced
from modelport.convert.options import ConvertOptions
from modelport.convert.report import InputFile
from modelport.errors import (
    CheckpointError,
    InputError,
    MissingDependencyError,
    ModelportError,
    UnsupportedError,
)

_LAYER = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj",
          "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
          "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
          "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
_TOP = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
KEPT = {"F32": "F32", "F16": "F16", "BF16": "BF16"}
# the worst relative error of a dequantized weight, per block type (llama.cpp's formats)
ERROR_BOUND = {"Q8_0": "about 0.4% of the block's max |w|", "Q4_0": "about 7%",
               "Q4_K": "about 7%", "Q5_K": "about 3%", "Q6_K": "about 1.6%"}


def open_gguf(src: Path, options: ConvertOptions) -> Opened:
    """Open one llama-architecture ``.gguf`` file (or the one of a folder) from its header."""
    try:
        import gguf
        import numpy as np
    except ImportError as e:
        raise MissingDependencyError("gguf", "gguf") from e
    from modelport.convert.formats import gguf_file

    src = gguf_file(src) or src  # a folder holding one .gguf: that file
    if not src.is_file():
        raise InputError("not a file", path=src)
    r = read_gguf_header(src, arrays=True)
    arch = field(r, "general.architecture")
    if arch != "llama":
        raise UnsupportedError(f"GGUF architecture {arch!r}", path=src, supported=["llama"])
    n_head = int(field(r, "llama.attention.head_count"))
    n_kv = int(field(r, "llama.attention.head_count_kv", n_head))
    entries, plan, types = [], [], {}
    for t in r.tensors:
        tname = t.type_name
        types[tname] = types.get(tname, 0) + 1
        m = re.match(r"^blk\.(\d+)\.(\w+)\.weight$", t.name)
        if m and m.group(2) in _LAYER:
            name = f"model.layers.{m.group(1)}.{_LAYER[m.group(2)]}.weight"
            heads = n_head if m.group(2) == "attn_q" else n_kv if m.group(2) == "attn_k" else 0
        elif t.name.removesuffix(".weight") in _TOP:
            name, heads = _TOP[t.name.removesuffix(".weight")] + ".weight", 0
        else:
            raise UnsupportedError(f"tensor {t.name!r} is not part of the llama layout",
                                   path=src)
        st = KEPT.get(tname, "F32")
        shape = tuple(reversed(t.shape))
        size = {"F32": 4, "F16": 2, "BF16": 2}[st]
        n = 1
        for d in shape:
            n *= d
        entries.append((name, st, shape, n * size))
        plan.append((t, heads))
    data = np.memmap(src, dtype=np.uint8, mode="r")  # the header read: not empty

    def fill(out: Any, i: int) -> None:
        t, heads = plan[i]
        raw = data[t.offset: t.offset + t.n_bytes]
        shape = entries[i][2]
        if t.type_name in KEPT:  # moved as unsigned integers of its size, never converted
            w = raw.view(out.dtype).reshape(shape)
        else:
            qt = gguf.GGMLQuantizationType[t.type_name]
            block, type_size = gguf.GGML_QUANT_SIZES[qt]
            row = t.shape[0] if t.shape else 1
            if row % block:
                raise CheckpointError(f"tensor {t.name!r}: rows of {row} do not fill "
                                      f"{t.type_name} blocks of {block}", path=src)
            try:
                w = gguf.quants.dequantize(raw.reshape(-1, row // block * type_size), qt)
            except NotImplementedError as e:
                raise UnsupportedError(f"GGUF quant type {t.type_name}", path=src,
                                       hint="the gguf package cannot dequantize it") from e
            w = w.astype(np.float32, copy=False).reshape(shape).view(out.dtype)
        # every byte moved once into the writer's buffer, permuted on the way
        if heads:
            permute_into(out, w, heads)
        else:
            out[...] = w
        drop_view(raw, data)  # copied: the file's pages need not stay resident

    def spans(i: int) -> list[tuple[Path, int, int]] | None:
        """A tensor kept as stored and not permuted: its bytes, where the file holds them."""
        t, heads = plan[i]
        if t.type_name not in KEPT or heads or t.n_bytes != entries[i][3]:
            return None
        return [(src, t.offset, entries[i][3])]

    cfg = llama_config(
        {e[0]: e[2] for e in entries}, layers=int(field(r, "llama.block_count")),
        heads=n_head, kv_heads=n_kv,
        eps=float(field(r, "llama.attention.layer_norm_rms_epsilon", 1e-5)),
        rope_theta=float(field(r, "llama.rope.freq_base", 10000.0)),
        max_positions=int(field(r, "llama.context_length", 4096)),
        dtype={"F16": "float16", "BF16": "bfloat16"}.get(
            Counter(e[1] for e in entries).most_common(1)[0][0], "float32"),
        intermediate=int(field(r, "llama.feed_forward_length")),
        bos=int(field(r, "tokenizer.ggml.bos_token_id", 1)),
        eos=int(field(r, "tokenizer.ggml.eos_token_id", 2)))
    if cfg["hidden_size"] != int(field(r, "llama.embedding_length")):
        raise CheckpointError("the token embedding's width differs from "
                              "llama.embedding_length", path=src)
    deq = sum(n for k, n in types.items() if k not in KEPT)
    bounds = sorted({ERROR_BOUND.get(k, "see llama.cpp") for k in types if k not in KEPT})
    stored = ", ".join(f"{n} {k}" for k, n in sorted(types.items()))
    note = (f"every weight is as stored ({stored})" if not deq else
            f"{deq} tensor(s) dequantized to float32: not the original weights "
            f"(stored as {stored}; error bound: {'; '.join(bounds)})")

    def side(tmp: Path) -> list[str]:
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
        return [f"GGUF: {note}; {_vocabulary(r, tmp, src)}"]

    torch_names = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}
    return Opened(
        src=src, inputs=[InputFile(path=str(src), format="gguf", size=src.stat().st_size)],
        tensors=[Produced(e[0], torch_names[e[1]], e[2], e[3], None, lambda i=i: spans(i),
                          lambda out, i=i: fill(out, i)) for i, e in enumerate(entries)],
        tensors_in=len(entries),
        renamed={t.name: e[0] for (t, _), e in zip(plan, entries, strict=True)},
        side=side, side_files=["config.json"])


def _vocabulary(r: Any, tmp: Path, src: Path) -> str:
    """tokenizer.model, tokenizer_config.json and tokenizer.json (with its parity proof) from
    the embedded vocabulary; what happened, in words."""
    from modelport.convert.gguf_vocab import (
        gguf_vocab_type,
        write_spm_files,
        write_tiktoken_files,
    )
    from modelport.tok.verb import tokenizer

    kind = gguf_vocab_type(r)
    if kind is None:
        return "no embedded vocabulary: add the model's tokenizer files"
    try:
        if kind == "gpt2":
            rep = tokenizer(tmp, family=write_tiktoken_files(r, tmp, src))
        else:
            write_spm_files(r, tmp, src)
            rep = tokenizer(tmp)
    except ModelportError as e:  # the weights stand; no tokenizer files that are not proven
        for name in ("tokenizer.model", "tokenizer_config.json", "tokenizer.json"):
            (tmp / name).unlink(missing_ok=True)
        return (f"the embedded {kind} vocabulary was not converted ({e.message}): add the "
                "model's tokenizer files")
    p = rep.parity
    lost = ("sentencepiece's normaliser settings (whether runs of whitespace collapse, "
            "normalisation rules)" if kind != "gpt2" else "the original tokenizer file itself "
            "(the pre-tokenizer is named, not stored)")
    return (f"tokenizer.json rebuilt from the embedded {kind} vocabulary as "
            f"{rep.tokenizer_class}: {p.matched}/{p.examples} lines identical to the rebuilt "
            f"files, {p.known_differences} known difference(s); not proven against the "
            f"model's original tokenizer: a GGUF does not record {lost}, so add the original "
            "tokenizer files where you have them")


__all__ = ["open_gguf"]
