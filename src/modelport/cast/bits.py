"""bf16 → fp16 and bf16 → fp32 casts on the bits, with numpy.

Why not torch: importing torch costs 1.5 s on the machine we measure on, half of the time
``cp`` + ``sync`` takes for the 3 GiB we cast, and numpy's own float32 → float16 conversion
is a scalar loop (1.3 s/GiB there). bf16 → fp16 needs no rounding for most values: a normal
fp16 holds every bf16 mantissa, so the result is the bf16 bits shifted with the exponent
rebiased. The rest (zeros, values below fp16's normal range, values beyond it, inf and nan)
are looked up in a table of all 65,536 bf16 values, made by numpy's round-to-nearest-even
conversion, with nan quieted the way torch's vectorized cast quiets it.

``tests/unit/test_cast_bits.py`` proves both casts equal to torch's on every bf16 value.
"""

from __future__ import annotations

from functools import cache

import numpy as np

F16_MAX = 0x7BFF  # 65504
_SIGN = 0x8000
_BF16_INF = 0x7F80
_BF16_NORMAL_LO = 0x3880  # 2**-14, fp16's smallest normal
_BF16_NORMAL_HI = 0x4780  # 2**16, the first bf16 value beyond fp16's max


@cache
def _f16_table() -> np.ndarray:
    bits = np.arange(65536, dtype=np.uint32) << 16
    with np.errstate(over="ignore", invalid="ignore"):
        f32 = bits.view(np.float32)
        table = f32.astype(np.float16).view(np.uint16)
    table[np.isnan(f32)] |= 0x0200  # a signalling nan comes out quiet, as from torch
    return table


def bf16_bits_value(bits: int) -> float:
    """The float value of a bf16 bit pattern."""
    return float(np.array([bits << 16], dtype=np.uint32).view(np.float32)[0])


class Scratch:
    """Work arrays for one thread, reused from chunk to chunk (they stay in cache)."""

    def __init__(self, elements: int) -> None:
        self.v, self.t, self.s = (np.empty(elements, np.uint16) for _ in range(3))
        self.m = np.empty(elements, bool)


def _max_abs_bits(v: np.ndarray) -> int:
    """The largest finite |x| of bf16 values, as bits, from ``v`` = the bits shifted left
    by one (the sign dropped)."""
    if not len(v):
        return 0
    top = int(v.max())
    if top < 2 * _BF16_INF:
        return top >> 1
    return int(np.max(v, where=v < 2 * _BF16_INF, initial=0)) >> 1


def _exceptions(m: np.ndarray) -> np.ndarray:
    """Indices that include every True of ``m`` (and maybe some neighbours: looking at eight
    flags at a time is 5x faster, and the table gives the right answer for every value)."""
    if len(m) % 8 or not len(m):
        return np.flatnonzero(m)
    words = np.flatnonzero(m.view(np.uint64) != 0)
    return (words[:, None] * 8 + np.arange(8)).ravel()


def bf16_to_f16(x: np.ndarray, out: np.ndarray, clamp: bool, sc: Scratch
                ) -> tuple[int, int, int]:
    """Cast bf16 bits ``x`` (uint16) into fp16 bits ``out``, rounding to nearest even.

    Returns (largest finite |x| as bf16 bits, finite values beyond ±65504, non-zero values
    that became zero). With ``clamp`` those beyond ±65504 become ±65504, otherwise ±inf.
    """
    n = len(x)
    v, t, s, m = sc.v[:n], sc.t[:n], sc.s[:n], sc.m[:n]
    np.multiply(x, 2, out=v)  # 2|x|: the sign dropped (a multiply is faster than a shift)
    np.multiply(v, 4, out=t)
    np.add(t, 0x4000, out=t)  # the exponent rebiased (mod 2**16)
    np.bitwise_and(x, _SIGN, out=s)
    np.bitwise_xor(t, s, out=out)  # right for every normal fp16
    top = _max_abs_bits(v)
    np.subtract(v, 2 * _BF16_NORMAL_LO, out=t)  # outside the normal range: >= the span
    np.greater_equal(t, 2 * (_BF16_NORMAL_HI - _BF16_NORMAL_LO), out=m)
    idx = _exceptions(m)
    overflow = to_zero = 0
    if len(idx):
        xi = x[idx]
        yi = _f16_table()[xi]
        ai = xi & 0x7FFF
        to_zero = int(np.count_nonzero((ai != 0) & ((yi & 0x7FFF) == 0)))
        if top >= _BF16_NORMAL_HI:
            over = (ai >= _BF16_NORMAL_HI) & (ai < _BF16_INF)
            overflow = int(np.count_nonzero(over))
            if clamp and overflow:
                yi = np.where(over, (xi & _SIGN) | F16_MAX, yi).astype(np.uint16)
        out[idx] = yi
    return top, overflow, to_zero


def bf16_to_f32(x: np.ndarray, out: np.ndarray, sc: Scratch) -> int:
    """Cast bf16 bits ``x`` into fp32 bits ``out`` (exact). Returns the largest finite |x|
    as bf16 bits."""
    np.left_shift(x, 16, out=out, dtype=np.uint32)
    v = sc.v[: len(x)]
    np.multiply(x, 2, out=v)
    return _max_abs_bits(v)


__all__ = ["F16_MAX", "Scratch", "bf16_bits_value", "bf16_to_f16", "bf16_to_f32"]
