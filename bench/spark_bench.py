"""modelport.spark on this machine, against a real S3 server (SeaweedFS on loopback):

(a) 8 pickled llama checkpoints of ~210 MB: ``prepare_many`` on ``local[2]`` against a
    sequential loop of ``prepare`` in one process (both include their start-up).
(b) a ~3 GB pickled checkpoint in a bucket, converted into 12 safetensors shards in the bucket:
    ``convert_distributed`` on ``local[2]`` (bucket → bucket, one task per shard, ranged
    reads) and ``modelport convert s3://… s3://…`` in one process, against downloading the
    folder with boto3, converting it locally and uploading every file with boto3 (one process);
    peak local disk of each.

Each job runs in its own process; wall time and peak anonymous memory of the driver process
(the Spark workers are separate processes) are printed as the README's table rows.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from convert_bench import gib, run_measured

from modelport.package.localstore import LocalS3

BUILD = r"""
import json, sys, torch
from pathlib import Path
from transformers import LlamaConfig, LlamaForCausalLM
from tokenizers import Tokenizer, models
root, n, hidden, layers, vocab, shards = (sys.argv[1], *map(int, sys.argv[2:7]))
cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=int(hidden * 2.6875),
                  num_hidden_layers=layers, num_attention_heads=hidden // 64,
                  num_key_value_heads=hidden // 256, architectures=["LlamaForCausalLM"])
