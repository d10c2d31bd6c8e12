"""Benchmark normalize: in-place metadata fix and a streaming bf16->fp16 cast of ~3 GB.

Usage: python bench/normalize_bench.py [--gib 3] [--shard-mib 512] [--repeat 5]

The machine this was measured on is noisy (single runs of the same step vary up to 2x), so
every round runs ``cp -r`` + ``sync`` and then each step once, and the table reports medians.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from convert_bench import gib, run_measured

NORMALIZE = r"""
import sys, json, modelport
args = json.loads(sys.argv[1])
modelport.normalize(args.pop("dir"), args.pop("out", None), **args)
"""


def make_folder(folder: Path, total: int, shard: int) -> None:
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    tensor_bytes = 4096 * 4096 * 2
    n = total // tensor_bytes
    per = max(1, shard // tensor_bytes)
    files = -(-n // per)
    for i in range(files):
        sd = {f"layers.{j}.weight": torch.randn(4096, 4096, generator=g).to(torch.bfloat16)
              for j in range(i * per, min(n, (i + 1) * per))}
        save_file(sd, folder / f"model-{i + 1:05d}-of-{files:05d}.safetensors")  # no metadata
    (folder / "config.json").write_text(json.dumps({"model_type": "llama",
                                                    "torch_dtype": "bfloat16"}))


def _cast_cmd(py: str, src: Path, out: Path, **extra: object) -> list[str]:
    return [py, "-c", NORMALIZE, json.dumps({"dir": str(src), "out": str(out), "dtype": "fp16",
                                             **extra})]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=3.0)
    ap.add_argument("--shard-mib", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=5,
                    help="rounds; each round runs cp -r + sync and then every step once")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="modelport-nbench-"))
    py = sys.executable
    try:
        src, one = base / "src", base / "one"
        make_folder(src, int(args.gib * 2**30), args.shard_mib * 2**20)
        make_folder(one, int(args.gib * 2**30), int(args.gib * 2**30))  # one file
        size = sum(f.stat().st_size for f in src.iterdir())
        work, out = base / "work", base / "o"

        def in_place(**extra: object) -> list[str]:
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(src, work)
            return [py, "-c", NORMALIZE, json.dumps({"dir": str(work), "in_place": True,
                                                     **extra})]

        steps: dict[str, Any] = {
            "metadata in place, data hashed before/after": lambda: in_place(),
            "metadata in place, --no-verify": lambda: in_place(verify=False),
            "bf16→fp16 cast to --out, verified": lambda: _cast_cmd(py, src, out),
            "bf16→fp16 cast to --out, --no-verify": lambda: _cast_cmd(py, src, out,
                                                                      verify=False),
            f"bf16→fp16 cast of one {gib(size)} file, verified": lambda: _cast_cmd(py, one,
                                                                                  out),
        }
        times: dict[str, list[float]] = {k: [] for k in ["cp -r + sync", *steps]}
        peaks: dict[str, int] = dict.fromkeys(times, 0)
        for _ in range(args.repeat):  # interleaved: each round sees the same machine
            shutil.rmtree(base / "cp", ignore_errors=True)
            subprocess.run(["sync"], check=True)
            wall, _ = run_measured(["sh", "-c", f"cp -r {src} {base}/cp && sync"])
            times["cp -r + sync"].append(wall)
            shutil.rmtree(base / "cp", ignore_errors=True)
            for label, make in steps.items():
                shutil.rmtree(out, ignore_errors=True)
                cmd = make()
                subprocess.run(["sync"], check=True)
                wall, peak = run_measured(cmd)
                times[label].append(wall)
                peaks[label] = max(peaks[label], peak)
        cp = statistics.median(times["cp -r + sync"])
        rows = [f"# normalize benchmark: {gib(size)} bf16 in "
                f"{len(list(src.glob('*.safetensors')))} safetensors files without metadata, "
                f"{args.repeat} interleaved rounds\n",
                "| step | median wall s | × cp+sync (medians) | runs | peak RssAnon |",
                "|---|---|---|---|---|"]
        for label, runs in times.items():
            med = statistics.median(runs)
            rows.append(f"| {label} | {med:.2f} | {med / cp:.2f} | "
                        f"{' '.join(f'{r:.2f}' for r in runs)} | {gib(peaks[label])} |")
        print("\n".join(rows))
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
