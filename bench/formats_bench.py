"""Every training and vendor format against the tool a user would otherwise run, on the same
files, in one process tree: each tool in its own process, one after the other, interleaved
over ROUNDS rounds (3; FORMATS_BENCH_ROUNDS changes it), medians reported. Each run's output
is removed before the next, `sync` runs before each, so no run pays for another's
writeback, and then a rest of SETTLE seconds (5; FORMATS_BENCH_SETTLE changes it): this VM
gives the pages a run freed back to its host after about 2 s, and a run that touches them
again pays for it, so without the rest a run's time depends on what ran just before it.

Inputs (built once, about 13 GB on disk; BENCH_DIR chooses where):

* DCP: a 2.6 GiB bf16 llama saved by 4 gloo processes, twice: as FSDP2 saves its model state
  (every tensor split on rows; no optimizer state, so both tools write the same tensors) and
  as DTensors split on rows and columns (tensor parallelism); anchor ``dcp_to_torch_save``.
* ZeRO-3 on 2 ranks, written by DeepSpeed on the CPU (2.48 GB of fp32 master weights, 7.4 GB
  of checkpoint files; 4 CPU ranks of this size do not fit in 24 GiB); anchor the
  checkpoint's ``zero_to_fp32.py --safe_serialization``.
* Meta's layout, a 1.48B-parameter bf16 llama (2.97 GB) in 2 ranks; anchor the method of
  transformers' ``convert_llama_weights_to_hf.py`` (see ``vendor_bench.py``).
* GGUF F16 of the same model; anchor transformers' ``from_pretrained(gguf_file=)`` + save.

Reported per run: wall seconds, peak RssAnon and peak VmRSS (file pages included, as YARN
counts it) sampled every 5 ms, and the largest output file; and, per round, the wall seconds
of ``modelport inspect --json`` of each input in a fresh process, start-up included.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import dcp_bench
import vendor_bench
from convert_bench import RESIDENT, gib, run_measured

from tests.convert_dcp.writers import save_distributed
from tests.convert_zero.writers import write_zero

ROUNDS = int(os.environ.get("FORMATS_BENCH_ROUNDS", "3"))
SETTLE = float(os.environ.get("FORMATS_BENCH_SETTLE", "5"))
OURS = "import sys, modelport; modelport.convert(sys.argv[1], sys.argv[2], progress=False)"


def _build(root: Path) -> list[tuple[str, Path, str, list[str], str]]:
    """(format, input, anchor label, anchor command, input description) per case."""
    py = sys.executable
    m = root / "m"
    subprocess.run([py, "-W", "ignore", "-c", dcp_bench.BUILD, str(m), "26"], check=True,
                   capture_output=True)
    cases = []
    for mode, label in (("fsdp2-model", "DCP, FSDP2 (rows)"),
                        ("dtensor", "DCP, tensor parallel (rows and columns)")):
        ck = root / f"dcp-{mode}"
        save_distributed(m, ck, 4, mode)
        shutil.copy(m / "config.json", ck / "config.json")
        size = sum(p.stat().st_size for p in ck.glob("*.distcp"))
        cases.append((label, ck, "torch dcp_to_torch_save",
                      [py, "-W", "ignore", "-c", dcp_bench.ANCHOR, str(ck), "OUT"],
                      f"{size / 2**30:.2f} GiB bf16 in 4 .distcp files"))
    shutil.rmtree(m)
    zk = write_zero(root / "zero", 3, "bf16", "bench", 2)
    size = sum(p.stat().st_size for p in (zk / "global_step2").iterdir())
    cases.append(("ZeRO-3, 2 ranks", zk, "DeepSpeed zero_to_fp32.py --safe_serialization",
                  [py, str(zk / "zero_to_fp32.py"), str(zk), "OUT", "--safe_serialization"],
                  f"{size / 1e9:.2f} GB of "
                  "checkpoint files (2.48 GB fp32 written)"))
    v = vendor_bench
    subprocess.run([py, "-W", "ignore", "-c", v.BUILD, str(root), str(v.DIM), str(v.FF),
                    str(v.HEADS), str(v.KV), str(v.VOCAB), str(v.LAYERS)], check=True)
    size = sum(p.stat().st_size for p in (root / "meta").glob("*.pth"))
    cases.append(("Meta layout, 2 ranks", root / "meta", "torch.load every rank, cat, "
                  "permute, save (convert_llama_weights_to_hf.py's method)",
                  [py, "-W", "ignore", "-c", v.META_ANCHOR, str(root / "meta"), "OUT"],
                  f"{size / 1e9:.2f} GB bf16"))
    size = (root / "model.gguf").stat().st_size
    cases.append(("GGUF F16", root / "model.gguf", "transformers from_pretrained(gguf_file=) "
                  "+ save",
                  [py, "-W", "ignore", "-c", v.GGUF_ANCHOR, str(root / "model.gguf"), "OUT"],
                  f"{size / 1e9:.2f} GB"))
    return cases


def _run(cmd: list[str], out: Path, name: str) -> tuple[float, int, int, int]:
    """(seconds, peak RssAnon, peak VmRSS, largest output file) of one run; output removed."""
    subprocess.run(["sync"], check=True)
    time.sleep(SETTLE)
    RESIDENT.pop(name, None)
    secs, anon = run_measured(cmd, name)
    files = [out] if out.is_file() else [p for p in out.rglob("*") if p.is_file()]
    if not files and Path(str(out) + ".pt").is_file():
        files = [Path(str(out) + ".pt")]
    largest = max(p.stat().st_size for p in files)
    for p in (out, Path(str(out) + ".pt")):
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    return secs, anon, RESIDENT[name], largest


def main() -> None:
    py = sys.executable
    keep = os.environ.get("FORMATS_BENCH_INPUTS")  # a folder: inputs built once, kept there
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        root = Path(keep) if keep else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        if keep and (root / "cases.json").is_file():
            cases = [(a, Path(b), c, d, e) for a, b, c, d, e in
                     json.loads((root / "cases.json").read_text())]
        else:
            cases = _build(root)
            (root / "cases.json").write_text(json.dumps([(a, str(b), c, d, e)
                                                         for a, b, c, d, e in cases]))
        runs: dict[tuple[str, str], list[tuple[float, int, int, int]]] = {}
        inspect: dict[str, list[float]] = {}
        for r in range(ROUNDS):
            for label, src, _, anchor, _ in cases:
                pair = [("ours", [py, "-W", "ignore", "-c", OURS, str(src), "OUT"]),
                        ("anchor", anchor)]
                for who, cmd in pair if r % 2 == 0 else pair[::-1]:
                    out = root / "out"
                    secs = _run([str(out) if c == "OUT" else c for c in cmd], out, who)
                    runs.setdefault((label, who), []).append(secs)
                    print(f"round {r + 1} {label} {who}: {secs[0]:.2f} s", flush=True)
                t0 = time.perf_counter()
                rc = subprocess.run([py, "-m", "modelport.cli.main", "inspect", str(src),
                                     "--json"], capture_output=True).returncode
                if rc not in (0, 1):  # 1: inspect found something to fix (a report)
                    raise SystemExit(f"inspect {src} exited {rc}")
                inspect.setdefault(label, []).append(time.perf_counter() - t0)
    print(f"\nmedians of {ROUNDS} interleaved rounds (each tool in its own process)")
    print("| format | input | modelport s | anchor | anchor s | speed-up | peak RssAnon "
          "modelport / anchor | peak VmRSS modelport / anchor | largest output file "
          "modelport / anchor | inspect s |\n|---|---|---|---|---|---|---|---|---|---|")
    for label, _, anchor_label, _, desc in cases:
        o, a = runs[(label, "ours")], runs[(label, "anchor")]

        def med(xs: list[tuple[float, int, int, int]], i: int) -> float:
            return statistics.median(x[i] for x in xs)

        print(f"| {label} | {desc} | {med(o, 0):.2f} ({' '.join(f'{x[0]:.1f}' for x in o)}) "
              f"| {anchor_label} | {med(a, 0):.2f} ({' '.join(f'{x[0]:.1f}' for x in a)}) | "
              f"{med(a, 0) / med(o, 0):.1f}× | {gib(med(o, 1))} / {gib(med(a, 1))} | "
              f"{gib(med(o, 2))} / {gib(med(a, 2))} | {gib(med(o, 3))} / {gib(med(a, 3))} | "
              f"{statistics.median(inspect[label]):.2f} |")


if __name__ == "__main__":
    main()
