"""The numpy bit casts equal torch's casts on every bf16 value, and count exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modelport.cast import bits as cast_bits

ALL = np.arange(65536, dtype=np.uint32).astype(np.uint16)  # every bf16 bit pattern


def _torch_f16(bits: np.ndarray, clamp: bool) -> np.ndarray:
    x = torch.from_numpy(bits.view(np.int16).copy()).view(torch.bfloat16)
    if clamp:
        w = x.float()
        x = torch.where(torch.isfinite(w), w.clamp(-65504, 65504), w)
    return x.to(torch.float16).view(torch.int16).numpy().view(np.uint16)


def _expected_counts(bits: np.ndarray) -> tuple[float, int, int]:
    x = torch.from_numpy(bits.view(np.int16).copy()).view(torch.bfloat16).double()
    finite = torch.isfinite(x)
    y = x.to(torch.float16)
    max_abs = float(x[finite].abs().max()) if bool(finite.any()) else 0.0
    overflow = int((finite & (x.abs() > 65504)).sum())
    to_zero = int(((x != 0) & (y == 0)).sum())
    return max_abs, overflow, to_zero


def _run(bits: np.ndarray, clamp: bool) -> tuple[np.ndarray, float, int, int]:
    out = np.empty_like(bits)
    top, over, zero = cast_bits.bf16_to_f16(bits, out, clamp, cast_bits.Scratch(len(bits)))
    return out, cast_bits.bf16_bits_value(top), over, zero


@pytest.mark.parametrize("clamp", [False, True])
def test_bf16_to_f16_equals_torch_on_every_value(clamp: bool) -> None:
    out, max_abs, over, zero = _run(ALL, clamp)
    assert np.array_equal(out, _torch_f16(ALL, clamp))
    assert (max_abs, over, zero) == _expected_counts(ALL)


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 1000, 4097])
def test_bf16_to_f16_on_odd_lengths_and_shuffled_values(n: int) -> None:
    rng = np.random.default_rng(n)
    for _ in range(20):
        bits = rng.permutation(ALL)[:n]
        for clamp in (False, True):
            out, max_abs, over, zero = _run(bits, clamp)
            assert np.array_equal(out, _torch_f16(bits, clamp))
            assert (max_abs, over, zero) == _expected_counts(bits)


def test_bf16_to_f16_on_normal_weights_only() -> None:
    """A chunk with no value outside fp16's normal range takes no table lookup and still
    counts nothing."""
    w = torch.randn(8192, generator=torch.Generator().manual_seed(0)).clamp(-8, 8)
    w = torch.where(w.abs() < 1e-3, torch.full_like(w, 0.5), w).to(torch.bfloat16)
    bits = w.view(torch.int16).numpy().view(np.uint16)
    out, max_abs, over, zero = _run(bits, False)
    assert np.array_equal(out, _torch_f16(bits, False))
    assert (over, zero) == (0, 0) and max_abs == float(w.float().abs().max())


def test_bf16_to_f32_equals_torch_on_every_value() -> None:
    out = np.empty(len(ALL), np.uint32)
    top = cast_bits.bf16_to_f32(ALL, out, cast_bits.Scratch(len(ALL)))
    x = torch.from_numpy(ALL.view(np.int16).copy()).view(torch.bfloat16)
    assert np.array_equal(out, x.float().view(torch.int32).numpy().view(np.uint32))
    assert cast_bits.bf16_bits_value(top) == _expected_counts(ALL)[0]


def test_max_abs_ignores_inf_and_nan() -> None:
    bits = np.array([0x7F80, 0xFFC0, 0x3F80, 0xC000], np.uint16)  # inf, -nan, 1, -2
    _, max_abs, over, zero = _run(bits, False)
    assert (max_abs, over, zero) == (2.0, 0, 0)
    _, max_abs, *_ = _run(np.array([0x7F80, 0x7FC1], np.uint16), False)
    assert max_abs == 0.0
