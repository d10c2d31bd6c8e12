"""Benchmark convert against `cp -r` + `sync` and the eager recipe, on the same bytes.

Usage: python bench/convert_bench.py [--gib 3] [--shard-mib 512] [--dir DIR] [--keep]
Prints a markdown table: wall time, ratio to cp+sync, peak anonymous memory (RssAnon).

``--against REV`` compares this checkout's ``src`` with commit REV's on the same inputs (a
sharded ``.bin`` folder, copied by file regions, and a torch.distributed.checkpoint of the same
tensors, computed one at a time), the two interleaved over ``--repeat`` rounds: medians, the
median of the paired differences, and peak RssAnon.
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


RESIDENT: dict[str, int] = {}  # the last command's peak VmRSS (file pages included), by name


def run_measured(cmd: list[str], name: str = "") -> tuple[float, int]:
    """Wall seconds and peak RssAnon (bytes) of a command, sampled every 5 ms; its peak VmRSS
    (anonymous and file pages: what YARN and ``top`` count) goes to ``RESIDENT[name]``."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    peak = rss = 0

    def sample() -> None:
        nonlocal peak, rss
        while proc.poll() is None:
            try:
                with open(f"/proc/{proc.pid}/status") as f:
                    for line in f:
                        if line.startswith("RssAnon:"):
                            peak = max(peak, int(line.split()[1]) * 1024)
                        elif line.startswith("VmRSS:"):
                            rss = max(rss, int(line.split()[1]) * 1024)
            except OSError:
                pass
            time.sleep(0.005)

    th = threading.Thread(target=sample)
    th.start()
    proc.wait()
    th.join()
    if proc.returncode:
        raise SystemExit(f"{cmd} failed with {proc.returncode}")
    RESIDENT[name] = max(RESIDENT.get(name, 0), rss)
    return time.perf_counter() - t0, peak


def make_dcp(dst: Path, total: int) -> None:
    """Tensors of the same shapes and total as :func:`make_checkpoint`'s, as a
    torch.distributed.checkpoint (one process, one file)."""
    import torch
    import torch.distributed.checkpoint as dcp

    g = torch.Generator().manual_seed(0)
    n = total // (4096 * 4096 * 2)
    sd = {f"layers.{j}.weight": torch.randn(4096, 4096, generator=g, dtype=torch.float16)
          for j in range(n)}
    dcp.save(sd, checkpoint_id=dst)
    (dst / "config.json").write_text(json.dumps({"model_type": "llama"}))


def against(rev: str, args: argparse.Namespace) -> None:
    """This checkout against ``rev`` (see the module docstring)."""
    import statistics

    root = Path(__file__).resolve().parents[1]
    base = Path(tempfile.mkdtemp(prefix="modelport-ab-", dir=args.dir))
    try:
        old = base / "old"
        old.mkdir()
        tar = subprocess.run(["git", "-C", str(root), "archive", rev, "src"], check=True,
                             capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=tar, check=True)
        srcs = {"sharded .bin (regions)": base / "bin"}
        make_checkpoint(srcs["sharded .bin (regions)"], int(args.gib * 2**30),
                        args.shard_mib * 2**20, True)
        srcs["DCP (computed)"] = base / "dcp"
        make_dcp(srcs["DCP (computed)"], int(args.gib * 2**30))
        sides = {rev: old / "src", "this checkout": root / "src"}
        print(f"# convert: this checkout against {rev} ({os.cpu_count()} cores, "
              f"{args.gib} GiB, {args.repeat} interleaved rounds)\n")
        print("| input | code | median s | runs | peak RssAnon | peak VmRSS |\n"
              "|---|---|---|---|---|---|")
        for label, src in srcs.items():
            runs: dict[str, list[float]] = {k: [] for k in sides}
            peaks: dict[str, int] = dict.fromkeys(sides, 0)
            for r in range(args.repeat):
                order = list(sides) if r % 2 == 0 else list(reversed(sides))
                for who in order:
                    shutil.rmtree(base / "out", ignore_errors=True)
                    subprocess.run(["sync"], check=True)
                    env = {**os.environ, "PYTHONPATH": str(sides[who])}
                    t, peak = run_measured(["env", f"PYTHONPATH={env['PYTHONPATH']}",
                                            sys.executable, "-c", MODELPORT, str(src),
                                            str(base / "out")], f"{label}|{who}")
                    runs[who].append(t)
                    peaks[who] = max(peaks[who], peak)
            for who in sides:
                print(f"| {label} | {who} | {statistics.median(runs[who]):.2f} | "
                      f"{' '.join(f'{x:.2f}' for x in runs[who])} | {gib(peaks[who])} | "
                      f"{gib(RESIDENT[f'{label}|{who}'])} |")
            new, prev = runs["this checkout"], runs[rev]
            diff = statistics.median(a - b for a, b in zip(new, prev, strict=True))
            print(f"| {label} | paired difference (this − {rev}) | {diff:+.2f} "
                  f"({diff / statistics.median(prev):+.1%}) | | | |")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=3.0)
    ap.add_argument("--shard-mib", type=int, default=512)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--against", metavar="REV", default=None,
                    help="compare this checkout's src with commit REV's (interleaved)")
    args = ap.parse_args()
    if args.against:
        against(args.against, args)
        return
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
                    wall, peak = run_measured(cmd, name)
                    if name not in results or wall < results[name][0]:
                        results[name] = (wall, peak if rep == 0 else max(peak, results[name][1]))
            largest = max(f.stat().st_size for f in (base / "mp").glob("*.safetensors"))
            cp = results["cp -r + sync"][0]
            mp = results["modelport convert (hash + verify)"][0]
            eager = results["eager (torch.load + save_file + reload)"][0]
            rows.append(f"\n### {layout}: {gib(size)} fp16 "
                        f"({len(list(src.glob('*.bin')))} .bin file(s)), largest output shard "
                        f"{gib(largest)}\n")
            rows.append("| step | wall s | × cp+sync | peak RssAnon | peak VmRSS |")
            rows.append("|---|---|---|---|---|")
            for name, (wall, peak) in results.items():
                rows.append(f"| {name} | {wall:.2f} | {wall / cp:.2f} | {gib(peak)} | "
                            f"{gib(RESIDENT[name])} |")
            mp_rss = RESIDENT.pop("modelport convert (hash + verify)")
            RESIDENT.clear()
            rows.append(f"\nmodelport: {mp / cp:.2f}× cp+sync, {eager / mp:.2f}× faster than "
                        f"eager, peak RssAnon "
                        f"{results['modelport convert (hash + verify)'][1] / largest:.2f}× the "
                        f"largest output shard, peak VmRSS "
                        f"{mp_rss / largest:.2f}× it; throughput "
                        f"{size / mp / 2**30:.2f} GiB/s")
            shutil.rmtree(src)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"# convert benchmark ({os.cpu_count()} cores)")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
