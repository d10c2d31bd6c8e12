"""Peak resident memory of a safetensors re-shard, file pages included (VmHWM: what YARN's
container check and ``top`` count), against the bytes converted.

Usage: python bench/resident_bench.py [--gib 12] [--shard 1GB] [--rounds 3] [--against REV]
[--input DIR]
Builds ``--gib`` of fp16 safetensors in 0.5 GiB files (or takes ``--input``, a folder an
earlier ``make`` built, and keeps it), converts them into ``--shard`` files
(verified), and prints each run's seconds and peak VmHWM beside ``cp -r`` + ``sync`` of the same
files, run in the same rounds (interleaved); with ``--against REV`` commit REV's ``src`` runs
too, and the medians and the median paired difference are printed.
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


CP = "cp -r + sync"


def run(src_dir: Path | None, src: Path, out: Path, shard: str, settle: float
        ) -> tuple[float, int, int]:
    """Seconds, peak VmHWM and largest output shard of one convert with ``src_dir``'s code
    (None: ``cp -r`` + ``sync``, whose memory and shards are not measured: 0), after
    ``settle`` seconds of rest."""
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run(["sync"], check=True)
    time.sleep(settle)  # the pages the last run freed go back to the host (see --settle)
    t0 = time.perf_counter()
    if src_dir is None:
        subprocess.run(["sh", "-c", 'cp -r "$0" "$1" && sync', str(src), str(out)], check=True)
        return time.perf_counter() - t0, 0, 0
    r = subprocess.run([sys.executable, "-c", CHILD, str(src), str(out), shard],
                       env={**os.environ, "PYTHONPATH": str(src_dir)}, capture_output=True,
                       text=True, check=True)
    secs = time.perf_counter() - t0
    largest = max(p.stat().st_size for p in out.glob("*.safetensors"))
    return secs, int(r.stdout.split()[-1]) * 1024, largest


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=12.0)
    ap.add_argument("--shard", default="1GB")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--against", metavar="REV", default=None)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--input", type=Path, default=None)
    ap.add_argument("--settle", type=float, default=5.0, help="seconds of rest before each "
                    "run: this VM gives freed pages back to its host after ~2 s, and a run "
                    "that touches them again pays for it, so without a rest each run's time "
                    "depends on what ran before it")
    args = ap.parse_args()
    root = Path(__file__).resolve().parents[1]
    base = Path(tempfile.mkdtemp(prefix="modelport-rss-", dir=args.dir))
    try:
        sides: dict[str, Path | None] = {"this checkout": root / "src", CP: None}
        if args.against:
            tar = subprocess.run(["git", "-C", str(root), "archive", args.against, "src"],
                                 check=True, capture_output=True).stdout
            (base / "old").mkdir()
            subprocess.run(["tar", "-x", "-C", str(base / "old")], input=tar, check=True)
            sides[args.against] = base / "old" / "src"
        src = args.input or base / "src"
        if args.input is None:
            make(src, args.gib)
        runs: dict[str, list[tuple[float, int, int]]] = {k: [] for k in sides}
        for r in range(args.rounds):
            for who in (list(sides) if r % 2 == 0 else list(reversed(sides))):
                runs[who].append(run(sides[who], src, base / "out", args.shard, args.settle))
        largest = max(n for rs in runs.values() for _, _, n in rs)
        cp = statistics.median(t for t, _, _ in runs[CP])
        gib = sum(p.stat().st_size for p in src.glob("*.safetensors")) / 2**30
        print(f"# re-shard {gib:.1f} GiB of safetensors (0.5 GiB files) into {args.shard} "
              f"files ({os.cpu_count()} cores), largest output shard {largest / 2**30:.2f} GiB\n")
        print("| code | median s | × cp -r + sync | runs | peak VmHWM | × largest shard |\n"
              "|---|---|---|---|---|---|")
        for who, rs in runs.items():
            peak, med = max(h for _, h, _ in rs), statistics.median(t for t, _, _ in rs)
            times = " ".join(f"{t:.2f}" for t, _, _ in rs)
            print(f"| {who} | {med:.2f} | {med / cp:.2f} | {times} | {peak / 2**30:.2f} GiB | "
                  f"{peak / largest:.2f} |" if who != CP else
                  f"| {who} | {med:.2f} | 1.00 | {times} | — | — |")
        if args.against:
            d = [a[0] - b[0] for a, b in zip(runs["this checkout"], runs[args.against],
                                              strict=True)]
            print(f"\nmedian paired difference (this − {args.against}): "
                  f"{statistics.median(d):+.2f} s")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
