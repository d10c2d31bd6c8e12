"""Meta's original Llama layout — ``params.json`` and ``consolidated.NN.pth`` (one file per
tensor-parallel rank) — and Mistral's original layout (``consolidated.safetensors``, explicit
``head_dim`` and ``hidden_dim``; Mixtral's ``moe`` with one tensor per expert, or the first
release's experts stacked on rows), into a Hugging Face Llama, Mistral or Mixtral folder.

Per tensor, streamed: the ranks' slices are concatenated on the dimension Meta splits
(rows for wq/wk/wv/w1/w3/output, columns for wo/w2, either for tok_embeddings — the shapes
say which), ``wq``/``wk`` are permuted from Meta's interleaved rotary layout to the Hugging
Face one (grouped-query heads for ``wk``), and renamed. config.json comes from params.json;
a ``rope_scaling`` factor that params.json does not state (Llama 3.1 vs 3.2) must be given.
Anchor: transformers' ``convert_llama_weights_to_hf.py`` (every rank in memory at once).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelport._io import jsonio
from modelport._types import SkippedItem
from modelport.convert.llama_config import llama_config
from modelport.convert.opened import Opened, Produced, items
from modelport.convert.options import ConvertOptions
from modelport.convert.report import InputFile
from modelport.convert.sources import Reader, SourceSet, open_source
from modelport.errors import CheckpointError, InputError, UnsupportedError

_RANK = re.compile(r"^consolidated\.(\d+)\.pth$")
_LAYER = re.compile(r"^layers\.(\d+)\.(.+)$")
# Meta name -> (Hugging Face name, dimension the ranks are split on; None: replicated)
_LAYER_MAP = {
    "attention.wq.weight": ("self_attn.q_proj.weight", 0),
    "attention.wk.weight": ("self_attn.k_proj.weight", 0),
    "attention.wv.weight": ("self_attn.v_proj.weight", 0),
    "attention.wo.weight": ("self_attn.o_proj.weight", 1),
    "feed_forward.w1.weight": ("mlp.gate_proj.weight", 0),
    "feed_forward.w2.weight": ("mlp.down_proj.weight", 1),
    "feed_forward.w3.weight": ("mlp.up_proj.weight", 0),
    "attention_norm.weight": ("input_layernorm.weight", None),
    "ffn_norm.weight": ("post_attention_layernorm.weight", None),
}
# Mixtral as mistral-inference writes it: one tensor per expert, the router as feed_forward.gate
_EXPERT = re.compile(r"^feed_forward\.experts\.(\d+)\.w([123])\.weight$")
# Mixtral 8x7B's first release: the experts stacked on rows (w2 stacked transposed)
_STACKED = re.compile(r"^block_sparse_moe\.w([123])$")
_GATES = ("feed_forward.gate.weight", "block_sparse_moe.gate.weight")
_TOP_MAP = {"norm.weight": ("model.norm.weight", None), "output.weight": ("lm_head.weight", 0),
            "tok_embeddings.weight": ("model.embed_tokens.weight", -1)}  # -1: by shape
# buffers that are not weights: rotary tables at the top, and what executorch's and other
# exports keep per layer (the causal mask, a KV cache); the model recomputes them at load
_SKIP = {"rope.freqs", "freqs_cis", "freqs_cos", "freqs_sin"}
_LAYER_BUFFERS = re.compile(r"^attention\.(mask|kv_cache\.[kv]_cache|rope\.freqs)$")


def meta_root(path: Path) -> Path | None:
    """``path`` when it is Meta's or Mistral's original folder (for the format registry)."""
    return path if is_meta_layout(path) else None


def is_meta_layout(folder: Path) -> bool:
    """Meta's (and Mistral's) original folder: params.json beside consolidated weights."""
    return folder.is_dir() and (folder / "params.json").is_file() and (
        any(_RANK.match(p.name) for p in folder.iterdir()) or
        (folder / "consolidated.pth").is_file() or
        (folder / "consolidated.safetensors").is_file())


def _ranks(folder: Path) -> list[Path]:
    files = sorted((p for p in folder.iterdir() if _RANK.match(p.name)),
                   key=lambda p: int(_RANK.match(p.name).group(1)))  # type: ignore[union-attr]
    for single in ("consolidated.safetensors", "consolidated.pth"):
        if not files and (folder / single).is_file():
            files = [folder / single]
    for i, p in enumerate(files):
        m = _RANK.match(p.name)
        if m and int(m.group(1)) != i:
            raise CheckpointError(f"rank {i} is missing (found {p.name})", path=folder,
                                  hint="copy every consolidated.NN.pth of the checkpoint")
    return files


def permute_into(out: Any, w: Any, n_heads: int) -> None:
    """Meta's interleaved rotary rows of ``w`` into ``out`` (numpy arrays of one shape) in
    the Hugging Face half-split order: each byte moved once."""
    rows, cols = w.shape
    half = rows // n_heads // 2
    if not out.flags.c_contiguous:  # reshaped, it would be a copy: the rows written lost
        raise ValueError("permute_into writes into C-contiguous rows only")
    out.reshape(n_heads, 2, half, cols)[...] = w.reshape(n_heads, half, 2, cols).swapaxes(1, 2)


def part(reader: Reader, t: Any) -> Any:
    """A tensor of a source file as a read-only numpy view of its bytes, its items unsigned
    integers of its element size (moving them is all a merge does, bfloat16 included)."""
    return items(reader.tensor_bytes(t), t.dtype, t.shape)


def _params(folder: Path) -> dict[str, Any]:
    p = jsonio.load(folder / "params.json")
    if not isinstance(p, dict):
        raise InputError("params.json is not an object", path=folder / "params.json")
    p = p.get("model", p)
    moe = p.get("moe")
    if p.get("vision_chunk_size") or p.get("vision_args") or p.get("moe_args") or (
            moe is not None and not (isinstance(moe, dict) and isinstance(
                moe.get("num_experts"), int) and isinstance(moe.get("num_experts_per_tok"),
                                                            int))):
        raise UnsupportedError("this params.json (Llama 4, Llama 3.2 Vision, or a moe block "
                               "without num_experts / num_experts_per_tok)",
                               path=folder / "params.json",
                               supported=["dense Llama 1/2/3/3.1/3.2/3.3", "Code Llama",
                                          "Mistral", "Mixtral (moe)"])
    for k in ("dim", "n_layers", "n_heads"):
        if not isinstance(p.get(k), int):
            raise InputError(f"params.json has no integer {k!r}", path=folder / "params.json")
    return p


@dataclass
class MetaSource:
    """Meta's layout as another format holds it (a llama2.c training checkpoint): the
    params.json values, the files, how to open each, and what to call them."""

    params: dict[str, Any]
    files: list[Path]
    state_dict_key: str | None = None
    strip_prefix: str | None = None
    label: str = "meta consolidated"
    origin: str = "params.json"


def open_meta(src: Path, o: ConvertOptions, source: MetaSource | None = None) -> Opened:
    """Open Meta's (or Mistral's) original checkpoint folder as the Hugging Face model it
    holds (or the Meta layout that ``source`` describes), from params.json and the headers."""
    if source is None and not is_meta_layout(src):
        raise InputError("not a Meta layout folder (params.json + consolidated.NN.pth)",
                         path=src)
    if source is None:
        source = MetaSource(params=_params(src), files=_ranks(src))
    params, files = source.params, source.files
    sets: list[SourceSet] = [open_source(f, allow_globals=o.allow_globals,
                                         state_dict_key=source.state_dict_key,
                                         strip_prefix=source.strip_prefix) for f in files]
    readers = [Reader(s.files) for s in sets]
    by_rank = [{t.name: t for t in s.tensors} for s in sets]
    mistral = "hidden_dim" in params or files[0].suffix == ".safetensors" or \
        bool(params.get("moe"))
    n_heads, dim = int(params["n_heads"]), int(params["dim"])
    n_kv = int(params.get("n_kv_heads") or n_heads)
    n = len(files)
    if n_heads % n or n_kv % n:
        raise UnsupportedError(f"{n_heads} heads / {n_kv} key-value heads over {n} ranks",
                               path=src, hint="each rank must hold whole heads")
    n_experts = int(params["moe"]["num_experts"]) if params.get("moe") else 0
    # (meta, hf, split dim, permute heads, (expert, of n, transposed) of a stacked tensor)
    plan: list[tuple[str, str, int | None, int, tuple[int, int, bool] | None]] = []
    left_out: list[str] = []
    for name in by_rank[0]:
        m = _LAYER.match(name)
        layer, rest = (m.group(1), m.group(2)) if m else ("", "")
        e, st = _EXPERT.match(rest), _STACKED.match(rest)
        if m and rest in _LAYER_MAP:
            hf, d = _LAYER_MAP[rest]
            heads = n_heads if rest == "attention.wq.weight" else (
                n_kv if rest == "attention.wk.weight" else 0)
            plan.append((name, f"model.layers.{layer}.{hf}", d, heads, None))
        elif m and n_experts and e:
            plan.append((name, f"model.layers.{layer}.block_sparse_moe.experts.{e.group(1)}."
                         f"w{e.group(2)}.weight", 1 if e.group(2) == "2" else 0, 0, None))
        elif m and n_experts and rest in _GATES:
            plan.append((name, f"model.layers.{layer}.block_sparse_moe.gate.weight", None, 0,
                         None))
        elif m and n_experts and st:
            w = st.group(1)
            plan += [(name, f"model.layers.{layer}.block_sparse_moe.experts.{x}.w{w}.weight",
                      0, 0, (x, n_experts, w == "2")) for x in range(n_experts)]
        elif name in _TOP_MAP:
            hf, d = _TOP_MAP[name]
            plan.append((name, hf, d, 0, None))
        elif name in _SKIP or (m and _LAYER_BUFFERS.match(rest)):
            left_out.append(f"{name} (a buffer, not a weight: recomputed at load)")
        else:
            raise UnsupportedError(f"tensor {name!r} is not part of the Llama layout", path=src)
    missing = [(i, p[0]) for i in range(1, n) for p in plan if p[0] not in by_rank[i]]
    if missing:
        raise CheckpointError(f"{files[missing[0][0]].name} lacks {missing[0][1]}", path=src)

    def fill(out: Any, meta: str, split: int | None, heads: int,
             pick: tuple[int, int, bool] | None) -> None:
        import numpy as np

        ts = [by_rank[i][meta] for i in range(n if split is not None else 1)]
        parts = [part(readers[i], t) for i, t in enumerate(ts)]
        if pick is not None:  # one expert of a stacked tensor (w2 stacked transposed)
            w = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=split)
            rows = w.shape[0] // pick[1]
            w = w[pick[0] * rows: (pick[0] + 1) * rows]
            out[...] = w.T if pick[2] else w
        elif len(parts) == 1 and not heads:
            out[...] = parts[0]
        else:  # each rank's part straight into its place (q/k permuted on the way)
            at = 0
            for p in parts:
                d = split or 0
                k = p.shape[d]
                place = out[at: at + k] if d == 0 else out[:, at: at + k]
                if heads:  # q/k, split on rows: each rank holds whole heads
                    permute_into(place, p, heads // len(parts))
                else:
                    place[...] = p
                at += k
        for i, t in enumerate(ts):  # copied: the mapped pages need not stay resident
            readers[i].release(t)

    def spans(meta: str, split: int | None, heads: int, pick: tuple[int, int, bool] | None
              ) -> list[tuple[Path, int, int]] | None:
        """Where a tensor neither permuted nor picked lies: one rank's bytes, or the ranks'
        bytes one after another when they split it on rows; None otherwise (computed)."""
        if heads or pick is not None:
            return None
        if split not in (None, 0) and n > 1:
            return None
        out = [readers[i].span(by_rank[i][meta]) for i in range(n if split is not None else 1)]
        return None if None in out else out  # type: ignore[return-value]

    entries: list[tuple[str, str, tuple[int, ...], int, str, int | None, int,
                        tuple[int, int, bool] | None]] = []
    for meta, hf, split, heads, pick in plan:
        t0_ = by_rank[0][meta]
        shape = list(t0_.shape)
        if split == -1:  # tok_embeddings: Llama 2 splits columns, Llama 3 rows
            split = 1 if n > 1 and shape[1] * n == dim else 0
        if split is not None and n > 1:
            shape[split] *= n
        nbytes = t0_.nbytes * (n if split is not None else 1)
        if pick is not None:
            if shape[0] % pick[1]:
                raise CheckpointError(f"{meta}: {shape[0]} rows do not split into "
                                      f"{pick[1]} experts", path=src)
            shape[0] //= pick[1]
            nbytes //= pick[1]
            shape = shape[::-1] if pick[2] else shape
        entries.append((hf, t0_.dtype, tuple(shape), nbytes, meta, split, heads, pick))
    cfg = _config(params, entries, o.rope_scaling_factor, src, mistral)

    def side(tmp: Path) -> list[str]:
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
        (tmp / "generation_config.json").write_text(json.dumps(
            {"bos_token_id": cfg["bos_token_id"], "eos_token_id": cfg["eos_token_id"],
             "do_sample": True, "temperature": 0.6, "top_p": 0.9}, indent=2) + "\n")
        tok_note = _tokenizer(src, tmp, params) if src.is_dir() else None
        return [f"tokenizer: {tok_note}"] if tok_note else []

    permuted = sum(1 for e in entries if e[6])
    experts = sum(1 for e in entries if ".experts." in e[0])
    return Opened(
        src=src, inputs=[InputFile(path=str(p), format=source.label, size=p.stat().st_size)
                         for p in files],
        tensors=[Produced(e[0], e[1], e[2], e[3], None, lambda e=e: spans(*e[4:]),
                          lambda out, e=e: fill(out, *e[4:])) for e in entries],
        tensors_in=len(entries) + len(left_out), renamed={e[4]: e[0] for e in entries},
        skipped_entries=[SkippedItem(name=x, reason="left out") for x in left_out],
        warnings=[f"Meta layout, {n} rank(s) merged; {permuted} q/k weights permuted to the "
                  f"Hugging Face rotary order; config.json from {source.origin}"
                  + (f"; Mixtral: {experts} expert weights" if experts else "")],
        side=side, side_files=["config.json", "generation_config.json"],
        closers=[r.close for r in readers])


def _config(p: dict[str, Any], entries: list[Any], factor: float | None, src: Path,
            mistral: bool = False) -> dict[str, Any]:
    shapes = {e[0]: e[2] for e in entries}
    vocab = shapes["model.embed_tokens.weight"][0]
    moe = p.get("moe")
    inter = shapes["model.layers.0.block_sparse_moe.experts.0.w1.weight" if moe else
                   "model.layers.0.mlp.gate_proj.weight"][0]
    dtype = {"bfloat16": "bfloat16", "float16": "float16", "float32": "float32"}.get(
        entries[0][1], "bfloat16")
    llama3 = vocab >= 128000
    cfg = llama_config(
        shapes, layers=p["n_layers"], heads=p["n_heads"],
        kv_heads=p.get("n_kv_heads") or p["n_heads"], eps=p.get("norm_eps", 1e-5),
        rope_theta=p.get("rope_theta", 10000.0),
        max_positions=p.get("max_seq_len") or (8192 if llama3 else 4096), dtype=dtype,
        intermediate=inter, bos=128000 if llama3 else 1, eos=128001 if llama3 else 2)
    if mistral:  # Mistral's original layout: same names, explicit head_dim, sliding window
        cfg.update(architectures=["MistralForCausalLM"], model_type="mistral",
                   head_dim=p.get("head_dim") or p["dim"] // p["n_heads"],
                   sliding_window=p.get("sliding_window"), bos_token_id=1, eos_token_id=2,
                   max_position_embeddings=p.get("max_seq_len") or 32768,
                   rope_theta=p.get("rope_theta", 1000000.0))
        for k in ("attention_bias", "mlp_bias"):
            cfg.pop(k)
    if moe:  # Mixtral: the experts and the router
        cfg.update(architectures=["MixtralForCausalLM"], model_type="mixtral",
                   num_local_experts=moe["num_experts"],
                   num_experts_per_tok=moe["num_experts_per_tok"])
    if p.get("use_scaled_rope"):
        f = factor or p.get("rope_scaling_factor")
        if not f:
            raise InputError("params.json sets use_scaled_rope without a factor: Llama 3.1 "
                             "and 3.3 use 8, Llama 3.2 uses 32", path=src / "params.json",
                             hint="pass --rope-scaling-factor 8 or 32 for the model you have")
        cfg["rope_scaling"] = {"factor": float(f), "low_freq_factor": 1.0,
                               "high_freq_factor": 4.0,
                               "original_max_position_embeddings": 8192,
                               "rope_type": "llama3"}
        cfg["max_position_embeddings"] = p.get("max_seq_len") or 131072
    return cfg


def _tokenizer(src: Path, tmp: Path, params: dict[str, Any]) -> str | None:
    """tokenizer.json from Meta's tokenizer.model (tiktoken for Llama 3, sentencepiece
    before), through ``modelport tokenizer`` and its parity proof."""
    import shutil

    from modelport.tok.verb import tokenizer

    if (src / "tekken.json").is_file():  # Mistral: self-describing
        shutil.copy2(src / "tekken.json", tmp / "tekken.json")
        rep = tokenizer(tmp)
        return (f"{rep.tokenizer_class} (tekken.json): {rep.parity.matched}/"
                f"{rep.parity.examples} lines identical")
    from modelport.tok.source import Source

    found = Source(src)  # the tokenizer room decides which file is the tokenizer model
    model = found.spm or found.tiktoken
    if model is None:
        return None
    shutil.copy2(model, tmp / model.name)
    head = model.read_bytes()[:64].split(b"\n", 1)[0]
    tiktoken = len(head.split(b" ")) == 2 and head.split(b" ")[1].strip().isdigit()
    family = ("llama3.1" if params.get("use_scaled_rope") else "llama3") if tiktoken \
        else "llama"
    rep = tokenizer(tmp, family=family)
    why = "use_scaled_rope in params.json" if tiktoken else "a sentencepiece model"
    return (f"{rep.tokenizer_class} ({why}): {rep.parity.matched}/{rep.parity.examples} lines "
            "identical")


__all__ = ["MetaSource", "is_meta_layout", "meta_root", "open_meta", "part", "permute_into"]
