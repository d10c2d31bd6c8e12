"""The one config.json builder for the Llama architecture that Meta's layout, GGUF and
Megatron-LM's Llama-style runs convert to: the sizes come from the tensors that will be
written (vocabulary, hidden, intermediate, tied output), the rest from what the source states;
each format adds its own on top (Mistral's sliding window, Mixtral's experts, Llama 3.1's rope
scaling)."""

from __future__ import annotations

from typing import Any

EMBED, GATE, HEAD = ("model.embed_tokens.weight", "model.layers.0.mlp.gate_proj.weight",
                     "lm_head.weight")


def llama_config(shapes: dict[str, tuple[int, ...]], *, layers: int, heads: int,
                 kv_heads: int, eps: float, rope_theta: float, max_positions: int, dtype: str,
                 intermediate: int | None = None, head_dim: int | None = None,
                 bos: int | None = None, eos: int | None = None) -> dict[str, Any]:
    """config.json of a ``LlamaForCausalLM`` whose tensors have ``shapes`` (name -> shape)."""
    vocab, hidden = shapes[EMBED]
    cfg: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": intermediate if intermediate is not None else shapes[GATE][0],
        "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": kv_heads, "rms_norm_eps": eps, "rope_theta": rope_theta,
        "max_position_embeddings": max_positions, "vocab_size": vocab,
        "tie_word_embeddings": HEAD not in shapes, "hidden_act": "silu",
        "attention_bias": False, "mlp_bias": False, "torch_dtype": dtype,
    }
    if head_dim is not None:
        cfg["head_dim"] = head_dim
    if bos is not None:
        cfg["bos_token_id"] = bos
    if eos is not None:
        cfg["eos_token_id"] = eos
    return cfg


__all__ = ["llama_config"]
