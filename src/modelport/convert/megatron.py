"""Megatron-LM checkpoints as training runs leave them (``--ckpt-format torch``):
``latest_checkpointed_iteration.txt`` naming ``iter_NNNNNNN/`` (or ``release/``), one
``mp_rank_XX/model_optim_rng.pt`` per tensor-parallel rank, each holding ``args`` (the run's
argparse namespace), ``checkpoint_version``, ``model``, the optimizer and RNG states.

Names of megatron.core (``decoder.layers.N.self_attention.linear_qkv.weight``) and of the
legacy model (``language_model.encoder.layers.N.self_attention.query_key_value.weight``,
checkpoint version 2 and later) are read. Per tensor, streamed: the ranks' slices are
concatenated (rows for QKV, fc1, embeddings and the output layer; columns for the attention
projection and fc2), the fused QKV rows (per query group: its query heads, one key head, one
value head) are split, SwiGLU's fc1 (per rank: its gate rows, then its up rows) is split, and
the result is named for ``LlamaForCausalLM`` (RMSNorm, SwiGLU, rotary, no biases) or
``GPT2LMHeadModel`` (LayerNorm, GeLU, learned positions, biases; Conv1D weights transposed).
What lies in the ranks' files as the output's rows (row splits, one rank's copy, the q/k/v
blocks and the gate/up halves) is copied from them by the writer; only column splits over
ranks and transposed weights are computed. config.json comes from ``args``. Optimizer and
RNG states are left out. Anchors: transformers' ``convert_megatron_gpt2_checkpoint.py`` and
Megatron-LM's ``tools/checkpoint`` loaders.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from modelport._types import SkippedItem
from modelport.convert.llama_config import llama_config
from modelport.convert.opened import Opened, Produced
from modelport.convert.options import ConvertOptions
from modelport.convert.pickle_safe import Record, element_size
from modelport.convert.report import InputFile
from modelport.convert.sources import Reader, open_source
from modelport.errors import CheckpointError, UnsupportedError

FILE = "model_optim_rng.pt"
TRACKER = "latest_checkpointed_iteration.txt"
_RANK = re.compile(r"^mp_rank_(\d{2})(_\d{3})?$")
# the legacy model's names -> megatron.core's
_LEGACY = [(re.compile(a), b) for a, b in (
    (r"^language_model\.embedding\.(word|position)_embeddings\.weight$",
     r"embedding.\1_embeddings.weight"),
    (r"^language_model\.(?:encoder|transformer)\.final_(?:layer)?norm\.(weight|bias)$",
     r"decoder.final_layernorm.\1"),
    (r"^language_model\.(?:encoder|transformer)\.layers\.(\d+)\.(.+)$", r"decoder.layers.\1.\2"),
    (r"^language_model\.output_layer\.weight$", "output_layer.weight"))]
_NORM1 = ("input_layernorm", "self_attention.linear_qkv.layer_norm")
_NORM2 = ("pre_mlp_layernorm", "post_attention_layernorm", "mlp.linear_fc1.layer_norm")
# a layer's part -> (role, the dimension tensor parallelism splits; None: replicated)
_PARTS: dict[str, tuple[str, int | None]] = {
    **{f"{n}{s}": (f"ln{i}.{s[1]}", None) for i, names in ((1, _NORM1), (2, _NORM2))
       for n in names for s in (".weight", ".bias", "_weight", "_bias")},
    **{f"self_attention.{n}.{wb}": (f"qkv.{wb[0]}", 0)
       for n in ("linear_qkv", "query_key_value") for wb in ("weight", "bias")},
    **{f"self_attention.{n}.weight": ("o.w", 1) for n in ("linear_proj", "dense")},
    **{f"self_attention.{n}.bias": ("o.b", None) for n in ("linear_proj", "dense")},
    **{f"mlp.{n}.{wb}": (f"fc1.{wb[0]}", 0) for n in ("linear_fc1", "dense_h_to_4h")
       for wb in ("weight", "bias")},
    **{f"mlp.{n}.weight": ("fc2.w", 1) for n in ("linear_fc2", "dense_4h_to_h")},
    **{f"mlp.{n}.bias": ("fc2.b", None) for n in ("linear_fc2", "dense_4h_to_h")},
}
_TOP: dict[str, tuple[str, int | None]] = {
    "embedding.word_embeddings.weight": ("wte", 0), "output_layer.weight": ("out", 0),
    "embedding.position_embeddings.weight": ("wpe", None),
    "decoder.final_layernorm.weight": ("lnf.w", None),
    "decoder.final_layernorm.bias": ("lnf.b", None)}
_LLAMA = {"ln1.w": "input_layernorm.weight", "ln2.w": "post_attention_layernorm.weight",
          "o.w": "self_attn.o_proj.weight", "fc2.w": "mlp.down_proj.weight",
          "wte": "model.embed_tokens.weight", "lnf.w": "model.norm.weight",
          "out": "lm_head.weight"}
_GPT2 = {"ln1.w": "ln_1.weight", "ln1.b": "ln_1.bias", "ln2.w": "ln_2.weight",
         "ln2.b": "ln_2.bias", "o.b": "attn.c_proj.bias", "fc1.b": "mlp.c_fc.bias",
         "fc2.b": "mlp.c_proj.bias", "wte": "transformer.wte.weight",
         "wpe": "transformer.wpe.weight", "lnf.w": "transformer.ln_f.weight",
         "lnf.b": "transformer.ln_f.bias", "out": "lm_head.weight"}
_GPT2_T = {"o.w": "attn.c_proj.weight", "fc1.w": "mlp.c_fc.weight",
           "fc2.w": "mlp.c_proj.weight"}  # Conv1D: stored transposed
# what the run's args pickle names besides the namespace (enums, inert like every Record)
_GLOBALS = ("megatron.core.transformer.enums.AttnBackend",
            "megatron.core.transformer.enums.AttnMaskType", "megatron.core.enums.ModelType",
            "megatron.model.enums.AttnMaskType", "megatron.model.enums.PositionEmbeddingType")


def megatron_root(path: Path) -> Path | None:
    """The iteration folder of a Megatron checkpoint: the one the tracker file names, the
    folder itself when it holds ``mp_rank_XX/model_optim_rng.pt``, or the iteration folder
    of such a file."""
    if path.is_file():
        return path.parent.parent if path.name == FILE and _RANK.match(path.parent.name) \
            else None
    if not path.is_dir():
        return None
    if (path / TRACKER).is_file():
        text = (path / TRACKER).read_bytes()[:64].decode("ascii", "replace").strip()
        return path / ("release" if text == "release" else
                       f"iter_{int(text):07d}" if text.isdigit() else text)
    return path if any(_RANK.match(d.name) and (d / FILE).is_file()
                       for d in path.iterdir() if d.is_dir()) else None


def _ranks(root: Path, src: Path) -> list[Path]:
    if not root.is_dir():
        raise CheckpointError(f"{TRACKER} names {root.name}, which is not there", path=src,
                              hint="point SRC at an iter_NNNNNNN folder that exists")
    found = sorted(d.name for d in root.iterdir() if d.is_dir() and _RANK.match(d.name))
    if any(_RANK.match(n).group(2) for n in found):  # type: ignore[union-attr]
        raise UnsupportedError("a pipeline-parallel checkpoint (mp_rank_XX_YYY folders)",
                               path=root, supported=["tensor parallelism (mp_rank_XX)"],
                               hint="merge the pipeline stages with Megatron-LM's "
                               "tools/checkpoint/convert.py --target-pipeline-parallel-size 1")
    files = [root / f"mp_rank_{i:02d}" / FILE for i in range(len(found))]
    missing = [f for f in files if not f.is_file()]
    if missing or not files:
        raise CheckpointError(f"{missing[0].parent.name if missing else 'mp_rank_00'}/{FILE} "
                              "is missing", path=root, hint="copy every rank's folder")
    return files


def _args(obj: Any, file: Path) -> tuple[dict[str, Any], float]:
    """The run's args and the checkpoint version, from rank 0's unpickled object."""
    args = obj.get("args") if isinstance(obj, dict) else None
    if not isinstance(args, Record) or not isinstance(args.state, dict):
        raise CheckpointError("no run arguments ('args') in the checkpoint: its model's shape "
                              "is unknown", path=file)
    version = obj.get("checkpoint_version", 0)
    if not isinstance(version, int | float) or version < 2:
        raise UnsupportedError(f"checkpoint_version {version} (the QKV order before 2.0)",
                               path=file, supported=["2.0", "3.0"])
    return args.state, float(version)


def _family(a: dict[str, Any], file: Path) -> str:
    norm, rope = a.get("normalization", "LayerNorm"), a.get("position_embedding_type")
    rope = rope or ("rope" if a.get("use_rotary_position_embeddings") else "learned_absolute")
    if a.get("rotary_interleaved") or (rope == "rope" and a.get("rotary_percent", 1.0) != 1.0):
        raise UnsupportedError("interleaved or partial rotary embeddings", path=file)
    if a.get("use_rope_scaling"):
        raise UnsupportedError("rope scaling (use_rope_scaling)", path=file,
                               hint="convert the unscaled model and add rope_scaling to "
                               "config.json")
    bias = a.get("add_bias_linear", True)
    if norm == "RMSNorm" and a.get("swiglu") and rope == "rope" and not bias and \
            not a.get("add_qkv_bias"):
        return "llama"
    if norm == "LayerNorm" and not a.get("swiglu") and rope == "learned_absolute" and bias:
        return "gpt2"
    raise UnsupportedError(f"a Megatron model with {norm}, swiglu {bool(a.get('swiglu'))}, "
                           f"{rope} positions, linear biases {bias}", path=file,
                           supported=["GPT-2 style (LayerNorm, GeLU, learned positions, "
                                      "biases)", "Llama style (RMSNorm, SwiGLU, rope, no "
                                      "biases)"])


def _role(name: str) -> tuple[str, str, int | None] | None:
    """(layer, role, split dimension) of a megatron.core or legacy name; None: not a weight."""
    for pat, repl in _LEGACY:
        if pat.match(name):
            name = pat.sub(repl, name)
            break
    if name in _TOP:
        return ("", *_TOP[name])
    m = re.match(r"^decoder\.layers\.(\d+)\.(.+)$", name)
    if m and m.group(2) in _PARTS:
        return (m.group(1), *_PARTS[m.group(2)])
    return None


def open_megatron(src: Path, options: ConvertOptions) -> Opened:
    """Open a Megatron-LM checkpoint (see the module docstring) from its pickles' structure."""
    root = megatron_root(src)
    assert root is not None
    files = _ranks(root, src)
    allow = (*options.allow_globals, *_GLOBALS)
    first = open_source(files[0], state_dict_key="model", allow_globals=allow)
    ck = first.files[0].pickle
    a, version = _args(ck.obj if ck is not None else None, files[0])
    family = _family(a, files[0])
    tp = len(files)
    heads = int(a["num_attention_heads"])
    groups = int(a.get("num_query_groups") or heads) if a.get("group_query_attention") \
        else heads
    hd = int(a.get("kv_channels") or int(a["hidden_size"]) // heads)
    if family == "gpt2" and groups != heads:
        raise UnsupportedError("grouped-query attention in a GPT-2 style model", path=root)
    if a.get("tensor_model_parallel_size", tp) != tp:
        raise CheckpointError(f"args say {a.get('tensor_model_parallel_size')} tensor-parallel "
                              f"ranks; {tp} mp_rank folders are here", path=root)
    sets = [first, *(open_source(f, state_dict_key="model", allow_globals=allow)
                     for f in files[1:])]
    readers = [Reader(s.files) for s in sets]
    by_rank = [{t.name: t for t in s.tensors} for s in sets]
    roles: dict[tuple[str, str], tuple[str, int | None]] = {}
    left_out: list[str] = []
    for name in by_rank[0]:
        r = _role(name)
        if r is None:
            if name.endswith("_extra_state") or name.endswith(("inv_freq", "attn.bias")):
                left_out.append(name)
                continue
            raise UnsupportedError(f"tensor {name!r} is not part of a GPT-2 or Llama style "
                                   "Megatron model", path=files[0])
        roles[(r[0], r[1])] = (name, r[2])
    missing = [(i, n) for i in range(1, tp) for n, _ in roles.values() if n not in by_rank[i]]
    if missing:
        raise CheckpointError(f"mp_rank_{missing[0][0]:02d} lacks {missing[0][1]}", path=root)

    def gather(name: str, split: int | None) -> Any:
        import torch

        parts = [readers[i].tensor(by_rank[i][name]) for i in range(tp if split is not None
                                                                     else 1)]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=split)

    Span = list[tuple[Path, int, int]] | None

    def rows(name: str, split: int | None, pieces: list[tuple[int, int, int]] | None = None
             ) -> Span:
        """Where a tensor stored plainly lies when the output is its ranks' rows one after
        another (``split`` 0, one rank's copy, or a single rank): the ranks' ranges, or
        ``pieces`` of them (rank, first element, elements); None for a column split over
        ranks (computed)."""
        if split not in (None, 0) and tp > 1:
            return None
        if pieces is None:
            pieces = [(i, 0, math.prod(by_rank[i][name].shape))
                      for i in range(tp if split == 0 else 1)]
        out = [readers[i].span(by_rank[i][name], start, n) for i, start, n in pieces]
        return None if None in out else out  # type: ignore[return-value]

    def qkv_rows(name: str, part: str) -> Span:
        """q, k or v of a fused query/key/value weight: one block of rows per query group
        (``per`` query heads, then one key and one value head), groups spread over ranks."""
        t0 = by_rank[0][name]
        per, width = heads // groups, math.prod(t0.shape[1:])
        at = {"q": 0, "k": per, "v": per + 1}[part]
        n = (per if part == "q" else 1) * hd * width
        local = groups // tp
        return rows(name, 0, [(g // local, ((g % local) * (per + 2) + at) * hd * width, n)
                              for g in range(groups)])

    def half_rows(name: str, first: bool) -> Span:
        """The gate (first) or up half of each rank's fused fc1 rows, ranks one after another."""
        numel = math.prod(by_rank[0][name].shape)
        return rows(name, 0, [(i, 0 if first else numel // 2, numel // 2) for i in range(tp)])

    def shape(name: str, split: int | None) -> list[int]:
        s = list(by_rank[0][name].shape)
        if split is not None:
            s[split] *= tp
        return s

    out: list[Produced] = []
    renamed: dict[str, str] = {}

    def add(hf: str, key: tuple[str, str], shp: list[int], fn: Any, where: Any = None) -> None:
        name, _ = roles[key]
        dtype = by_rank[0][name].dtype
        out.append(Produced(hf, dtype, tuple(shp), math.prod(shp) * element_size(dtype), fn,
                            where))
        renamed.setdefault(name, hf)

    def plain(hf: str, key: tuple[str, str]) -> None:
        """An output tensor that is the role's tensor as the ranks hold it, concatenated."""
        name, split = roles[key]
        add(hf, key, shape(name, split), lambda: gather(name, split),
            lambda: rows(name, split))

    def qkv(key: tuple[str, str], part: str) -> Any:
        name, split = roles[key]
        w = gather(name, split)
        per = heads // groups
        g = w.reshape(groups, per + 2, hd, *w.shape[1:])
        if part == "q":
            return g[:, :per].reshape(heads * hd, *w.shape[1:]).contiguous()
        return g[:, per if part == "k" else per + 1].reshape(groups * hd, *w.shape[1:]) \
            .contiguous()

    def halves(key: tuple[str, str], first: bool) -> Any:
        import torch

        name, _ = roles[key]
        parts = [readers[i].tensor(by_rank[i][name]) for i in range(tp)]
        return torch.cat([p[: p.shape[0] // 2] if first else p[p.shape[0] // 2:]
                          for p in parts], dim=0).contiguous()

    layers = sorted({k[0] for k in roles if k[0]}, key=int)
    used = {k for k in roles if not k[0]}
    top = "model." if family == "llama" else "transformer."
    if family == "llama":
        plain("model.embed_tokens.weight", ("", "wte"))
    else:
        for k in ("wte", "wpe"):
            plain(_GPT2[k], ("", k))
    for lay in layers:
        pre = f"{top}layers.{lay}." if family == "llama" else f"{top}h.{lay}."
        for role in ("ln1.w", "ln1.b", "qkv.w", "qkv.b", "o.w", "o.b", "ln2.w", "ln2.b",
                     "fc1.w", "fc1.b", "fc2.w", "fc2.b"):
            key = (lay, role)
            if key not in roles:
                continue
            used.add(key)
            name, split = roles[key]
            shp = shape(name, split)
            if family == "llama" and role == "qkv.w":
                for p, n_h in (("q", heads), ("k", groups), ("v", groups)):
                    add(f"{pre}self_attn.{p}_proj.weight", key, [n_h * hd, shp[1]],
                        lambda key=key, p=p: qkv(key, p), lambda n=name, p=p: qkv_rows(n, p))
            elif family == "llama" and role == "fc1.w":
                for p, first in (("gate", True), ("up", False)):
                    add(f"{pre}mlp.{p}_proj.weight", key, [shp[0] // 2, shp[1]],
                        lambda key=key, first=first: halves(key, first),
                        lambda n=name, first=first: half_rows(n, first))
            elif family == "gpt2" and role in ("qkv.w", "qkv.b"):
                add(f"{pre}attn.c_attn.{'weight' if role == 'qkv.w' else 'bias'}", key,
                    shp[::-1], lambda key=key: _gpt2_qkv(key, qkv))
            elif family == "gpt2" and role in _GPT2_T:
                add(pre + _GPT2_T[role], key, shp[::-1],
                    lambda n=name, s=split: gather(n, s).T.contiguous())
            elif role in (_LLAMA if family == "llama" else _GPT2):
                plain(pre + (_LLAMA if family == "llama" else _GPT2)[role], key)
            else:
                raise UnsupportedError(f"{name}: a {role.split('.')[0]} bias in a Llama "
                                       "style model", path=files[0])
    plain(_LLAMA["lnf.w"] if family == "llama" else _GPT2["lnf.w"], ("", "lnf.w"))
    if family == "gpt2":
        plain(_GPT2["lnf.b"], ("", "lnf.b"))
    untied = ("", "out") in roles
    if untied:
        plain("lm_head.weight", ("", "out"))
    if used != set(roles) or (("", "wpe") in roles and family == "llama"):
        odd = sorted(set(roles) - used) or [("", "wpe")]
        raise UnsupportedError(f"{roles[odd[0]][0]} has no place in a {family} style model",
                               path=files[0])
    cfg = _config(family, a, out, layers, heads, groups, hd, untied)
    return Opened(
        src=src, tensors=out, tensors_in=len(by_rank[0]), renamed=renamed,
        inputs=[InputFile(path=str(f), format="megatron", size=f.stat().st_size)
                for f in files],
        skipped_entries=[SkippedItem(name=x.name, reason=x.reason) for x in sets[0].skipped_entries]
        + [SkippedItem(name=x, reason="not a weight; left out") for x in left_out],
        warnings=[f"Megatron-LM checkpoint (version {version:g}), {tp} tensor-parallel "
                  f"rank(s) merged, as {cfg['architectures'][0]}; config.json from the run's "
                  f"args; vocab_size {cfg['vocab_size']} is the embedding's rows (Megatron "
                  "pads the vocabulary: the tokenizer may hold fewer)"],
        side=lambda tmp: _write_config(tmp, cfg),
        side_files=["config.json"], closers=[r.close for r in readers])


def _write_config(tmp: Path, cfg: dict[str, Any]) -> list[str]:
    (tmp / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    return []


def _gpt2_qkv(key: tuple[str, str], qkv: Any) -> Any:
    """GPT-2's c_attn: all query heads, then all keys, then all values; weights transposed."""
    import torch

    w = torch.cat([qkv(key, p) for p in ("q", "k", "v")], dim=0)
    return w.T.contiguous() if w.dim() == 2 else w


def _config(family: str, a: dict[str, Any], out: list[Produced], layers: list[str],
            heads: int, groups: int, hd: int, untied: bool) -> dict[str, Any]:
    shapes = {p.name: p.shape for p in out}
    dtype = out[0].dtype if out[0].dtype in ("float16", "bfloat16", "float32") else "float32"
    eps = float(a.get("norm_epsilon") or a.get("layernorm_epsilon") or 1e-5)
    if family == "llama":
        return llama_config(shapes, layers=len(layers), heads=heads, kv_heads=groups, eps=eps,
                            rope_theta=float(a.get("rotary_base") or 10000),
                            max_positions=int(a.get("max_position_embeddings") or
                                              a.get("seq_length") or 4096),
                            dtype=dtype, head_dim=hd)
    vocab, hidden = shapes["transformer.wte.weight"]
    fused = a.get("bias_gelu_fusion", a.get("bias_activation_fusion", False))
    act = "gelu_new" if a.get("openai_gelu") else "gelu_fast" if fused else "gelu"
    return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": hidden,
            "n_layer": len(layers), "n_head": heads, "vocab_size": vocab,
            "n_positions": shapes["transformer.wpe.weight"][0],
            "n_inner": shapes["transformer.h.0.mlp.c_fc.weight"][1],
            "activation_function": act, "layer_norm_epsilon": eps,
            "tie_word_embeddings": not untied, "torch_dtype": dtype}


__all__ = ["megatron_root", "open_megatron"]