for i in range(n):
    torch.manual_seed(i)
    d = Path(root) / f"m{i}"
    m = LlamaForCausalLM(cfg)
    cfg.save_pretrained(d)
    state = {k: v.contiguous() for k, v in m.state_dict().items()}
    names = list(state); per = -(-len(names) // shards); wm = {}
    for s in range(shards):
        f = f"pytorch_model-{s + 1:05d}-of-{shards:05d}.bin"
        torch.save({k: state[k] for k in names[s * per:(s + 1) * per]}, d / f)
        wm.update(dict.fromkeys(names[s * per:(s + 1) * per], f))
    (d / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": wm}))
    Tokenizer(models.WordLevel({f"t{j}": j for j in range(vocab)}, unk_token="t0")).save(
        str(d / "tokenizer.json"))
"""
LOOP = r"""
import sys, modelport
from modelport._quiet import quiet_third_party
quiet_third_party()
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    modelport.prepare(f"{root}/m{i}", f"{root}/loop/m{i}", ["watsonx-saas"], progress=False)
"""
MANY = r"""
import os, sys
os.environ["PYSPARK_PYTHON"] = sys.executable
from pyspark.sql import SparkSession
from modelport.spark import prepare_many
root, n = sys.argv[1], int(sys.argv[2])
s = SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false").getOrCreate()
s.sparkContext.setLogLevel("ERROR")
rows = prepare_many(s, [(f"{root}/m{i}", f"{root}/many/m{i}") for i in range(n)],
                    "watsonx-saas").collect()
bad = [r for r in rows if not r.ok]
assert not bad, bad
"""
DIST = r"""
import os, sys
os.environ["PYSPARK_PYTHON"] = sys.executable
from pyspark.sql import SparkSession
from modelport.spark import convert_distributed
src, url, endpoint, scratch = sys.argv[1:5]
s = SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false").getOrCreate()
s.sparkContext.setLogLevel("ERROR")
rep = convert_distributed(s, src, url, max_shard_size="250MB", endpoint_url=endpoint,
                          scratch_dir=scratch)
print("shards", len(rep.shards))
"""
STREAM = r"""
import sys, tempfile, modelport
from modelport._quiet import quiet_third_party
quiet_third_party()
src, url, endpoint, scratch = sys.argv[1:5]
tempfile.tempdir = scratch
modelport.convert(src, url, max_shard_size="250MB", progress=False,
                  store={"endpoint_url": endpoint})
"""
SEQ = r"""
import sys, boto3, modelport
from pathlib import Path
from modelport._quiet import quiet_third_party
quiet_third_party()
bucket, src_prefix, out_prefix, endpoint, work = sys.argv[1:6]
c = boto3.client("s3", endpoint_url=endpoint)
down = Path(work) / "download"
for o in c.list_objects_v2(Bucket=bucket, Prefix=src_prefix + "/")["Contents"]:
    p = down / o["Key"][len(src_prefix) + 1:]
    p.parent.mkdir(parents=True, exist_ok=True)
    c.download_file(bucket, o["Key"], str(p))
modelport.convert(down, Path(work) / "out", max_shard_size="250MB", progress=False)
for p in sorted((Path(work) / "out").iterdir()):
    if p.is_file():
        c.upload_file(str(p), bucket, f"{out_prefix}/{p.name}")
"""


def du_peak(path: Path, stop: threading.Event, out: list[int]) -> None:
    """Most disk blocks the files under ``path`` held while the job ran (allocated blocks:
    the sparse source mirrors are as large as the source files but hold only what was
    fetched)."""
    peak = 0
    while not stop.is_set():
        total = 0
        for dp, _, fs in os.walk(path):
            for f in fs:
                try:
                    total += os.stat(os.path.join(dp, f)).st_blocks * 512
                except OSError:
                    pass
        peak = max(peak, total)
        time.sleep(0.05)
    out.append(peak)


def measured_with_disk(cmd: list[str], scratch: Path) -> tuple[float, int, int]:
    stop, got = threading.Event(), []
    th = threading.Thread(target=du_peak, args=(scratch, stop, got))
    th.start()
    try:
        secs, rss = run_measured(cmd)
    finally:
        stop.set()
        th.join()
    return secs, rss, got[0]


def main() -> None:
    py = sys.executable
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        root = Path(tmp)
        subprocess.run([py, "-c", BUILD, str(root / "a"), "8", "1024", "3", "8000", "2"],
                       check=True)
        size = sum(p.stat().st_size for p in (root / "a").rglob("*.bin"))
        loop_s, loop_rss = run_measured([py, "-c", LOOP, str(root / "a"), "8"])
        many_s, many_rss = run_measured([py, "-c", MANY, str(root / "a"), "8"])
        print(f"\n(a) 8 models, {size / 1e9:.2f} GB of pickles")
        print("| job | wall s | speed vs loop | driver peak RssAnon |\n|---|---|---|---|")
        print(f"| prepare, sequential loop (1 process) | {loop_s:.1f} | 1.00 | {gib(loop_rss)} |")
        print(f"| prepare_many, local[2] | {many_s:.1f} | {loop_s / many_s:.2f}× | "
              f"{gib(many_rss)} |")

        subprocess.run([py, "-c", BUILD, str(root / "b"), "1", "2048", "15", "16000", "4"],
                       check=True)
        src = root / "b" / "m0"
        size = sum(p.stat().st_size for p in src.glob("*.bin"))
        with LocalS3(root / "weed", bucket="models") as s3:
            os.environ.update(s3.env())
            import boto3

            c = boto3.client("s3", endpoint_url=s3.endpoint)
            for p in sorted(src.iterdir()):
                c.upload_file(str(p), "models", f"src/{p.name}")
            rows = []
            for label, cmd in (
                    ("download → convert → upload (boto3 + modelport), 1 process",
                     [py, "-c", SEQ, "models", "src", "seq", s3.endpoint, "{d}"]),
                    ("modelport convert s3:// → s3://, 1 process",
                     [py, "-c", STREAM, "s3://models/src", "s3://models/stream", s3.endpoint,
                      "{d}"]),
                    ("convert_distributed s3:// → s3://, local[2]",
                     [py, "-c", DIST, "s3://models/src", "s3://models/dist", s3.endpoint,
                      "{d}"])):
                d = root / f"scratch-{len(rows)}"
                d.mkdir()
                rows.append((label, *measured_with_disk([a.replace("{d}", str(d))
                                                         for a in cmd], d)))
        print(f"\n(b) {size / 1e9:.2f} GB pickled checkpoint in a bucket → safetensors "
              "shards in the bucket")
        print("| job | wall s | speed vs sequence | driver peak RssAnon | peak local disk |")
        print("|---|---|---|---|---|")
        base = rows[0][1]
        for label, secs, rss, disk in rows:
            print(f"| {label} | {secs:.1f} | {base / secs:.2f}× | {gib(rss)} | {gib(disk)} |")


if __name__ == "__main__":
    main()
