"""A checkpoint opened by a route that computes its tensors (reassembled, permuted,
dequantized): every tensor it will produce, decided from headers and metadata before a byte is
written, and the one writer and report builder for all such routes.

An opener (``open_dcp``, ``open_zero``, ``open_meta``, ``open_gguf``, ``open_llama2c``,
``open_megatron``) reads the source's metadata and returns an :class:`Opened`; ``plan_convert``
shards its tensors (the dry-run and the writer split them with the same function), and
:func:`write_opened` computes each tensor once, writes it while hashing, proves each shard, and
writes the side files (config.json, tokenizer files) the format implies.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelport._io.atomic import atomic_dir
from modelport._io.hashcache import record as record_hashes
from modelport._io.hashing import copy_hashed, sha256_file
from modelport._io.st_header import TORCH_TO_ST
from modelport._types import FileRecord, SkippedItem, file_role
from modelport.convert.computed import Entry, tensor_bytes, write_shards
from modelport.convert.options import ConvertOptions
from modelport.convert.report import ConvertReport, InputFile
from modelport.convert.shards import ShardPlan
from modelport.errors import UnsupportedError


@dataclass
class Produced:
    """One output tensor: its name, torch dtype name, shape and size, and how to compute it
    (a torch tensor, made when the writer reaches it and dropped after)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    value: Callable[[], Any]

    @property
    def entry(self) -> Entry:
        return self.name, TORCH_TO_ST[self.dtype], self.shape, self.nbytes


@dataclass
class Opened:
    """What a computed route will write, and what it leaves out."""

    src: Path
    inputs: list[InputFile]
    tensors: list[Produced]
    tensors_in: int
    warnings: list[str] = field(default_factory=list)
    state_dict_key: str | None = None
    aliases: dict[str, str] = field(default_factory=dict)  # dropped name -> written name
    renamed: dict[str, str] = field(default_factory=dict)  # input name -> output name
    skipped_entries: list[SkippedItem] = field(default_factory=list)
    skipped_files: list[SkippedItem] = field(default_factory=list)
    copy_files: list[Path] = field(default_factory=list)  # side files copied as they are
    # writes the files the format implies (config.json, tokenizer) into the output folder and
    # returns notes for the report; ``side_files`` names what it will write, for the plan
    side: Callable[[Path], list[str]] | None = None
    side_files: list[str] = field(default_factory=list)
    closers: list[Callable[[], None]] = field(default_factory=list)

    def check_dtypes(self) -> None:
        """Refuse a tensor safetensors cannot hold, before anything is written."""
        bad = [f"{t.name} ({t.dtype})" for t in self.tensors if t.dtype not in TORCH_TO_ST]
        if bad:
            raise UnsupportedError(f"{len(bad)} tensor(s) have dtypes safetensors cannot "
                                   f"store: {', '.join(bad[:3])}", path=self.src,
                                   supported=sorted(TORCH_TO_ST))

    def close(self) -> None:
        for c in self.closers:
            c()


def emit(p: Produced, w: Any) -> None:
    """Compute ``p`` and write its bytes (the tensor is dropped when this returns)."""
    w.write(tensor_bytes(p.value()))


def holds(path: Path, shard: ShardPlan) -> bool:
    """Whether the file at ``path`` holds exactly ``shard``'s tensors as they compute now:
    the names, dtypes, shapes and every byte (a rerun keeps such a shard)."""
    from modelport._io.st_header import read_header
    from modelport.errors import ModelportError

    try:
        header = read_header(path)
    except ModelportError:
        return False
    if set(header.tensors) != {p.name for p in shard.tensors}:
        return False
    with open(path, "rb") as f:
        for p in shard.tensors:
            e = header.tensors[p.name]
            if (e.dtype, tuple(e.shape)) != (p.entry[1], p.shape):
                return False
            f.seek(header.data_start + e.begin)
            if f.read(e.end - e.begin) != tensor_bytes(p.value()).tobytes():
                return False
    return True


def write_opened(op: Opened, shards: list[ShardPlan], dst: Path, options: ConvertOptions,
                 after_shard: Callable[[ShardPlan, Path, FileRecord], None] | None = None
                 ) -> ConvertReport:
    """Write ``op``'s tensors as ``shards`` (``plan_convert`` split them) into the new folder
    ``dst`` (see the module docstring); ``after_shard`` runs on each proven shard (an upload).
    Nothing is left at ``dst`` on any error."""
    t0 = time.perf_counter()
    notes: list[str] = []
    with atomic_dir(dst, overwrite=options.overwrite) as tmp:
        outputs, tensor_map = write_shards(
            tmp, shards, lambda p: p.entry, emit, options.verify, op.aliases, after_shard)
        if options.copy_other_files:
            for p in op.copy_files:
                size, sha = copy_hashed(p, tmp / p.name)
                outputs.append(FileRecord(path=p.name, role=file_role(p.name), size=size,
                                          sha256=sha))
        if op.side is not None:
            notes = op.side(tmp)
        recorded = {o.path for o in outputs}
        for p in sorted(tmp.rglob("*")):  # what the side step wrote
            rel = p.relative_to(tmp).as_posix()
            if p.is_file() and not rel.startswith(".") and rel not in recorded:
                outputs.append(FileRecord(path=rel, role=file_role(rel), size=p.stat().st_size,
                                          sha256=sha256_file(p)))
        record_hashes(tmp, {o.path: o.sha256 for o in outputs})
    for a, b in op.aliases.items():
        tensor_map[a] = f"alias of {b}"
    return ConvertReport(
        src=str(op.src), dst=str(dst), inputs=op.inputs, state_dict_key=op.state_dict_key,
        tensors_in=op.tensors_in, tensors_written=len(op.tensors),
        parameters=sum(math.prod(t.shape) for t in op.tensors),
        total_bytes=sum(t.nbytes for t in op.tensors),
        dtypes=dict(Counter(t.dtype for t in op.tensors)),
        outputs=outputs, aliases=op.aliases, overlapping_views=[], tensor_map=tensor_map,
        renamed=op.renamed, skipped_entries=op.skipped_entries,
        skipped_files=op.skipped_files, warnings=[*op.warnings, *notes],
        verified=options.verify, seconds=round(time.perf_counter() - t0, 3),
        verify_seconds=0.0)  # the proof runs shard by shard, inside the writing


__all__ = ["Opened", "Produced", "emit", "holds", "write_opened"]
