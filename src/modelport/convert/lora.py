"""``merge``: a base model plus a PEFT LoRA adapter into full weights, tensor by tensor.

For each base tensor a LoRA targets: ``W + scaling · B·A`` computed in fp32 and cast back once
(``fan_in_fan_out`` layers — GPT-2's Conv1D — take the transpose, embeddings take
``(B·A)ᵀ``), with ``scaling = alpha / r`` (rsLoRA: ``alpha / √r``) and per-module ``r`` /
``alpha`` from ``rank_pattern`` / ``alpha_pattern``. Modules the adapter saves whole
(``modules_to_save``, a sequence-classification head) replace the base's. Everything else is
the base's bytes, copied by the kernel. Only one output tensor and the adapter are in memory;
every shard is re-read: the base's tensors compared with the base's bytes, the merged ones
against the fingerprints taken as they were written.
Anchor: PEFT's ``merge_and_unload`` (the whole model in memory).
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from modelport._io import jsonio
from modelport._io.atomic import atomic_dir
from modelport._io.hashing import copy_hashed
from modelport._io.paths import check_output
from modelport._types import FileRecord, Record, file_role
from modelport.convert.feeds import tensor_bytes
from modelport.convert.shards import shard
from modelport.convert.sources import Reader, SourceSet, SourceTensor, open_source
from modelport.convert.writer import write_shards
from modelport.errors import InputError, UnsupportedError

ADAPTER_FILES = ("adapter_model.safetensors", "adapter_model.bin")
PREFIX = "base_model.model."


class MergeReport(Record):
    base: str
    adapter: str
    out: str
    r: int
    lora_alpha: float
    scaling: float = Field(description="alpha / r, or alpha / sqrt(r) with rsLoRA")
    use_rslora: bool
    fan_in_fan_out: bool
    merged: list[str] = Field(description="base tensors that received W + scaling * B A")
    replaced: list[str] = Field(description="base tensors replaced by the adapter's copy")
    tensors: int
    outputs: list[FileRecord]
    verified: bool
    seconds: float


def _adapter_config(adapter: Path) -> dict[str, Any]:
    path = adapter / "adapter_config.json"
    if not path.is_file():
        raise InputError("no adapter_config.json: not a PEFT adapter folder", path=adapter)
    cfg = jsonio.load(path)
    if not isinstance(cfg, dict):
        raise InputError("adapter_config.json is not an object", path=path)
    kind = str(cfg.get("peft_type", "LORA")).upper()
    if kind != "LORA":
        raise UnsupportedError(f"a {kind} adapter; only LoRA merges into plain weights",
                               path=path, supported=["LORA"])
    if cfg.get("use_dora"):
        raise UnsupportedError("DoRA adapters (use_dora): the merged weight depends on a "
                               "per-column norm this merge does not compute", path=path,
                               hint="merge with PEFT's merge_and_unload")
    for key in ("layers_to_transform", "layer_replication"):
        if cfg.get(key):
            raise UnsupportedError(f"adapters with {key}", path=path)
    if not isinstance(cfg.get("r"), int) or cfg["r"] <= 0:
        raise InputError("adapter_config.json has no positive integer r", path=path)
    return cfg


def _pattern_value(patterns: dict[str, Any], module: str, default: Any) -> Any:
    """PEFT's rank_pattern / alpha_pattern: the first key that matches the module's end."""
    for key, value in (patterns or {}).items():
        if re.match(rf"(.*\.)?{key}$", module):
            return value
    return default


class _Lora:
    """The adapter's tensors, keyed by the base tensor they change."""

    def __init__(self, adapter: Path, cfg: dict[str, Any]) -> None:
        files = [adapter / f for f in ADAPTER_FILES if (adapter / f).is_file()]
        if not files:
            raise InputError("no adapter_model.safetensors or adapter_model.bin", path=adapter)
        src = open_source(files[0])
        reader = Reader(src.files)
        try:
            tensors = {t.name: reader.tensor(t).clone() for t in src.tensors}
        finally:
            reader.close()
        self.cfg = cfg
        self.delta: dict[str, tuple[Any, Any, str, float]] = {}  # weight -> (A, B, kind, scale)
        self.whole: dict[str, Any] = {}
        self.base_copy: dict[str, Any] = {}  # a layer's base weight saved with the adapter
        pairs: dict[str, dict[str, Any]] = {}
        for name, value in tensors.items():
            key = name[len(PREFIX):] if name.startswith(PREFIX) else name
            key = key.replace(".modules_to_save.default", "").replace(".default", "")
            m = re.match(r"(.+)\.(lora_A|lora_B)\.weight$", key) or \
                re.match(r"(.+)\.(lora_embedding_A|lora_embedding_B)$", key)
            if m:
                pairs.setdefault(m.group(1), {})[m.group(2)] = value
            elif ".base_layer." in key:
                # PEFT saves an embedding's base weight beside its LoRA (save_embedding_layers)
                # and loads it over the base's: the merge starts from it
                self.base_copy[key.replace(".base_layer.", ".")] = value
            elif ".lora_" in key or key.endswith(".lora_magnitude_vector"):
                raise UnsupportedError(f"adapter tensor {name!r} is not a LoRA A/B pair",
                                       path=files[0])
            else:
                self.whole[key] = value
        r0, alpha0 = int(cfg["r"]), float(cfg.get("lora_alpha", cfg["r"]))
        for module, p in pairs.items():
            a = p.get("lora_A", p.get("lora_embedding_A"))
            b = p.get("lora_B", p.get("lora_embedding_B"))
            if a is None or b is None:
                raise InputError(f"{module}: lora_A without lora_B (or the reverse)",
                                 path=files[0])
            r = int(_pattern_value(cfg.get("rank_pattern", {}), module, r0))
            alpha = float(_pattern_value(cfg.get("alpha_pattern", {}), module, alpha0))
            scale = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r
            kind = "embedding" if "lora_embedding_A" in p else (
                "fan_in_fan_out" if cfg.get("fan_in_fan_out") else "linear")
            self.delta[f"{module}.weight"] = (a, b, kind, scale)
        self.file = files[0]

    def merged(self, name: str, w: Any) -> Any:
        """``W + scaling · B·A`` in fp32, cast back to W's dtype once."""
        a, b, kind, scale = self.delta[name]
        d = b.float() @ a.float()
        if kind in ("embedding", "fan_in_fan_out"):
            d = d.T
        if tuple(d.shape) != tuple(w.shape):
            raise InputError(f"the adapter's update for {name} is {tuple(d.shape)}, the base "
                             f"tensor is {tuple(w.shape)}", path=self.file,
                             hint="this adapter was trained on another base model")
        return (w.float() + d * scale).to(w.dtype)


