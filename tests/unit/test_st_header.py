"""The safetensors header parser: what it accepts, and each way a header can lie."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from modelport._io.st_header import build_header, read_header
from modelport.convert.options import parse_size
from modelport.errors import CheckpointError


def _file(tmp_path: Path, header: object, data: bytes = b"", raw: bytes | None = None) -> Path:
    body = raw if raw is not None else json.dumps(header).encode()
    p = tmp_path / "x.safetensors"
    p.write_bytes(struct.pack("<Q", len(body)) + body + data)
    return p


def test_reads_what_safetensors_writes(tmp_path: Path) -> None:
    save_file({"a": torch.zeros(2, 3), "b": torch.ones(4, dtype=torch.bfloat16)},
              tmp_path / "x.safetensors", metadata={"format": "pt"})
    h = read_header(tmp_path / "x.safetensors")
    assert h.metadata == {"format": "pt"}
    assert h.tensors["a"].shape == (2, 3)
    assert h.tensors["b"].dtype == "BF16"
    assert h.data_start + h.tensors["a"].end <= h.file_size


def test_build_header_is_aligned_and_parses(tmp_path: Path) -> None:
    header, offsets = build_header([("a", "F32", (3,), 12), ("b", "U8", (5,), 5)],
                                   {"format": "pt"})
    assert len(header) % 8 == 0
    assert offsets == [0, 12]
    p = tmp_path / "y.safetensors"
    p.write_bytes(header + bytes(17))
    assert read_header(p).tensors["b"].begin == 12


@pytest.mark.parametrize(("header", "data", "match"), [
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"", "outside"),
    ({"a": {"dtype": "F99", "shape": [2], "data_offsets": [0, 8]}}, bytes(8), "unknown dtype"),
    ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, bytes(12), "do not match"),
    ({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 8]}}, bytes(8), "invalid shape"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, bytes(8), "outside"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, bytes(12), "overlap"),
    ({"__metadata__": {"format": 1}}, b"", "__metadata__"),
    ([1, 2], b"", "not an object"),
    ({"a": 5}, b"", "not an object"),
    ({"a": {"dtype": [], "shape": [], "data_offsets": [0, 0]}}, b"", "unknown dtype"),  # fuzz
])
def test_bad_headers(tmp_path: Path, header: object, data: bytes, match: str) -> None:
    with pytest.raises(CheckpointError, match=match):
        read_header(_file(tmp_path, header, data))


def test_invalid_json_and_length_prefix(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="JSON"):
        read_header(_file(tmp_path, None, raw=b"{not json"))
    p = tmp_path / "z.safetensors"
    p.write_bytes(struct.pack("<Q", 10**6) + b"{}")
    with pytest.raises(CheckpointError, match="past the end"):
        read_header(p)
    p.write_bytes(struct.pack("<Q", 2**40) + b"{}")
    with pytest.raises(CheckpointError, match="limit"):
        read_header(p)
    p.write_bytes(b"abc")
    with pytest.raises(CheckpointError, match="too short"):
        read_header(p)


@pytest.mark.parametrize(("text", "n"), [("5GB", 5 * 10**9), ("512MiB", 512 * 2**20),
                                          ("1000", 1000), ("1.5KB", 1500), (7, 7)])
def test_parse_size(text: str | int, n: int) -> None:
    assert parse_size(text) == n


def test_parse_size_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size("five gigs")

