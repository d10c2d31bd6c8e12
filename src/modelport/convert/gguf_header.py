"""A GGUF file's header in one walk: the fields and every tensor's name, type, shape, offset
and size; the one GGUF reader of ``inspect`` and ``convert``.

gguf's ``GGUFReader`` (the format's reference reader) parses every element of every array
field into numpy objects: 2 s for a 32k-token vocabulary, before a single tensor is listed.
Here ``inspect`` walks past the arrays (each is its element count), and ``convert`` reads them
as plain lists (the vocabulary: tens of milliseconds); the tests compare every answer with
``GGUFReader``'s on written and real files.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from modelport.errors import CheckpointError

_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
           10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


@dataclass
class GgufTensor:
    name: str
    type_name: str  # gguf's GGMLQuantizationType name: F16, Q4_K, ...
    shape: tuple[int, ...]  # as the header stores it (fastest-varying first)
    offset: int  # from the start of the file
    n_bytes: int


@dataclass
class GgufHeader:
    version: int
    # arrays as lists, or as their element count when read without them
    fields: dict[str, Any] = field(default_factory=dict)
    tensors: list[GgufTensor] = field(default_factory=list)


class _Reader:
    def __init__(self, f: BinaryIO, size: int, path: Path, arrays: bool) -> None:
        self.f, self.size, self.path, self.arrays = f, size, path, arrays

    def read(self, n: int) -> bytes:
        b = self.f.read(n)
        if len(b) != n:
            raise CheckpointError("the GGUF header ends early", path=self.path,
                                  hint="the file is truncated; download it again")
        return b

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def skip(self, n: int) -> None:
        if n < 0 or self.f.tell() + n > self.size:
            raise CheckpointError("a GGUF header length points past the end of the file",
                                  path=self.path, hint="the file is damaged")
        self.f.seek(n, 1)

    def string(self, strict: bool = False) -> str:
        n = self.unpack("<Q")
        if self.f.tell() + n > self.size:
            self.skip(n)  # raises
        b = self.read(n)
        if not strict:
            return b.decode("utf-8", errors="replace")
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError as e:
            raise CheckpointError("a GGUF string array holds bytes that are not UTF-8",
                                  path=self.path, hint="the file is damaged") from e

    def value(self, vtype: int) -> Any:
        if vtype in _SCALAR:
            return self.unpack(_SCALAR[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype != _ARRAY:
            raise CheckpointError(f"unknown GGUF value type {vtype}", path=self.path)
        etype, count = self.unpack("<I"), self.unpack("<Q")
        if count > self.size:
            self.skip(count)  # raises
        if etype in _SCALAR:
            n = count * struct.calcsize(_SCALAR[etype])
            if not self.arrays:
                self.skip(n)
                return count
            import numpy as np

            if self.f.tell() + n > self.size:
                self.skip(n)  # raises
            return np.frombuffer(self.read(n), dtype=_SCALAR[etype]).tolist()
        if etype == _STRING and not self.arrays:
            for _ in range(count):
                self.skip(self.unpack("<Q"))
            return count
        if etype == _STRING:
            return [self.string(strict=True) for _ in range(count)]
        items = [self.value(etype) for _ in range(count)]
        return items if self.arrays else count


def read_gguf_header(path: Path, *, arrays: bool = False) -> GgufHeader:
    """The header of the GGUF file at ``path`` (versions 2 and 3); with ``arrays``, array
    fields as lists (strings decoded as UTF-8, strictly), else as their element count.

    Raises:
        CheckpointError: not GGUF, an unsupported version, or a damaged header.
    """
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    size = path.stat().st_size
    with path.open("rb") as f:
        r = _Reader(f, size, path, arrays)
        if f.read(4) != b"GGUF":
            raise CheckpointError("not a GGUF file (no GGUF magic)", path=path)
        version = r.unpack("<I")
        if version not in (2, 3):
            raise CheckpointError(f"GGUF version {version}", path=path,
                                  hint="GGUF versions 2 and 3 are supported")
        n_tensors, n_kv = r.unpack("<Q"), r.unpack("<Q")
        if n_tensors > size or n_kv > size:
            raise CheckpointError("GGUF header counts larger than the file", path=path)
        h = GgufHeader(version)
        for _ in range(n_kv):
            key = r.string()
            if key in h.fields:
                raise CheckpointError(f"the GGUF field {key!r} is there twice", path=path,
                                      hint="the file is damaged")
            h.fields[key] = r.value(r.unpack("<I"))
        infos = []
        for _ in range(n_tensors):
            name = r.string()
            n_dims = r.unpack("<I")
            if n_dims > 8:
                raise CheckpointError(f"tensor {name!r} has {n_dims} dimensions", path=path)
            dims = tuple(r.unpack("<Q") for _ in range(n_dims))
            infos.append((name, dims, r.unpack("<I"), r.unpack("<Q")))
        align = int(h.fields.get("general.alignment", 32)) or 32
        start = -(-f.tell() // align) * align
    for name, dims, ttype, offset in infos:
        try:
            qt = GGMLQuantizationType(ttype)
            block, type_size = GGML_QUANT_SIZES[qt]
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"tensor {name!r} has unknown GGUF type {ttype}",
                                  path=path) from e
        n = 1
        for d in dims:
            n *= d
        t = GgufTensor(name, qt.name, dims, start + offset, n * type_size // block)
        if t.offset + t.n_bytes > size:
            raise CheckpointError(f"tensor {name!r} ends past the end of the file", path=path,
                                  hint="the file is truncated; download it again")
        h.tensors.append(t)
    if len({t.name for t in h.tensors}) != len(h.tensors):
        raise CheckpointError("a GGUF tensor name is there twice", path=path,
                              hint="the file is damaged")
    return h


__all__ = ["GgufHeader", "GgufTensor", "read_gguf_header"]
