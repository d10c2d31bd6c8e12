"""Reading and writing safetensors headers, with the checks a hostile file needs.

Layout: 8-byte little-endian header length N, N bytes of JSON, then the data region.
Tensor ``data_offsets`` are relative to the start of the data region.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelport.errors import CheckpointError

ST_INDEX = "model.safetensors.index.json"  # a sharded folder's index

# safetensors dtype name -> (element size in bytes, torch dtype attribute name)
ST_DTYPES: dict[str, tuple[int, str]] = {
    "F64": (8, "float64"),
    "F32": (4, "float32"),
    "F16": (2, "float16"),
    "BF16": (2, "bfloat16"),
    "I64": (8, "int64"),
    "I32": (4, "int32"),
    "I16": (2, "int16"),
    "I8": (1, "int8"),
    "U64": (8, "uint64"),
    "U32": (4, "uint32"),
    "U16": (2, "uint16"),
    "U8": (1, "uint8"),
    "BOOL": (1, "bool"),
    "F8_E4M3": (1, "float8_e4m3fn"),
    "F8_E5M2": (1, "float8_e5m2"),
}
TORCH_TO_ST: dict[str, str] = {torch_name: st for st, (_, torch_name) in ST_DTYPES.items()}

MAX_HEADER_BYTES = 100 * 2**20  # the safetensors library's own limit
ALIGNMENT = 8


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of a safetensors header."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int  # relative to the data region
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass
class SafetensorsHeader:
    """A parsed, validated safetensors header."""

    path: Path
    header_len: int
    tensors: dict[str, TensorEntry]
    metadata: dict[str, str] | None
    file_size: int

    @property
    def data_start(self) -> int:
        return 8 + self.header_len


class _Duplicate(Exception):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _Duplicate(k)
        out[k] = v
    return out


def _bad(path: Path, msg: str, member: str | None = None) -> CheckpointError:
    return CheckpointError(
        msg, path=path, member=member,
        hint="the file is not a valid safetensors file; re-export or re-download it",
    )


def read_header(path: str | Path) -> SafetensorsHeader:
    """Parse and validate the header of a safetensors file without reading tensor data.

    Raises:
        CheckpointError: the length prefix, JSON, dtypes, shapes or offsets are invalid.
    """
    path = Path(path)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                raise _bad(path, f"file too short for a safetensors header ({size} bytes)")
            (n,) = struct.unpack("<Q", prefix)
            if n > MAX_HEADER_BYTES:
                raise _bad(path, f"header length {n} exceeds the {MAX_HEADER_BYTES}-byte limit")
            if 8 + n > size:
                raise _bad(path, f"header length {n} runs past the end of the file ({size} bytes)")
            raw = f.read(n)
    except IsADirectoryError as e:
        raise _bad(path, "is a directory, expected a safetensors file") from e
    except OSError as e:
        raise CheckpointError(f"cannot read: {e.strerror}", path=path) from e
    return parse_header(path, raw, size)


def parse_header(path: Path, raw: bytes, file_size: int) -> SafetensorsHeader:
    """Validate header JSON bytes (without the length prefix)."""
    try:
        obj = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _bad(path, f"header is not valid UTF-8 JSON ({e})") from e
    except _Duplicate as e:
        raise _bad(path, f"header names tensor {e.args[0]!r} twice") from e
    except RecursionError as e:  # "[[[[...": a nesting bomb
        raise _bad(path, "header JSON is nested too deeply") from e
    if not isinstance(obj, dict):
        raise _bad(path, "header JSON is not an object")
    data_len = file_size - 8 - len(raw)
    metadata = obj.pop("__metadata__", None)
    if metadata is not None and (
        not isinstance(metadata, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    ):
        raise _bad(path, "__metadata__ must map strings to strings")
    tensors: dict[str, TensorEntry] = {}
    for name, info in obj.items():
        if not isinstance(info, dict):
            raise _bad(path, "tensor entry is not an object", name)
        dtype, shape, offs = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if not isinstance(dtype, str) or dtype not in ST_DTYPES:
            raise _bad(path, f"unknown dtype {dtype!r}", name)
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise _bad(path, f"invalid shape {shape!r}", name)
        if (
            not isinstance(offs, list) or len(offs) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offs)
        ):
            raise _bad(path, f"invalid data_offsets {offs!r}", name)
        begin, end = offs
        esize = ST_DTYPES[dtype][0]
        if not 0 <= begin <= end <= data_len:
            raise _bad(path, f"data_offsets {offs} outside the {data_len}-byte data region", name)
        if end - begin != math.prod(shape) * esize:
            raise _bad(path, f"data_offsets {offs} do not match shape {shape} of {dtype}", name)
        tensors[name] = TensorEntry(name, dtype, tuple(shape), begin, end)
    spans = sorted((t.begin, t.end, t.name) for t in tensors.values() if t.end > t.begin)
    for (_, e1, n1), (b2, _, n2) in itertools.pairwise(spans):
        if b2 < e1:
            raise _bad(path, f"tensors {n1!r} and {n2!r} overlap")
    return SafetensorsHeader(path, len(raw), tensors, metadata, file_size)


def build_header(
    entries: list[tuple[str, str, tuple[int, ...], int]], metadata: dict[str, str]
) -> tuple[bytes, list[int]]:
    """Build header bytes (length prefix included) for tensors laid out in the given order.

    Args:
        entries: (name, safetensors dtype, shape, nbytes) in file order.
        metadata: the ``__metadata__`` map.

    Returns:
        The header bytes, padded with spaces to 8-byte alignment, and each tensor's begin offset.
    """
    obj: dict[str, Any] = {"__metadata__": metadata}
    offsets: list[int] = []
    pos = 0
    for name, dtype, shape, nbytes in entries:
        obj[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [pos, pos + nbytes]}
        offsets.append(pos)
        pos += nbytes
    raw = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raw += b" " * (-(8 + len(raw)) % ALIGNMENT)
    return struct.pack("<Q", len(raw)) + raw, offsets
