"""Peak resident memory of a safetensors re-shard, file pages included (VmHWM: what YARN's
container check and ``top`` count), against the bytes converted.

Usage: python bench/resident_bench.py [--gib 12] [--shard 1GB] [--rounds 3] [--against REV]
Builds ``--gib`` of fp16 safetensors in 0.5 GiB files, converts them into ``--shard`` files,
and prints each run's seconds and peak VmHWM; with ``--against REV`` commit REV's ``src`` runs
too, interleaved, and the medians and the median paired difference are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import sys, modelport
modelport.convert(sys.argv[1], sys.argv[2], progress=False, max_shard_size=sys.argv[3])
print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')))
"""


def make(folder: Path, gib: float) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    folder.mkdir()
    rng = np.random.default_rng(0)
    n = int(gib * 2**30) // (4096 * 4096 * 2)
    per = 16  # 0.5 GiB files
    files = -(-n // per)
    weight_map = {}
    for f in range(files):
        sd = {f"layers.{j}.weight": rng.standard_normal((4096, 4096), np.float32)
              .astype(np.float16) for j in range(f * per, min(n, (f + 1) * per))}
        name = f"model-{f + 1:05d}-of-{files:05d}.safetensors"
        save_file(sd, folder / name, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(sd, name))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))


def run(src_dir: Path, src: Path, out: Path, shard: str) -> tuple[float, int]:
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run(["sync"], check=True)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", CHILD, str(src), str(out), shard],
                       env={**os.environ, "PYTHONPATH": str(src_dir)}, capture_output=True,
                       text=True, check=True)
    return time.perf_counter() - t0, int(r.stdout.split()[-1]) * 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=12.0)
    ap.add_argument("--shard", default="1GB")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--against", metavar="REV", default=None)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    root = Path(__file__).resolve().parents[1]
    base = Path(tempfile.mkdtemp(prefix="modelport-rss-", dir=args.dir))
    try:
        sides = {"this checkout": root / "src"}
        if args.against:
            tar = subprocess.run(["git", "-C", str(root), "archive", args.against, "src"],
                                 check=True, capture_output=True).stdout
            (base / "old").mkdir()
            subprocess.run(["tar", "-x", "-C", str(base / "old")], input=tar, check=True)
            sides[args.against] = base / "old" / "src"
        make(base / "src", args.gib)
        runs: dict[str, list[tuple[float, int]]] = {k: [] for k in sides}
        for r in range(args.rounds):
            for who in (list(sides) if r % 2 == 0 else list(reversed(sides))):
                runs[who].append(run(sides[who], base / "src", base / "out", args.shard))
        largest = max(p.stat().st_size for p in (base / "out").glob("*.safetensors"))
        print(f"# re-shard {args.gib} GiB of safetensors (0.5 GiB files) into {args.shard} "
              f"files ({os.cpu_count()} cores), largest output shard {largest / 2**30:.2f} GiB\n")
        print("| code | median s | runs | peak VmHWM | × largest shard |\n|---|---|---|---|---|")
        for who, rs in runs.items():
            peak = max(h for _, h in rs)
            print(f"| {who} | {statistics.median(t for t, _ in rs):.2f} | "
                  f"{' '.join(f'{t:.2f}' for t, _ in rs)} | {peak / 2**30:.2f} GiB | "
                  f"{peak / largest:.2f} |")
        if args.against:
            d = [a[0] - b[0] for a, b in zip(runs["this checkout"], runs[args.against],
                                              strict=True)]
            print(f"\nmedian paired difference (this − {args.against}): "
                  f"{statistics.median(d):+.2f} s")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
