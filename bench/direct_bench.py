"""The writer around the page cache (``O_DIRECT``) against the page-cache writer, on the same
inputs and the same code otherwise: ``convert`` of each input with every computed shard sent
one way, then the other (``convert.writer.DIRECT_SHARE`` 0: any computed byte is enough; 2:
never), each in its own process, interleaved over ROUNDS rounds (3; DIRECT_BENCH_ROUNDS
changes it), ``sync`` before each; medians.

Usage: python bench/direct_bench.py INPUT [INPUT ...]   (for instance the Meta, DCP and
GGUF inputs ``bench/formats_bench.py`` builds into ``FORMATS_BENCH_INPUTS``); an input
``BASE+ADAPTER`` is a LoRA merge (``merge``) instead of a convert.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from convert_bench import RESIDENT, gib, run_measured

ROUNDS = int(os.environ.get("DIRECT_BENCH_ROUNDS", "3"))
RUN = r"""
import sys, modelport
from modelport.convert import writer
writer.DIRECT_SHARE = float(sys.argv[3])
if "+" in sys.argv[1]:
    from modelport.convert.lora import merge
    merge(*sys.argv[1].split("+"), sys.argv[2])
else:
    modelport.convert(sys.argv[1], sys.argv[2], progress=False)
"""
WAYS = (("around the page cache", "0"), ("through the page cache", "2"))


def main() -> None:
    inputs = [Path(a) for a in sys.argv[1:]]
    if not inputs:
        raise SystemExit(__doc__)
    times: dict[tuple[Path, str], list[float]] = {}
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        out = Path(tmp) / "out"
        for r in range(ROUNDS):
            for src in inputs:
                for way, share in WAYS if r % 2 == 0 else WAYS[::-1]:
                    subprocess.run(["sync"], check=True)
                    secs, _ = run_measured([sys.executable, "-W", "ignore", "-c", RUN, str(src),
                                            str(out), share], way)
                    shutil.rmtree(out)
                    times.setdefault((src, way), []).append(secs)
                    print(f"round {r + 1} {src.name} {way}: {secs:.2f} s", flush=True)
    print(f"\nmedians of {ROUNDS} interleaved rounds\n| input | around the page cache s | "
          "through the page cache s |\n|---|---|---|")
    for src in inputs:
        a, b = (times[(src, w)] for w, _ in WAYS)
        name = src.name if "+" not in str(src) else "merge " + str(src).split("+")[1]
        print(f"| {name} | {statistics.median(a):.2f} ({' '.join(f'{x:.1f}' for x in a)}) "
              f"| {statistics.median(b):.2f} ({' '.join(f'{x:.1f}' for x in b)}) |")
    print(f"peak VmRSS: {', '.join(f'{w} {gib(RESIDENT.get(w, 0))}' for w, _ in WAYS)}")


if __name__ == "__main__":
    main()
