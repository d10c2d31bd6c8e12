"""Tensor names GPTQModel changes, put back to the names the serving runtimes load.

GPTQModel quantizes some architectures through a "defused" module tree and saves it under
that tree's names: Mixtral's experts come out as ``mlp.experts.N.gate_proj/up_proj/down_proj``
and its router as ``mlp.gate``, where TGI, vLLM and transformers read the original checkpoint
names ``block_sparse_moe.experts.N.w1/w3/w2`` and ``block_sparse_moe.gate``. Architectures
whose fused projections GPTQModel splits (phi3's ``gate_up_proj``) cannot be renamed back and
are refused before any work.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from modelport._io import jsonio
from modelport._io.st_header import ST_INDEX

RENAMES: dict[str, list[tuple[str, str]]] = {
    "mixtral": [
        (r"\.mlp\.experts\.(\d+)\.gate_proj\.", r".block_sparse_moe.experts.\1.w1."),
        (r"\.mlp\.experts\.(\d+)\.up_proj\.", r".block_sparse_moe.experts.\1.w3."),
        (r"\.mlp\.experts\.(\d+)\.down_proj\.", r".block_sparse_moe.experts.\1.w2."),
        (r"\.mlp\.gate\.weight$", r".block_sparse_moe.gate.weight"),
    ],
}
SPLIT_BY_GPTQMODEL = {"phi3": "gate_up_proj (phi3)"}


def rename(name: str, model_type: str) -> str:
    for pattern, repl in RENAMES.get(model_type, []):
        name = re.sub(pattern, repl, name)
    return name


def restore(folder: Path, model_type: str) -> int:
    """Rename the tensors of every safetensors file in ``folder`` (and its index); returns how
    many names changed."""
    if model_type not in RENAMES:
        return 0
    from safetensors.torch import load_file, save_file

    changed = 0
    index = folder / ST_INDEX
    for f in sorted(folder.glob("*.safetensors")):
        tensors = load_file(f)
        renamed = {rename(k, model_type): v for k, v in tensors.items()}
        moved = sum(a != b for a, b in zip(tensors, renamed, strict=True))
        if moved:
            tmp = f.with_name(f".{f.name}.renaming")
            save_file(renamed, tmp, metadata={"format": "pt"})
            tmp.replace(f)
            changed += moved
    if changed and index.exists():
        idx = jsonio.load_index(index)
        idx["weight_map"] = {rename(k, model_type): v for k, v in idx["weight_map"].items()}
        index.write_text(json.dumps(idx, indent=2, sort_keys=True) + "\n")
    return changed
