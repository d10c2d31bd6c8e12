"""modelport's format layer against hand-computed values and the tests' numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modelport.quantize.formats import (
    Layout,
    dequantize,
    layout_from_config,
    layout_problems,
    unpack,
)
from tests.quantize.reference import AWQ_PACK_ORDER, awq_gemm, gptq_v1

WORD = 0x76543210  # nibble k holds the value k


def test_unpack_golden_values() -> None:
    w = torch.tensor([[WORD]], dtype=torch.int32)
    assert unpack(w, 4, axis=1).tolist() == [[0, 1, 2, 3, 4, 5, 6, 7]]
    assert unpack(w, 4, axis=0).flatten().tolist() == [0, 1, 2, 3, 4, 5, 6, 7]
    # AWQ: nibble k holds column AWQ_PACK_ORDER[k], so column c reads nibble index(c)
    from modelport.quantize.formats import AWQ_UNDO

    assert unpack(w, 4, axis=1, order=AWQ_UNDO).tolist() == [[0, 4, 1, 5, 2, 6, 3, 7]]
    assert unpack(torch.tensor([[-1]], dtype=torch.int32), 8, axis=1).tolist() == [[255] * 4]
    # a negative int32 word is read as its 32 bits, not sign-extended per nibble
    neg = torch.tensor([[-0x789ABCE0]], dtype=torch.int32)  # 0x87654320 as uint32
    assert unpack(neg, 4, axis=1).tolist() == [[0, 2, 3, 4, 5, 6, 7, 8]]


def test_gptq_v1_golden_layer() -> None:
    """One hand-packed GPTQ v1 layer: in=8, out=8, one group, zero 8 stored as 7."""
    qweight = torch.full((1, 8), WORD, dtype=torch.int32)  # input row k = value k
    qzeros = torch.tensor([[0x77777777]], dtype=torch.int32)
    scales = torch.full((1, 8), 0.5, dtype=torch.float16)
    g_idx = torch.zeros(8, dtype=torch.int32)
    w = dequantize(Layout("gptq", 4, -1), {"qweight": qweight, "qzeros": qzeros,
                                           "scales": scales, "g_idx": g_idx})
    want = torch.tensor([(k - 8) * 0.5 for k in range(8)]).expand(8, 8)  # [out, in]
    assert torch.equal(w, want)


def _random_gptq(rng: np.random.Generator, out_f: int, in_f: int, bits: int, group: int
                 ) -> dict[str, np.ndarray]:
    pf, g = 32 // bits, in_f // group
    return {"qweight": rng.integers(-2**31, 2**31, (in_f // pf, out_f), dtype=np.int64
                                    ).astype(np.int32),
            "qzeros": rng.integers(-2**31, 2**31, (g, out_f // pf), dtype=np.int64
                                   ).astype(np.int32),
            "scales": rng.random((g, out_f)).astype(np.float16),
            "g_idx": (np.arange(in_f) // group).astype(np.int32)}


@pytest.mark.parametrize(("bits", "group"), [(4, 128), (4, 32), (8, 128), (8, 64)])
def test_gptq_dequantize_matches_reference(bits: int, group: int) -> None:
    rng = np.random.default_rng(bits * 1000 + group)
    t = _random_gptq(rng, 64, 256, bits, group)
    ours = dequantize(Layout("gptq", bits, group), {k: torch.from_numpy(v) for k, v in t.items()})
    ref = gptq_v1(t["qweight"], t["qzeros"], t["scales"], t["g_idx"], bits)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-6)


def test_gptq_desc_act_g_idx_is_honoured() -> None:
    rng = np.random.default_rng(7)
    t = _random_gptq(rng, 32, 256, 4, 128)
    t["g_idx"] = rng.permutation(t["g_idx"]).astype(np.int32)
    ours = dequantize(Layout("gptq", 4, 128), {k: torch.from_numpy(v) for k, v in t.items()})
    np.testing.assert_allclose(ours.numpy(), gptq_v1(t["qweight"], t["qzeros"], t["scales"],
                                                     t["g_idx"], 4), rtol=1e-6)


@pytest.mark.parametrize("group", [128, 64, -1])
def test_awq_dequantize_matches_reference(group: int) -> None:
    rng = np.random.default_rng(abs(group))
    in_f, out_f = 256, 64
    g = 1 if group == -1 else in_f // group
    t = {"qweight": rng.integers(-2**31, 2**31, (in_f, out_f // 8), dtype=np.int64
                                 ).astype(np.int32),
         "qzeros": rng.integers(-2**31, 2**31, (g, out_f // 8), dtype=np.int64
                                ).astype(np.int32),
         "scales": rng.random((g, out_f)).astype(np.float16)}
    ours = dequantize(Layout("awq", 4, group), {k: torch.from_numpy(v) for k, v in t.items()})
    np.testing.assert_allclose(ours.numpy(), awq_gemm(t["qweight"], t["qzeros"], t["scales"],
                                                      group), rtol=1e-6)
    assert AWQ_PACK_ORDER == [0, 2, 4, 6, 1, 3, 5, 7]


def test_layout_shapes_and_problems() -> None:
    lay = Layout("gptq", 4, 128)
    assert lay.shapes(512, 256) == {"qweight": ("I32", (32, 512)), "qzeros": ("I32", (2, 64)),
                                    "scales": ("F16", (2, 512)), "g_idx": ("I32", (256,))}
    assert Layout("awq", 4, 128).shapes(512, 256)["qweight"] == ("I32", (256, 64))
    good = dict(lay.shapes(512, 256))
    assert layout_problems(lay, "p", 512, 256, good) == []
    bad = {**good, "scales": ("BF16", (2, 512))}
    bad.pop("g_idx")
    probs = layout_problems(lay, "p", 512, 256, bad)
    assert any("p.scales is BF16" in p for p in probs)
    assert any("p.g_idx is missing" in p for p in probs)
    awq = Layout("awq", 4, 128)
    assert layout_problems(awq, "p", 512, 256, good)[0].startswith("p.qweight is I32 [32, 512]")
    assert any("g_idx does not belong" in p for p in layout_problems(
        awq, "p", 512, 256, {**awq.shapes(512, 256), "g_idx": ("I32", (256,))}))


def test_layout_from_config() -> None:
    assert layout_from_config({"quant_method": "awq", "w_bit": 4, "q_group_size": 64}) == \
        Layout("awq", 4, 64)
    with pytest.raises(ValueError, match="not a GPTQ/AWQ"):
        layout_from_config({"quant_method": "fp8"})
