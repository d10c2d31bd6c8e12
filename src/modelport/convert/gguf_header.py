"""A GGUF file's header read without materialising its arrays: the scalar and string fields
and every tensor's name, type, shape, offset and size.

gguf's ``GGUFReader`` (the reference reader, used to convert) parses every element of every
array field into numpy objects: 2 s for a 32k-token vocabulary, before a single tensor is
listed. ``inspect`` needs the tensors and a few fields only, so it walks past the arrays
here; the test compares every answer with ``GGUFReader``'s on the same files.
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
    fields: dict[str, Any] = field(default_factory=dict)  # arrays as their element count
    tensors: list[GgufTensor] = field(default_factory=list)


class _Reader:
    def __init__(self, f: BinaryIO, size: int, path: Path) -> None:
        self.f, self.size, self.path = f, size, path

    def unpack(self, fmt: str) -> Any:
        n = struct.calcsize(fmt)
        b = self.f.read(n)
        if len(b) != n:
            raise CheckpointError("the GGUF header ends early", path=self.path,
                                  hint="the file is truncated; download it again")
        return struct.unpack(fmt, b)[0]

    def skip(self, n: int) -> None:
        if n < 0 or self.f.tell() + n > self.size:
            raise CheckpointError("a GGUF header length points past the end of the file",
                                  path=self.path, hint="the file is damaged")
        self.f.seek(n, 1)

    def string(self) -> str:
        n = self.unpack("<Q")
        if self.f.tell() + n > self.size:
            self.skip(n)  # raises
        return self.f.read(n).decode("utf-8", errors="replace")

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
            self.skip(count * struct.calcsize(_SCALAR[etype]))
        else:
            for _ in range(count):
                if etype == _STRING:
                    self.skip(self.unpack("<Q"))
                else:
                    self.value(etype)
        return count


def read_gguf_header(path: Path) -> GgufHeader:
    """The header of the GGUF file at ``path`` (versions 2 and 3).

    Raises:
        CheckpointError: not GGUF, an unsupported version, or a damaged header.
    """
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    size = path.stat().st_size
    with path.open("rb") as f:
        r = _Reader(f, size, path)
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
    return h


__all__ = ["GgufHeader", "GgufTensor", "read_gguf_header"]
