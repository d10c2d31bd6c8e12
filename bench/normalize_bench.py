"""Benchmark normalize: in-place metadata fix and a streaming bf16->fp16 cast of ~3 GB.

Usage: python bench/normalize_bench.py [--gib 3] [--shard-mib 512]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from convert_bench import gib, run_measured

NORMALIZE = r"""
import sys, json, modelport
args = json.loads(sys.argv[1])
rep = modelport.normalize(args.pop("dir"), args.pop("out", None), **args)
print(json.dumps({f.path: f.action for f in rep.files}))
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=3.0)
    ap.add_argument("--shard-mib", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=2, help="best of N for each step")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="modelport-nbench-"))
    py = sys.executable
    try:
        src = base / "src"
        make_folder(src, int(args.gib * 2**30), args.shard_mib * 2**20)
        size = sum(f.stat().st_size for f in src.iterdir())
        rows = [f"# normalize benchmark: {gib(size)} bf16 in "
                f"{len(list(src.glob('*.safetensors')))} safetensors files without metadata\n",
                "| step | wall s | × cp+sync | peak RssAnon | paths taken |",
                "|---|---|---|---|---|"]
        cps = []
        for _ in range(3):
            shutil.rmtree(base / "cp", ignore_errors=True)
            subprocess.run(["sync"], check=True)
            cps.append(run_measured(["sh", "-c", f"cp -r {src} {base}/cp && sync"])[0])
        cp = min(cps)
        shutil.rmtree(base / "cp", ignore_errors=True)
        rows.append(f"| cp -r + sync (best of 3) | {cp:.2f} | 1.00 | 0 | |")
        for label, extra in (("metadata in place, data hashed before/after", {}),
                             ("metadata in place, --no-verify", {"verify": False})):
            runs = []
            for _ in range(args.repeat):
                work = base / "work"
                shutil.rmtree(work, ignore_errors=True)
                shutil.copytree(src, work)
                subprocess.run(["sync"], check=True)
                out = base / "paths.json"
                cmd = [py, "-c", NORMALIZE + f"\nopen({str(out)!r}, 'w').write("
                       "json.dumps({f.path: f.action for f in rep.files}))",
                       json.dumps({"dir": str(work), "in_place": True, **extra})]
                runs.append(run_measured(cmd))
            wall, peak = min(runs)
            paths = sorted(set(json.loads(out.read_text()).values()))
            rows.append(f"| {label} | {wall:.2f} | {wall / cp:.2f} | {gib(peak)} | "
                        f"{', '.join(paths)} |")
        for label, extra in (("bf16→fp16 cast to --out (verified)", {}),
                             ("bf16→fp16 cast to --out, --no-verify", {"verify": False})):
            runs = []
            for _ in range(args.repeat):
                shutil.rmtree(base / "o", ignore_errors=True)
                subprocess.run(["sync"], check=True)
                runs.append(run_measured([py, "-c", NORMALIZE, json.dumps(
                    {"dir": str(src), "out": str(base / "o"), "dtype": "fp16", **extra})]))
            wall, peak = min(runs)
            rows.append(f"| {label} | {wall:.2f} | {wall / cp:.2f} | {gib(peak)} | rewrite |")
        print("\n".join(rows))
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
