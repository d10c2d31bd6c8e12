"""Benchmark package and upload on a ~3 GB bundle against cp and boto3, same bytes, one run.

Usage: python bench/upload_bench.py [--gib 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    import boto3
    from boto3.s3.transfer import TransferConfig
    from normalize_bench import make_folder

    import modelport
    from modelport.package.localstore import LocalS3
    from modelport.package.upload import UploadOptions

    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=3.0)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="modelport-ubench-"))
    try:
        src = base / "src"
        make_folder(src, int(args.gib * 2**30), 512 * 2**20)
        (src / "config.json").write_text(json.dumps({
            "model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
        (src / "tokenizer.json").write_text("{}")
        modelport.normalize(src, in_place=True)  # format pt + index; records no digests
        size = sum(f.stat().st_size for f in src.iterdir())
        rows = [f"# package and upload: {size / 2**30:.2f} GiB in "
                f"{len(list(src.glob('*.safetensors')))} files, SeaweedFS on 127.0.0.1\n",
                "| step | wall s | ratio | MiB/s |", "|---|---|---|---|"]
        subprocess.run(["sync"], check=True)
        t = time.perf_counter()
        subprocess.run(["cp", "-r", str(src), str(base / "cp")], check=True)
        cp = time.perf_counter() - t
        rows.append(f"| cp -r | {cp:.2f} | 1.00 | {size / 2**20 / cp:.0f} |")
        t = time.perf_counter()
        modelport.package(src, base / "b0", ["watsonx-saas"], link=False)
        first = time.perf_counter() - t
        rows.append(f"| package, copies, digests computed | {first:.2f} | {first / cp:.2f} × cp"
                    f" | {size / 2**20 / first:.0f} |")
        from modelport._io import hashcache

        m = json.loads((base / "b0" / "modelport.manifest.json").read_text())
        hashcache.record(src, {f["path"]: f["sha256"] for f in m["files"]})
        t = time.perf_counter()
        modelport.package(src, base / "b1", ["watsonx-saas"], link=False)
        reused = time.perf_counter() - t
        rows.append(f"| package, copies, digests reused | {reused:.2f} | {reused / cp:.2f} × cp"
                    f" | {size / 2**20 / reused:.0f} |")
        t = time.perf_counter()
        modelport.package(src, base / "b2", ["watsonx-saas"], link=True)
        linked = time.perf_counter() - t
        rows.append(f"| package, hard links, digests reused | {linked:.2f} | "
                    f"{linked / cp:.2f} × cp | - |")
        with LocalS3(base / "weed", bucket="models") as s3:
            os.environ.update(s3.env())
            c = boto3.client("s3", endpoint_url=s3.endpoint)
            files = sorted((base / "b1").iterdir())
            warm = base / "warm.bin"
            warm.write_bytes(os.urandom(64 * 2**20))
            c.upload_file(str(warm), "models", "warmup/w.bin")  # first writes allocate volumes
            t = time.perf_counter()
            for f in files:
                c.upload_file(str(f), "models", f"boto3/{f.name}", Config=TransferConfig())
            b3 = time.perf_counter() - t
            rows.append(f"| boto3 upload_file (default TransferConfig), no verification | "
                        f"{b3:.2f} | 1.00 | {size / 2**20 / b3:.0f} |")
            t = time.perf_counter()
            rep = modelport.upload(base / "b1", "s3://models/mp", UploadOptions(
                endpoint_url=s3.endpoint), progress=False)
            mp = time.perf_counter() - t
            rows.append(f"| modelport upload (sha256 of the bytes sent, HEAD after each, "
                        f"manifest last) | {mp:.2f} | {b3 / mp:.2f} × boto3 throughput | "
                        f"{size / 2**20 / mp:.0f} |")
            t = time.perf_counter()
            modelport.upload(base / "b1", "s3://models/mp", UploadOptions(
                endpoint_url=s3.endpoint), progress=False)
            rerun = time.perf_counter() - t
            rows.append(f"| modelport upload rerun (all objects already there) | {rerun:.2f} |"
                        f" - | - |")
            t = time.perf_counter()
            ok = modelport.verify("s3://models/mp", UploadOptions(endpoint_url=s3.endpoint)).ok
            ver = time.perf_counter() - t
            rows.append(f"| modelport verify s3:// (streams and hashes every object, ok={ok}) |"
                        f" {ver:.2f} | - | {size / 2**20 / ver:.0f} |")
            assert len(rep.uploaded) == len(files)
        print("\n".join(rows))
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