def merge(base: str | Path, adapter: str | Path, out: str | Path, *, overwrite: bool = False,
          max_shard_size: int = 5 * 10**9, verify: bool = True) -> MergeReport:
    """Merge a LoRA ``adapter`` into ``base`` and write full safetensors weights to ``out``.

    Raises:
        UnsupportedError: DoRA, other PEFT types, layer replication.
        InputError: names or shapes that do not fit the base, an adapter's whole module the
            base lacks (nothing is written).
    """
    t0 = time.perf_counter()
    base, adapter, out = Path(base), Path(adapter), Path(out)
    jsonio.require_valid(base)
    jsonio.require_valid(adapter)
    if not base.is_dir():
        raise InputError("is not a model folder", path=base)
    check_output(base, out, overwrite=overwrite)
    cfg = _adapter_config(adapter)
    lora = _Lora(adapter, cfg)
    src: SourceSet = open_source(base)
    names = {t.name for t in src.tensors}
    missing = sorted(set(lora.delta) - names)
    if missing:
        raise InputError(f"{len(missing)} LoRA target(s) are not tensors of the base: "
                         f"{', '.join(missing[:3])}", path=adapter,
                         hint=f"the adapter was trained on {cfg.get('base_model_name_or_path')}"
                              "; merge it into that model")
    lacking = sorted((set(lora.whole) | set(lora.base_copy)) - names)
    if lacking:
        raise InputError(f"the adapter saves whole module(s) the base lacks: "
                         f"{', '.join(lacking[:3])}", path=adapter,
                         hint="load the base with the head the adapter was trained with "
                              "(e.g. AutoModelForSequenceClassification, num_labels)")
    for name, value in (lora.whole | lora.base_copy).items():
        t = next(x for x in src.tensors if x.name == name)
        if tuple(value.shape) != tuple(t.shape):
            raise InputError(f"{name}: the adapter's copy is {tuple(value.shape)}, the base's "
                             f"{tuple(t.shape)}", path=adapter,
                             hint="build the base with the same number of labels")
    reader = Reader(src.files)
    outputs: list[FileRecord] = []
    try:
        with atomic_dir(out, overwrite=overwrite) as tmp:
            outputs, _, _ = write_shards(tmp, shard(src.tensors, max_shard_size),
                                         _Merged(reader, lora), verify=verify)
            for rel in src.copy_files:
                if rel in ("adapter_config.json", *ADAPTER_FILES):
                    continue
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                size, sha = copy_hashed(base / rel, tmp / rel)
                outputs.append(FileRecord(path=rel, size=size, sha256=sha, role=file_role(rel)))
    finally:
        reader.close()
    return MergeReport(
        base=str(base), adapter=str(adapter), out=str(out), r=int(cfg["r"]),
        lora_alpha=float(cfg.get("lora_alpha", cfg["r"])),
        scaling=float(next(iter(lora.delta.values()))[3]) if lora.delta else 0.0,
        use_rslora=bool(cfg.get("use_rslora")), fan_in_fan_out=bool(cfg.get("fan_in_fan_out")),
        merged=sorted(lora.delta), replaced=sorted(lora.whole), tensors=len(src.tensors),
        outputs=outputs, verified=verify, seconds=round(time.perf_counter() - t0, 3))


