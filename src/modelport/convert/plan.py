"""Plan a conversion before writing anything: shards, aliases, overlaps, every name's fate."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelport._io import jsonio
from modelport._io.paths import check_output
from modelport._io.st_header import TORCH_TO_ST
from modelport.convert.formats import check_options, detect
from modelport.convert.options import ConvertOptions
from modelport.convert.sources import SourceSet, SourceTensor, open_source
from modelport.errors import InputError, UnsupportedError

SINGLE_NAME = "model.safetensors"


@dataclass
class ShardPlan:
    filename: str
    tensors: list[SourceTensor]

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)


@dataclass
class ConvertPlan:
    """What convert will write; built without reading tensor data."""

    source: SourceSet
    dst: Path
    options: ConvertOptions
    shards: list[ShardPlan]
    aliases: dict[str, str]  # name not written -> name written with the same bytes
    overlapping: list[list[str]]  # share storage bytes without being aliases: written apart
    warnings: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)  # framework name -> model name

    @property
    def total_bytes(self) -> int:
        return sum(s.nbytes for s in self.shards)


def check_source(src: Path, *, adapter_hint: str | None = None) -> None:
    """What every conversion (and ``prepare``) refuses before reading weights: a missing
    path, a JSON side file that does not parse, a PEFT adapter (merged, not converted;
    ``adapter_hint`` is the verb's way to merge it).

    Raises:
        InputError.
    """
    if not src.exists():
        raise InputError("does not exist", path=src, hint="check the path")
    jsonio.require_valid(src)
    if src.is_dir() and (src / "adapter_config.json").is_file():
        raise InputError("is a PEFT adapter (adapter_config.json), not a model: its weights "
                         "are deltas that no platform loads alone", path=src,
                         hint=adapter_hint or f"use modelport merge BASE {src} --out OUT")


def _tied_embeddings_off(src: SourceSet) -> bool:
    if src.root is None or not (src.root / "config.json").is_file():
        return False
    try:
        cfg = jsonio.load(src.root / "config.json")
    except (OSError, ValueError):
        return False
    return isinstance(cfg, dict) and cfg.get("tie_word_embeddings") is False


def find_aliases(tensors: list[SourceTensor]) -> tuple[dict[str, str], list[list[str]]]:
    """Exact aliases (first name in source order kept) and groups of overlapping views."""
    first: dict[tuple[object, ...], str] = {}
    aliases: dict[str, str] = {}
    by_storage: dict[tuple[int, str], list[SourceTensor]] = defaultdict(list)
    for t in tensors:
        if t.identity in first:
            aliases[t.name] = first[t.identity]
            continue
        first[t.identity] = t.name
        by_storage[(t.file_index, t.storage_key)].append(t)
    overlapping: list[list[str]] = []
    for group in by_storage.values():
        if len(group) < 2:
            continue
        spans = sorted((t.byte_span(), t.name) for t in group if t.nbytes)
        cluster: list[str] = []
        end = -1
        for (b, e), name in spans:
            if b < end:
                cluster.append(name)
            else:
                if len(cluster) > 1:
                    overlapping.append(cluster)
                cluster = [name]
            end = max(end, e)
        if len(cluster) > 1:
            overlapping.append(cluster)
    return aliases, overlapping


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


def plan_convert(
    src: str | Path, dst: str | Path, options: ConvertOptions | None = None
) -> ConvertPlan:
    """Decide everything a conversion will do, reading headers and pickles but no tensor data.

    Raises:
        InputError: bad SRC/DST combination.
        CheckpointError / UnsafeCheckpointError: broken or hostile input.
        UnsupportedError: a tensor dtype safetensors cannot hold.
    """
    options = options or ConvertOptions()
    src, dst = Path(src), Path(dst)
    check_source(src)
    fmt, _ = detect(src)
    if not fmt.planned:  # its route computes its tensors: not (yet) a plan of this kind
        raise UnsupportedError(
            f"a {fmt.label} is converted by its own route, which --dry-run, s3:// sources and "
            "Spark's convert_distributed do not plan yet", path=src,
            hint="run modelport convert SRC DST on a local copy")
    check_options(fmt, options)
    check_output(src, dst, overwrite=options.overwrite)
    source = open_source(src, state_dict_key=options.state_dict_key,
                         strip_prefix=options.strip_prefix, allow_globals=options.allow_globals)
    from modelport.convert.framework_names import model_renaming

    # --strip-prefix was applied by open_source; otherwise the frameworks' marks are fitted
    renamed, note = model_renaming([t.name for t in source.tensors],
                                   src if src.is_dir() else src.parent,
                                   fit=options.fit_names and options.strip_prefix is None)
    if renamed:
        source.tensors = [dataclasses.replace(t, name=renamed.get(t.name, t.name))
                          for t in source.tensors]
    if note:
        source.warnings.append(note)
    bad = [f"{t.name} ({t.dtype})" for t in source.tensors if t.dtype not in TORCH_TO_ST]
    if bad:
        raise UnsupportedError(
            f"{len(bad)} tensor(s) have dtypes safetensors cannot store: {', '.join(bad[:5])}",
            path=src, supported=sorted(TORCH_TO_ST),
        )
    aliases, overlapping = find_aliases(source.tensors)
    warnings = list(source.warnings)
    if aliases and (options.aliases == "copy" or _tied_embeddings_off(source)):
        if options.aliases == "dedupe":
            warnings.append("config.json sets tie_word_embeddings false: aliased tensors are "
                            "written once per name")
        aliases = {}
    written = [t for t in source.tensors if t.name not in aliases]
    return ConvertPlan(source, dst, options, shard(written, options.max_shard_size), aliases,
                       overlapping, warnings, renamed)
