"""Benchmark convert against `cp -r` + `sync` and the eager recipe, on the same bytes.

Usage: python bench/convert_bench.py [--gib 3] [--shard-mib 512] [--dir DIR] [--keep]
Prints a markdown table: wall time, ratio to cp+sync, peak anonymous memory (RssAnon).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

EAGER = r"""
import sys, torch
from safetensors.torch import save_file, load_file
src, dst = sys.argv[1], sys.argv[2]
import os, json
os.makedirs(dst)
files = sorted(f for f in os.listdir(src) if f.endswith('.bin'))
for f in files:
    sd = torch.load(os.path.join(src, f), weights_only=True)
    sd = {k: v.contiguous() for k, v in sd.items()}
    out = os.path.join(dst, f.replace('pytorch_model', 'model').replace('.bin', '.safetensors'))
    save_file(sd, out, metadata={"format": "pt"})
    back = load_file(out)
    assert all(torch.equal(sd[k], back[k]) for k in sd)
    del sd, back
"""

MODELPORT = r"""
import sys, modelport
modelport.convert(sys.argv[1], sys.argv[2], progress=False)
"""


def make_checkpoint(folder: Path, total: int, shard: int, sharded: bool) -> None:
    import torch

    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    rows = 4096
    tensor_bytes = rows * 4096 * 2  # fp16 4096x4096 = 32 MiB
    n = total // tensor_bytes
    per = max(1, shard // tensor_bytes) if sharded else n
    nfiles = -(-n // per)
    weight_map = {}
    for i in range(nfiles):
        sd = {f"layers.{j}.weight": torch.randn(rows, 4096, generator=g, dtype=torch.float16)
              for j in range(i * per, min(n, (i + 1) * per))}
        name = f"pytorch_model-{i + 1:05d}-of-{nfiles:05d}.bin" if nfiles > 1 else \
            "pytorch_model.bin"
        torch.save(sd, folder / name)
        weight_map.update(dict.fromkeys(sd, name))
        del sd
    if nfiles > 1:
        (folder / "pytorch_model.bin.index.json").write_text(
            json.dumps({"metadata": {"total_size": n * tensor_bytes}, "weight_map": weight_map}))
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))


def run_measured(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RssAnon (bytes) of a command, sampled every 5 ms."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    peak = 0

    def sample() -> None:
        nonlocal peak
        while proc.poll() is None:
            try:
                with open(f"/proc/{proc.pid}/status") as f:
                    for line in f:
                        if line.startswith("RssAnon:"):
                            peak = max(peak, int(line.split()[1]) * 1024)
            except OSError:
                pass
            time.sleep(0.005)

    th = threading.Thread(target=sample)
    th.start()
    proc.wait()
    th.join()
    if proc.returncode:
        raise SystemExit(f"{cmd} failed with {proc.returncode}")
    return time.perf_counter() - t0, peak


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=3.0)
    ap.add_argument("--shard-mib", type=int, default=512)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="modelport-bench-", dir=args.dir))
    total = int(args.gib * 2**30)
    py = sys.executable
    rows = []
    try:
        for layout in ("sharded", "single"):
            src = base / f"src-{layout}"
            make_checkpoint(src, total, args.shard_mib * 2**20, layout == "sharded")
            size = sum(f.stat().st_size for f in src.iterdir())
            results: dict[str, tuple[float, int]] = {}
            for rep in range(args.repeat):
                for name, cmd in (
                    ("cp -r + sync", ["sh", "-c", f"cp -r {src} {base}/cp && sync"]),
                    ("eager (torch.load + save_file + reload)",
                     [py, "-c", EAGER, str(src), str(base / "eager")]),
                    ("modelport convert (hash + verify)",
                     [py, "-c", MODELPORT, str(src), str(base / "mp")]),
                ):
                    for d in ("cp", "eager", "mp"):
                        shutil.rmtree(base / d, ignore_errors=True)
                    subprocess.run(["sync"], check=True)
                    wall, peak = run_measured(cmd)
                    if name not in results or wall < results[name][0]:
                        results[name] = (wall, peak if rep == 0 else max(peak, results[name][1]))
            largest = max(f.stat().st_size for f in (base / "mp").glob("*.safetensors"))
            cp = results["cp -r + sync"][0]
            mp = results["modelport convert (hash + verify)"][0]
            eager = results["eager (torch.load + save_file + reload)"][0]
            rows.append(f"\n### {layout}: {gib(size)} fp16 "
                        f"({len(list(src.glob('*.bin')))} .bin file(s)), largest output shard "
                        f"{gib(largest)}\n")
            rows.append("| step | wall s | × cp+sync | peak RssAnon |")
            rows.append("|---|---|---|---|")
            for name, (wall, peak) in results.items():
                rows.append(f"| {name} | {wall:.2f} | {wall / cp:.2f} | {gib(peak)} |")
            rows.append(f"\nmodelport: {mp / cp:.2f}× cp+sync, {eager / mp:.2f}× faster than "
                        f"eager, peak RssAnon "
                        f"{results['modelport convert (hash + verify)'][1] / largest:.2f}× the "
                        f"largest output shard; throughput {size / mp / 2**30:.2f} GiB/s")
            shutil.rmtree(src)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"# convert benchmark ({os.cpu_count()} cores)")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
