"""DeepSpeed ZeRO-3 on 4 ranks (a 1.23 GB llama's fp32 master weights, written by DeepSpeed on
the CPU): ``modelport convert`` against the checkpoint's own ``zero_to_fp32.py
--safe_serialization``, each in its own process (wall time, peak anonymous memory sampled
every 5 ms), same input, one run.

(A 3 GB model as the issue asks does not fit: DeepSpeed's 4 CPU ranks each build the whole
model before partitioning it, beside their optimizer state, on this 24 GiB machine.)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from convert_bench import gib, run_measured

from tests.convert_zero.writers import write_zero


def main() -> None:
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        ck = write_zero(Path(tmp) / "ckpt", 3, "bf16", "bench", 4)
        size = sum(p.stat().st_size for p in (ck / "global_step2").iterdir())
        ours_s, ours_rss = run_measured([py, "-m", "modelport.cli.main", "convert", str(ck),
                                         str(Path(tmp) / "ours"), "--max-shard-size", "2GB",
                                         "--quiet"])
        ref_s, ref_rss = run_measured([py, str(ck / "zero_to_fp32.py"), str(ck),
                                       str(Path(tmp) / "ref"), "--safe_serialization",
                                       "--max_shard_size", "2GB"])
        out = sum(p.stat().st_size for p in (Path(tmp) / "ours").glob("*.safetensors"))
        print(f"\nZeRO-3, 4 ranks: {size / 1e9:.2f} GB of checkpoint files, "
              f"{out / 1e9:.2f} GB of fp32 weights written")
        print("| tool | wall s | peak RssAnon |\n|---|---|---|")
        print(f"| modelport convert (verified safetensors) | {ours_s:.1f} | {gib(ours_rss)} |")
        print(f"| DeepSpeed zero_to_fp32.py --safe_serialization | {ref_s:.1f} | "
              f"{gib(ref_rss)} |")
        print(f"speed: {ref_s / ours_s:.2f}× the anchor; memory {ours_rss / ref_rss:.2f}×")


if __name__ == "__main__":
    main()
