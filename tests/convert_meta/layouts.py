"""The rotary row order the original layouts use, written from the published code, not from
modelport: the tests build Meta, Mistral, Mixtral, llama2.c and GGUF checkpoints with it.

transformers' ``convert_llama_weights_to_hf.py`` turns Meta's interleaved (real, imaginary)
row pairs into the Hugging Face half-split order with
``w.view(n_heads, d // n_heads // 2, 2, k).transpose(1, 2).reshape(d, k)``; the inverse below
is what Meta's checkpoints (and llama2.c's) hold, and it is also llama.cpp's own ``permute`` in
``convert_hf_to_gguf.py`` (``reshape(n_head, 2, d // n_head // 2, k).swapaxes(1, 2)``)."""

from __future__ import annotations

import torch


def to_meta_rows(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """A Hugging Face q/k weight in Meta's (and llama.cpp's) interleaved row order."""
    d, k = w.shape
    return w.reshape(n_heads, 2, d // n_heads // 2, k).transpose(1, 2).reshape(d, k)
