"""An independent reference for GPTQ v1 and AWQ GEMM checkpoints, written from the format
descriptions (AutoGPTQ's ``pack`` / TGI's and vLLM's GPTQ kernels, AutoAWQ's ``WQLinear_GEMM``),
in numpy, sharing no code with modelport or GPTQModel.

Each variant names one way to misread a checkpoint, so the tests can show that a misread
field is detected: ``v2_zeros`` (no +1 on GPTQ zeros), ``gptq_col_axis`` (GPTQ qweight unpacked
along the output axis), ``awq_plain_order`` (AWQ nibbles read in plain order),
``reversed_nibbles`` (nibble 0 taken from the top bits).
"""

from __future__ import annotations

import numpy as np

AWQ_PACK_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]


def _nibbles(words: np.ndarray, bits: int, *, reverse: bool = False) -> np.ndarray:
    """[..., n] int32 -> [..., n, 32/bits] unsigned values, lowest bits first."""
    u = words.astype(np.int64) & 0xFFFFFFFF
    per = 32 // bits
    out = np.empty((*u.shape, per), dtype=np.int64)
    for k in range(per):
        shift = (per - 1 - k) * bits if reverse else k * bits
        out[..., k] = (u >> shift) & ((1 << bits) - 1)
    return out


def gptq_v1(qweight: np.ndarray, qzeros: np.ndarray, scales: np.ndarray, g_idx: np.ndarray,
            bits: int, variant: str = "") -> np.ndarray:
    """Dequantize one GPTQ v1 layer to a float64 ``[out, in]`` weight."""
    per = 32 // bits
    rev = variant == "reversed_nibbles"
    if variant == "gptq_col_axis":  # wrong: treat qweight rows as packing output columns
        n = _nibbles(qweight, bits, reverse=rev).reshape(qweight.shape[0], -1)
        q = n.reshape(g_idx.shape[0], scales.shape[1])
    else:
        n = _nibbles(qweight, bits, reverse=rev)  # [in/per, out, per]
        q = n.transpose(0, 2, 1).reshape(qweight.shape[0] * per, qweight.shape[1])
    z = _nibbles(qzeros, bits, reverse=rev).reshape(qzeros.shape[0], -1)
    if variant != "v2_zeros":
        z = z + 1
    g = g_idx.astype(np.int64)
    w = (q - z[g]) * scales.astype(np.float64)[g]
    return w.T


def awq_gemm(qweight: np.ndarray, qzeros: np.ndarray, scales: np.ndarray, group_size: int,
             bits: int = 4, variant: str = "") -> np.ndarray:
    """Dequantize one AWQ GEMM layer to a float64 ``[out, in]`` weight."""
    per = 32 // bits
    rev = variant == "reversed_nibbles"

    def unpack_cols(words: np.ndarray) -> np.ndarray:
        n = _nibbles(words, bits, reverse=rev)  # [rows, cols/per, per]: nibble k
        if variant == "awq_plain_order":
            return n.reshape(words.shape[0], -1)
        cols = np.empty_like(n)
        for k, col in enumerate(AWQ_PACK_ORDER):  # nibble k holds column col of the 8
            cols[..., col] = n[..., k]
        return cols.reshape(words.shape[0], words.shape[1] * per)

    q, z = unpack_cols(qweight), unpack_cols(qzeros)
    rows = np.arange(q.shape[0])
    g = rows // (q.shape[0] if group_size == -1 else group_size)
    return ((q - z[g]) * scales.astype(np.float64)[g]).T


def dequantize_folder(tensors: dict[str, np.ndarray], qcfg: dict, variant: str = ""
                      ) -> dict[str, np.ndarray]:
    """``{prefix.weight: [out, in]}`` for every packed layer of a state dict (numpy)."""
    bits, group = int(qcfg["bits"]), int(qcfg["group_size"])
    out = {}
    for name in tensors:
        if not name.endswith(".qweight"):
            continue
        p = name[: -len(".qweight")]
        if qcfg["quant_method"] == "gptq":
            out[f"{p}.weight"] = gptq_v1(tensors[f"{p}.qweight"], tensors[f"{p}.qzeros"],
                                         tensors[f"{p}.scales"], tensors[f"{p}.g_idx"], bits,
                                         variant)
        else:
            out[f"{p}.weight"] = awq_gemm(tensors[f"{p}.qweight"], tensors[f"{p}.qzeros"],
                                          tensors[f"{p}.scales"], group, bits, variant)
    return out


def schema_problems(tensors: dict[str, np.ndarray], qcfg: dict,
                    shapes: dict[str, tuple[int, int]]) -> list[str]:
    """Field names, dtypes and shapes of every packed layer against the spec, given the
    ``[out, in]`` shape of each source weight by prefix."""
    bits, group = int(qcfg["bits"]), int(qcfg["group_size"])
    per = 32 // bits
    problems = []
    for p, (out_f, in_f) in shapes.items():
        groups = 1 if group == -1 else in_f // group
        if qcfg["quant_method"] == "gptq":
            want = {"qweight": (np.int32, (in_f // per, out_f)),
                    "qzeros": (np.int32, (groups, out_f // per)),
                    "scales": (np.float16, (groups, out_f)),
                    "g_idx": (np.int32, (in_f,))}
        else:
            want = {"qweight": (np.int32, (in_f, out_f // per)),
                    "qzeros": (np.int32, (groups, out_f // per)),
                    "scales": (np.float16, (groups, out_f))}
        for leaf, (dtype, shape) in want.items():
            t = tensors.get(f"{p}.{leaf}")
            if t is None:
                problems.append(f"{p}.{leaf} missing")
            elif t.dtype != dtype or t.shape != shape:
                problems.append(f"{p}.{leaf}: {t.dtype} {t.shape} != {np.dtype(dtype)} {shape}")
        extra = {f"{p}.{x}" for x in ("qweight", "qzeros", "scales", "g_idx")} - {
            f"{p}.{x}" for x in want}
        problems += [f"{e} must not exist" for e in extra if e in tensors]
    return problems
