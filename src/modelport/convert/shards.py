"""How a model's tensors are split into safetensors shards and what the shards are called:
one decision, for every route, the dry-run and Spark."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SINGLE_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"


@dataclass
class ShardPlan:
    filename: str
    tensors: list[Any]  # anything with .name and .nbytes

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)


def shard(tensors: list[Any], max_bytes: int,
          nbytes: Callable[[Any], int] = lambda t: t.nbytes) -> list[ShardPlan]:
    """Greedy, in source order; a tensor larger than ``max_bytes`` gets a shard of its own.
    ``tensors`` are anything ``nbytes`` sizes (source tensors by default)."""
    groups: list[list[Any]] = [[]]
    size = 0
    for t in tensors:
        if groups[-1] and size + nbytes(t) > max_bytes:
            groups.append([])
            size = 0
        groups[-1].append(t)
        size += nbytes(t)
    n = len(groups)
    if n == 1:
        return [ShardPlan(SINGLE_NAME, groups[0])]
    return [ShardPlan(f"model-{i + 1:05d}-of-{n:05d}.safetensors", g)
            for i, g in enumerate(groups)]


def shard_metadata(shard: ShardPlan, aliases: dict[str, str]) -> dict[str, str]:
    """``format: pt`` plus, as safetensors' own save_model does, ``dropped name -> kept name``
    for each alias whose kept tensor is in this shard."""
    names = {t.name for t in shard.tensors}
    meta = {"format": "pt"}
    meta.update({d: k for d, k in aliases.items() if k in names and d != "format"})
    return meta



def index_bytes(shards: list[ShardPlan]) -> bytes:
    """model.safetensors.index.json for more than one shard: every tensor name to its file,
    the tensors' bytes as total_size (keys sorted, so every writer writes the same bytes)."""
    index = {"metadata": {"total_size": sum(s.nbytes for s in shards)},
             "weight_map": {t.name: s.filename for s in shards for t in s.tensors}}
    return json.dumps(index, indent=2, sort_keys=True).encode() + b"\n"


__all__ = ["INDEX_NAME", "SINGLE_NAME", "ShardPlan", "index_bytes", "shard", "shard_metadata"]
