"""A checkpoint opened by a route that computes its tensors (reassembled, permuted,
dequantized): every tensor it will produce, decided from headers and metadata before a byte is
written.

An opener (``open_dcp``, ``open_zero``, ``open_meta``, ``open_gguf``, ``open_llama2c``,
``open_megatron``) reads the source's metadata and returns an :class:`Opened`; ``plan_convert``
shards its tensors (the dry-run and the writer split them with the same function), and the one
writer (:mod:`modelport.convert.writer`, fed by its ``Computed`` feed) computes each tensor
once, writes it while hashing and proves each shard; ``execute`` then writes the side files
(config.json, tokenizer files) the format implies and builds the one report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelport._io.st_header import TORCH_TO_ST
from modelport._types import SkippedItem
from modelport.convert.report import InputFile
from modelport.errors import UnsupportedError


def items(buf: Any, dtype: str, shape: tuple[int, ...]) -> Any:
    """``buf`` (bytes, or a uint8 numpy array) as a numpy array of ``shape`` whose items are
    unsigned integers of ``dtype``'s size: how a ``fill`` sees its output and its sources
    (moving elements is all a concatenation or a permutation does, bfloat16 included)."""
    import numpy as np

    from modelport.convert.pickle_safe import element_size

    return np.frombuffer(buf, dtype=np.uint8).view(f"u{element_size(dtype)}").reshape(shape)


@dataclass
class Produced:
    """One output tensor: its name, torch dtype name, shape and size, and how to compute it
    when the writer reaches it: ``fill(out)`` writes it into ``out`` (the writer's reused
    buffer, a writable numpy array of its shape whose items are unsigned integers of its
    element size), else ``value()`` returns it (a torch tensor, dropped once written).
    ``regions``, when given, names the source byte ranges (path, offset, length) whose
    concatenation is the tensor, or returns None: the writer then copies those ranges
    instead of computing it."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    value: Callable[[], Any] | None
    regions: Callable[[], list[tuple[Path, int, int]] | None] | None = None
    fill: Callable[[Any], None] | None = None


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


__all__ = ["Opened", "Produced", "items"]
