"""The on-disk layouts of 4/8-bit GPTQ v1 and AWQ GEMM checkpoints, and a dequantizer.

Per quantized linear layer ``prefix`` (a ``nn.Linear`` of weight ``[out, in]``), with
``pf = 32 // bits`` values packed into each int32 and ``G = ceil(in / group_size)`` groups:

=========  ========================  ========================  =========
tensor     GPTQ v1 (AutoGPTQ)        AWQ GEMM (AutoAWQ)        dtype
=========  ========================  ========================  =========
qweight    ``[in / pf, out]``        ``[in, out / pf]``        int32
qzeros     ``[G, out / pf]``         ``[G, out / pf]``         int32
scales     ``[G, out]``              ``[G, out]``              float16
g_idx      ``[in]``                  (none)                    int32
=========  ========================  ========================  =========

GPTQ packs along the input axis in plain order and stores each zero point minus one (v1; the
runtimes add the one back). AWQ packs along the output axis in the interleaved order
``0 2 4 6 1 3 5 7`` and stores zero points as they are. Either way
``w[i, o] = scales[g, o] * (q[i, o] - zero[g, o])`` with ``g = g_idx[i]`` (GPTQ) or
``i // group_size`` (AWQ).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)  # nibble k of a packed word holds column AWQ_ORDER[k]
AWQ_UNDO = tuple(AWQ_ORDER.index(c) for c in range(8))  # column c sits in nibble AWQ_UNDO[c]
LEAVES = ("qweight", "qzeros", "scales", "g_idx")


@dataclass(frozen=True)
class Layout:
    """One method's parameters, as they are written to ``quantization_config``."""

    method: str  # "gptq" | "awq"
    bits: int
    group_size: int  # -1: one group over the whole input

    @property
    def pack(self) -> int:
        return 32 // self.bits

    def groups(self, in_features: int) -> int:
        g = in_features if self.group_size == -1 else self.group_size
        return -(-in_features // g)

    def shapes(self, out_features: int, in_features: int) -> dict[str, tuple[str, tuple[int, ...]]]:
        """Expected ``{leaf: (safetensors dtype, shape)}`` for a ``[out, in]`` weight."""
        g, pf = self.groups(in_features), self.pack
        if self.method == "gptq":
            return {"qweight": ("I32", (in_features // pf, out_features)),
                    "qzeros": ("I32", (g, out_features // pf)),
                    "scales": ("F16", (g, out_features)),
                    "g_idx": ("I32", (in_features,))}
        return {"qweight": ("I32", (in_features, out_features // pf)),
                "qzeros": ("I32", (g, out_features // pf)),
                "scales": ("F16", (g, out_features))}


def layout_problems(layout: Layout, prefix: str, out_features: int, in_features: int,
                    found: Mapping[str, tuple[str, tuple[int, ...]]]) -> list[str]:
    """Compare the tensors ``found`` for one layer (leaf -> (dtype, shape)) with the spec."""
    problems = []
    want = layout.shapes(out_features, in_features)
    for leaf, (dtype, shape) in want.items():
        got = found.get(leaf)
        if got is None:
            problems.append(f"{prefix}.{leaf} is missing")
        elif (got[0], tuple(got[1])) != (dtype, shape):
            problems.append(f"{prefix}.{leaf} is {got[0]} {list(got[1])}, "
                            f"the format wants {dtype} {list(shape)}")
    problems += [f"{prefix}.{leaf} does not belong to {layout.method}" for leaf in found
                 if leaf not in want and leaf in LEAVES]
    return problems


def unpack(words: torch.Tensor, bits: int, axis: int, order: tuple[int, ...] | None = None
           ) -> torch.Tensor:
    """Unpack int32 ``words`` into ``32 // bits`` values each, spread along ``axis``."""
    pf = 32 // bits
    shifts = torch.arange(0, 32, bits, dtype=torch.int32, device=words.device)
    vals = (words.to(torch.int32).unsqueeze(-1) >> shifts) & ((1 << bits) - 1)  # [..., pf]
    if order is not None:
        vals = vals[..., list(order)]
    if axis == 0:  # rows r*pf + k
        return vals.permute(0, 2, 1).reshape(words.shape[0] * pf, words.shape[1])
    return vals.reshape(words.shape[0], words.shape[1] * pf)


def dequantize(layout: Layout, t: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The float32 ``[out, in]`` weight that one layer's packed tensors stand for."""
    scales = t["scales"].float()
    if layout.method == "gptq":
        q = unpack(t["qweight"], layout.bits, axis=0)
        zeros = unpack(t["qzeros"], layout.bits, axis=1) + 1  # v1 stores zero - 1
        g = t["g_idx"].long()
    else:
        undo = AWQ_UNDO if layout.bits == 4 else None
        q = unpack(t["qweight"], layout.bits, axis=1, order=undo)
        zeros = unpack(t["qzeros"], layout.bits, axis=1, order=undo)
        g = torch.arange(q.shape[0], device=q.device) // (
            q.shape[0] if layout.group_size == -1 else layout.group_size)
    return ((q - zeros[g]).float() * scales[g]).T.contiguous()


def layout_from_config(qcfg: Mapping[str, object]) -> Layout:
    """The layout a ``quantization_config`` describes (GPTQ v1 or AWQ GEMM only)."""
    method = qcfg.get("quant_method")
    bits = qcfg.get("bits", qcfg.get("w_bit"))
    group = qcfg.get("group_size", qcfg.get("q_group_size"))
    if method not in ("gptq", "awq") or not isinstance(bits, int) or not isinstance(group, int):
        raise ValueError(f"not a GPTQ/AWQ quantization_config: {dict(qcfg)}")
    return Layout(str(method), bits, group)
