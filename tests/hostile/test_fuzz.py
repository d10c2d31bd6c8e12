"""Fuzzing the parsers that see untrusted bytes: safetensors headers, pickles (zip and legacy),
indexes and manifests. Only our typed errors may come out; no hang, no other exception.

`make test` runs a short pass; `make bench` sets MODELPORT_FUZZ_EXAMPLES (25 000 per target,
100 000 in all).
"""

from __future__ import annotations

import io
import json
import os
import struct
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelport._io.st_header import parse_header
from modelport.convert.torch_files import load_pickle_checkpoint
from modelport.errors import ModelportError
from modelport.package.manifest import read_manifest

N = int(os.environ.get("MODELPORT_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=N, deadline=2000, derandomize=N <= 150,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TMP = Path(tempfile.mkdtemp(prefix="modelport-fuzz-"))


def _seed(legacy: bool) -> bytes:
    buf = io.BytesIO()
    torch.save({"w": torch.arange(6.0).view(2, 3), "b": torch.ones(2, dtype=torch.bfloat16),
                "t": torch.arange(4).t()}, buf,
               **({"_use_new_zipfile_serialization": False} if legacy else {}))
    return buf.getvalue()


SEEDS = {False: _seed(False), True: _seed(True)}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=20)
tensor_entry = st.fixed_dictionaries({
    "dtype": st.sampled_from(["F32", "F16", "BF16", "U8", "I64", "BOOL", "F8_E4M3", "X"]),
    "shape": st.lists(st.integers(-1, 6), max_size=3),
    "data_offsets": st.lists(st.integers(-4, 80), min_size=0, max_size=3)})


@pytest.mark.hostile_class("fuzz: safetensors header")
@FUZZ
@given(st.one_of(st.binary(max_size=300),
                 st.dictionaries(st.text(max_size=5), tensor_entry | json_values, max_size=5)
                 .map(lambda d: json.dumps(d).encode())),
       st.integers(0, 200))
def test_header_parser(raw: bytes, data_len: int) -> None:
    try:
        h = parse_header(Path("fuzz.safetensors"), raw, 8 + len(raw) + data_len)
    except ModelportError:
        return
    for t in h.tensors.values():  # what it accepts is consistent
        assert 0 <= t.begin <= t.end <= data_len


@pytest.mark.hostile_class("fuzz: pickle reader")
@FUZZ
@given(st.booleans(), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                               max_size=6),
       st.integers(0, 10**6), st.sampled_from(["flip", "cut", "insert"]))
def test_pickle_reader(legacy: bool, edits: list[tuple[int, int]], cut: int, how: str) -> None:
    data = bytearray(SEEDS[legacy])
    for pos, val in edits:
        i = pos % len(data)
        if how == "insert":
            data.insert(i, val)
        else:
            data[i] = val
    if how == "cut":
        data = data[: cut % len(data)]
    p = TMP / f"f{os.getpid()}.pt"
    p.write_bytes(bytes(data))
    try:
        load_pickle_checkpoint(p)
    except ModelportError:
        pass


@pytest.mark.hostile_class("fuzz: pickle reader")
@FUZZ
@given(st.binary(max_size=200))
def test_raw_pickle_streams(body: bytes) -> None:
    p = TMP / f"r{os.getpid()}.pt"
    p.write_bytes(b"\x80\x02" + body)
    try:
        load_pickle_checkpoint(p)
    except ModelportError:
        pass


@pytest.mark.hostile_class("fuzz: manifest and index readers")
@FUZZ
@given(st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()),
                 st.fixed_dictionaries({
                     "schema_version": st.sampled_from([1, 2]), "name": st.text(max_size=5),
                     "files": st.lists(st.fixed_dictionaries({
                         "path": st.sampled_from(["a", "../a", "/a", "a/../b", "ok/x", "",
                                                  "a\\b"]),
                         "role": st.sampled_from(["weights", "bad"]),
                         "size": st.integers(-1, 9),
                         "sha256": st.sampled_from(["0" * 64, "zz"])}), max_size=3)})
                 .map(lambda d: json.dumps(d).encode())))
def test_manifest_reader(raw: bytes) -> None:
    try:
        m = read_manifest(raw, "fuzz")
    except ModelportError:
        return
    for f in m.files:
        assert not f.path.startswith(("/", "..")) and "\\" not in f.path


@pytest.mark.hostile_class("fuzz: manifest and index readers")
@FUZZ
@given(json_values)
def test_index_reader(weight_map: object) -> None:
    from modelport.convert.sources import open_source

    d = TMP / f"idx{os.getpid()}"
    d.mkdir(exist_ok=True)
    torch.save({"a": torch.ones(1)}, d / "pytorch_model-00001-of-00001.bin")
    (d / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    try:
        open_source(d)
    except ModelportError:
        pass
    _ = struct
