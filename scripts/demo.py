"""`make demo`: the main job on a built-in example, ending in an upload to a local S3 server.

1. Build a small real model the way many repositories still ship one: a llama-architecture
   model trained here for a few seconds on Python's own source code, saved as two pickled
   `pytorch_model-0000X-of-00002.bin` shards with their index, a sentencepiece
   `tokenizer.model` trained on the same text, and no tokenizer.json.
2. `modelport prepare` it for watsonx.ai SaaS: convert (verified), synthesize tokenizer.json
   (parity proof), normalize, check, package with a manifest.
3. Upload the bundle to an embedded SeaweedFS S3 server and verify it by re-reading every
   object. Reload the prepared model with transformers: identical logits.
5. Quantize the prepared model to GPTQ v1 4-bit for watsonx (certified for llama), verified
   layer by layer and by its logits, and check it.
6. Serve the bundle with vLLM (the engine of watsonx.ai's caikit-1.1 and OCI, on CPU) and
   compare its greedy tokens with transformers' (serve-check).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import torch

import modelport
from modelport._quiet import quiet_third_party
from modelport.package.localstore import LocalS3
from modelport.package.upload import UploadOptions

OUT = Path(__file__).resolve().parents[1] / "demo-output"


def build_example(folder: Path) -> tuple[torch.nn.Module, torch.Tensor]:
    import sentencepiece as spm
    from transformers import AutoConfig, AutoModelForCausalLM

    lib = Path(sysconfig.get_paths()["stdlib"])
    text = "\n".join((lib / f).read_text(encoding="utf-8", errors="ignore")
                     for f in ("textwrap.py", "argparse.py", "difflib.py", "json/decoder.py"))
    folder.mkdir(parents=True)
    (folder / "corpus.txt").write_text(text)
    spm.SentencePieceTrainer.train(input=str(folder / "corpus.txt"),
                                   model_prefix=str(folder / "tokenizer"), vocab_size=1000,
                                   model_type="bpe", byte_fallback=True, minloglevel=2,
                                   num_threads=1, character_coverage=1.0)
    (folder / "corpus.txt").unlink()
    (folder / "tokenizer.vocab").unlink()
    sp = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    ids = torch.tensor(sp.encode(text)[:40_000])
    torch.manual_seed(0)
    cfg = AutoConfig.for_model("llama", vocab_size=1000, hidden_size=128, intermediate_size=256,
                               num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                               max_position_embeddings=256, bos_token_id=1, eos_token_id=2,
                               architectures=["LlamaForCausalLM"])
    model = AutoModelForCausalLM.from_config(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(60):  # a few seconds of real training: structure, not noise
        starts = torch.randint(0, len(ids) - 65, (16,))
        batch = torch.stack([ids[s: s + 65] for s in starts])
        loss = model(input_ids=batch[:, :-1], labels=batch[:, :-1]).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    cfg.save_pretrained(folder)
    state = model.state_dict()
    names = list(state)
    weight_map = {}
    for i, part in enumerate((names[: len(names) // 2], names[len(names) // 2:])):
        fname = f"pytorch_model-{i + 1:05d}-of-00002.bin"
        torch.save({k: state[k] for k in part}, folder / fname)
        weight_map.update(dict.fromkeys(part, fname))
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>",
        "unk_token": "<unk>", "add_bos_token": True}))
    probe = torch.tensor([sp.encode("def parse_args(self, args=None):")])
    print(f"1. example: {folder.relative_to(OUT.parent)}: llama, "
          f"{sum(p.numel() for p in model.parameters()):,} parameters trained 60 steps "
          f"(loss {loss.item():.2f}), 2 pickled shards, tokenizer.model, no tokenizer.json")
    return model, probe


quiet_third_party()  # the demo's output is modelport's own lines


def main() -> int:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    shutil.rmtree(OUT, ignore_errors=True)
    src, bundle = OUT / "llama-pickled", OUT / "llama-watsonx"
    model, probe = build_example(src)
    with tempfile.TemporaryDirectory(prefix="modelport-s3-") as store, \
            LocalS3(Path(store), bucket="models") as s3:
        os.environ.update(s3.env())
        url = "s3://models/demo/llama-watsonx"
        t0 = time.perf_counter()
        rep = modelport.prepare(src, bundle, ["watsonx-saas"], upload_url=url,
                                upload_options=UploadOptions(endpoint_url=s3.endpoint))
        secs = time.perf_counter() - t0
        print(f"2. prepare for watsonx-saas ({secs:.1f} s):")
        for s in rep.steps:
            print(f"     {s.verb:12s} {s.status:7s} {s.detail}")
        t = rep.manifest.targets[0]
        print(f"   check: {'OK' if t.ok else 'FAIL'}, {t.errors} error(s), {t.warnings} "
              f"warning(s); hardware: {t.hardware['recommendation']}")
        up, ver = rep.upload, rep.verify
        assert up is not None and ver is not None
        print(f"3. upload to {url} on SeaweedFS at {s3.endpoint}: {len(up.uploaded)} objects, "
              f"{up.bytes_sent:,} bytes, manifest last; verify re-read {ver.checked} files: "
              f"{'all sha256 match' if ver.ok else 'MISMATCH'}")
    reloaded = AutoModelForCausalLM.from_pretrained(bundle).eval()
    with torch.no_grad():
        same = torch.equal(model(probe).logits, reloaded(probe).logits)
    tok = AutoTokenizer.from_pretrained(bundle)
    print(f"4. reload the bundle with transformers: logits {'identical' if same else 'DIFFER'};"
          f" tokenizer.json encodes {tok.decode(tok('def main():')['input_ids'])!r}")
    print(f"   manifest: {bundle / 'modelport.manifest.json'} ({len(rep.manifest.files)} files,"
          f" {rep.manifest.model.parameters:,} parameters)")
    q = modelport.quantize(bundle, OUT / "llama-watsonx-gptq", method="gptq",
                           target="watsonx-saas", progress=False)
    print(f"5. quantize to GPTQ v1 4-bit g128 ({q.quantize_seconds:.1f} s, peak RSS "
          f"{q.peak_rss_bytes / 2**20:.0f} MiB): {len(q.layers)} layers match the format spec, "
          f"weight error {q.mean_weight_error:.3f}, logit error {q.logit_error:.3f}; "
          f"check watsonx-saas: {q.target_errors} error(s)")
    sv = modelport.serve_check(bundle)  # vLLM from .venv-serve, as watsonx.ai's caikit-1.1
    print(f"6. serve the bundle with vLLM {sv.vllm_version} (CPU): {sv.tokens_compared} greedy "
          f"tokens of {len(sv.prompts)} prompts {'equal to' if sv.ok else 'DIFFER from'} "
          f"transformers' ({sv.seconds_vllm:.0f} s); recorded in the manifest")
    return 0 if same and ver.ok and t.ok and q.target_errors == 0 and sv.ok else 1


if __name__ == "__main__":
    sys.exit(main())
