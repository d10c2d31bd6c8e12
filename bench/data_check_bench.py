"""check-data on a 1 GiB chat JSONL file: wall time, throughput and peak RSS (streamed)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main(gib: float = 1.0) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "train.jsonl"
        msg = {"messages": [{"role": "user", "content": "Summarise: " + "lorem ipsum " * 40},
                            {"role": "assistant", "content": "A summary. " * 20}]}
        line = (json.dumps(msg) + "\n").encode()
        block = line * 1000
        with p.open("wb") as f:
            while f.tell() < gib * 2**30:
                f.write(block)
        size = p.stat().st_size
        code = ("import sys, modelport\n"
                "r = modelport.check_data(sys.argv[1], context_length=131072)\n"
                "print(r.lines, r.ok, next(x.split()[1] for x in open('/proc/self/status')"
                " if x.startswith('VmHWM')))")
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code, str(p)], capture_output=True,
                             text=True, check=True).stdout.split()
        dt = time.perf_counter() - t0
        lines, ok, rss = int(out[0]), out[1], int(out[2]) / 1024
        print(f"check-data {size / 2**30:.2f} GiB, {lines:,} lines: {dt:.1f} s "
              f"({size / 2**20 / dt:.0f} MiB/s), ok={ok}, peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0)
