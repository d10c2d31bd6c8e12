"""CPU quantization of a small llama trained here on Python's sources: wall time, peak RSS and
perplexity before and after GPTQ and AWQ (dequantized by the tests' numpy reference).

Each quantization runs in its own process (``modelport quantize --json``), so peak RSS is that
run's alone.

    python bench/quantize_bench.py [--steps 400] [--out bench-output/quantize]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]
from tests.quantize.models import (  # noqa: E402
    HELDOUT_MODULES,
    perplexity,
    reference_model,
    source_model,
    source_text,
    trained_model,
    windows,
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--out", type=Path, default=ROOT / "bench-output" / "quantize")
    a = ap.parse_args()
    shutil.rmtree(a.out, ignore_errors=True)
    src = a.out / "trained-llama"
    train = trained_model(src, steps=a.steps)
    data = windows(src, source_text(HELDOUT_MODULES))[:200]
    base = perplexity(source_model(src), data)
    rows = [("fp32 (trained here)", base, None, None, None)]
    results: dict[str, object] = {"training": train, "heldout_windows": len(data),
                                  "perplexity_fp32": base, "runs": {}}
    for method in ("gptq", "awq"):
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "modelport.cli.main", "quantize", str(src),
                            "--out", str(a.out / method), "--method", method, "--json"],
                           capture_output=True, text=True, check=False,
                           env={**os.environ, "GPTQMODEL_CPU_WORKERS": "2"})
        wall = time.perf_counter() - t0
        if p.returncode:
            sys.exit(f"{method} failed:\n{p.stderr[-3000:]}")
        rep = json.loads(p.stdout)
        ppl = perplexity(reference_model(a.out / method), data)
        rows.append((method, ppl, wall, rep["peak_rss_bytes"], rep["quantize_seconds"]))
        results["runs"][method] = {"perplexity": ppl, "wall_seconds": wall,  # type: ignore[index]
                                   "quantize_seconds": rep["quantize_seconds"],
                                   "peak_rss_bytes": rep["peak_rss_bytes"],
                                   "logit_error": rep["logit_error"],
                                   "mean_weight_error": rep["mean_weight_error"],
                                   "bytes_in": rep["bytes_in"], "bytes_out": rep["bytes_out"]}
    (a.out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"trained {train['steps']} steps in {train['train_seconds']} s; perplexity on "
          f"{len(data)} held-out windows of 128 tokens\n")
    print("| model | perplexity | Δ vs fp32 | wall (process) | quantize | peak RSS |")
    print("|---|---|---|---|---|---|")
    for name, ppl, wall, rss, qs in rows:
        if wall is None:
            print(f"| {name} | {ppl:.2f} | — | — | — | — |")
        else:
            print(f"| {name} 4-bit g128 | {ppl:.2f} | {100 * (ppl / base - 1):+.2f} % | "
                  f"{wall:.1f} s | {qs:.1f} s | {rss / 2**30:.2f} GiB |")


if __name__ == "__main__":
    main()