def _value(t: SourceTensor, reader: Reader, lora: _Lora) -> Any | None:
    """The merged or replaced value of ``t``; None when it is the base's bytes. The base
    tensor is read only when it is merged and the adapter carries no copy of it."""
    import torch

    dtype = getattr(torch, t.dtype)
    start = lora.whole.get(t.name, lora.base_copy.get(t.name))
    if t.name in lora.delta:
        w = start.to(dtype) if start is not None else reader.tensor(t)
        return lora.merged(t.name, w).contiguous()
    return start.to(dtype).contiguous() if start is not None else None


class _Merged:
    """The writer's feed (:mod:`modelport.convert.writer`): a merged or replaced tensor is
    computed (proven by hash), the base's untouched ones are copied from its files (proven by
    comparing with the base)."""

    def __init__(self, reader: Reader, lora: _Lora) -> None:
        self.reader, self.lora = reader, lora

    def computed(self, t: SourceTensor) -> bool:
        return t.name in self.lora.delta or t.name in self.lora.whole \
            or t.name in self.lora.base_copy

    def regions(self, t: SourceTensor) -> list[tuple[int, int, Any]] | None:
        return None if self.computed(t) else self.reader.regions(t)

    def tensor_bytes(self, t: SourceTensor, out: Any = None) -> Any:  # merged: new memory
        v = _value(t, self.reader, self.lora) if self.computed(t) else None
        return tensor_bytes(v) if v is not None else self.reader.tensor_bytes(t)

    def release(self, t: SourceTensor) -> None:
        if not self.computed(t):
            self.reader.release(t)


__all__ = ["MergeReport", "merge"]
