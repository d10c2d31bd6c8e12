"""Quality on a model with real structure: a small llama trained here on Python's sources,
perplexity on held-out modules before and after GPTQ and AWQ (dequantized by the tests'
numpy reference, not by modelport or GPTQModel)."""

from __future__ import annotations

import json
from pathlib import Path

import gptqmodel  # noqa: F401 - make setup installs the quantize extra; never skipped
import pytest

import modelport
from tests.quantize.models import (
    HELDOUT_MODULES,
    perplexity,
    reference_model,
    source_model,
    source_text,
    trained_model,
    windows,
)

STEPS = 120  # 17 s alone; the documented figures come from bench/quantize_bench.py (400)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("trained") / "llama"
    trained_model(folder, steps=STEPS)
    return folder


def test_perplexity_before_and_after(trained: Path, tmp_path: Path) -> None:
    data = windows(trained, source_text(HELDOUT_MODULES))[:200]
    base = perplexity(source_model(trained), data)
    vocab = json.loads((trained / "config.json").read_text())["vocab_size"]
    assert base < vocab / 4, f"training failed: perplexity {base:.1f} of {vocab} tokens"
    rows = {"fp32": base}
    for method in ("gptq", "awq"):
        out = tmp_path / method
        rep = modelport.quantize(trained, out, method=method, progress=False)
        ppl = perplexity(reference_model(out), data)
        rows[method] = ppl
        # 4-bit g128 costs a few percent on a model this small; a misread costs far more
        assert ppl < base * 1.25, f"{method}: {base:.2f} -> {ppl:.2f}"
        assert rep.logit_error is not None and rep.logit_error < 0.2
        broken = "v2_zeros" if method == "gptq" else "awq_plain_order"
        assert perplexity(reference_model(out, broken), data) > base * 2
    print("\nperplexity on held-out Python sources: "
          + ", ".join(f"{k} {v:.2f}" for k, v in rows.items()))
