"""Broken files through every verb that reads them: a typed error in one or two lines,
a non-zero exit, no traceback, and nothing written."""

from __future__ import annotations

import io
import json
import os
import random
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

import modelport
from modelport.cli.main import cli
from modelport.errors import ModelportError
from tests.conftest import save_bin

Maker = Callable[[Path], Path]
CFG = json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]})


def _folder(tmp: Path) -> Path:
    d = tmp / "m"
    d.mkdir(exist_ok=True)
    (d / "config.json").write_text(CFG)
    return d


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    torch.save({"a": torch.randn(64, 64), "b": torch.randn(64)}, buf)
    return buf.getvalue()


def _bin(mutate: Callable[[bytes], bytes], legacy: bool = False) -> Maker:
    def make(tmp: Path) -> Path:
        d = _folder(tmp)
        buf = io.BytesIO()
        torch.save({"a": torch.randn(64, 64), "b": torch.randn(64)}, buf,
                   **({"_use_new_zipfile_serialization": False} if legacy else {}))
        (d / "pytorch_model.bin").write_bytes(mutate(buf.getvalue()))
        return d
    return make


def _rezip(drop: str | None = None, shorten: str | None = None) -> Callable[[bytes], bytes]:
    def mutate(data: bytes) -> bytes:
        zin = zipfile.ZipFile(io.BytesIO(data))
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
            for info in zin.infolist():
                body = zin.read(info)
                if drop and info.filename.endswith(drop):
                    continue
                if shorten and info.filename.endswith(shorten):
                    body = body[: len(body) // 3]
                z.writestr(info.filename, body)
        return out.getvalue()
    return mutate


def _cut(frac: float) -> Callable[[bytes], bytes]:
    return lambda b: b[: int(len(b) * frac)]


def _st(header: bytes | None = None, raw: bytes | None = None, data: bytes = b"") -> Maker:
    def make(tmp: Path) -> Path:
        d = _folder(tmp)
        body = raw if raw is not None else (
            struct.pack("<Q", len(header or b"")) + (header or b"") + data)
        (d / "model.safetensors").write_bytes(body)
        return d
    return make


def _tensor(name: str, dtype: str = "F32", shape: list[int] | None = None,
            offs: list[int] | None = None) -> dict:
    return {name: {"dtype": dtype, "shape": shape or [2], "data_offsets": offs or [0, 8]}}


def _index(entry: str) -> Maker:
    def make(tmp: Path) -> Path:
        d = _folder(tmp)
        save_bin({"a": torch.ones(2)}, d)
        torch.save({"b": torch.ones(2)}, tmp / "outside.bin")
        (d / "link.bin").symlink_to(tmp / "outside.bin")
        (d / "pytorch_model.bin.index.json").write_text(json.dumps(
            {"weight_map": {"a": "pytorch_model.bin", "b": entry}}))
        return d
    return make


def _symlinked_weights(tmp: Path) -> Path:
    d = _folder(tmp)
    save_bin({"a": torch.ones(2)}, tmp / "elsewhere")
    (d / "pytorch_model.bin").symlink_to(tmp / "elsewhere" / "pytorch_model.bin")
    return d


def _dir_as_file(tmp: Path) -> Path:
    d = _folder(tmp)
    (d / "model.safetensors").mkdir()
    return d


def _empty_folder(tmp: Path) -> Path:
    d = tmp / "m"
    d.mkdir()
    return d


def _index_not_json(tmp: Path) -> Path:
    d = _folder(tmp)
    save_bin({"a": torch.ones(2), "b": torch.ones(2)}, d, shards=2)
    (d / "pytorch_model.bin.index.json").write_text("{broken")
    return d


rng = random.Random(7)
CHECKPOINT: dict[str, Maker] = {
    **{f"zip truncated at {f:.0%}": _bin(_cut(f)) for f in
       (0.1, 0.5, 0.9, round(rng.uniform(0.2, 0.8), 3))},
    "zip truncated by 1 byte": _bin(lambda b: b[:-1]),
    "zip central directory destroyed": _bin(lambda b: b[:-22] + b"\0" * 22),
    "zip without data.pkl": _bin(_rezip(drop="data.pkl")),
    "pickle names a missing storage": _bin(_rezip(drop="data/0")),
    "storage shorter than its tensor": _bin(_rezip(shorten="data/0")),
    "legacy truncated in the storages": _bin(_cut(0.8), legacy=True),
    "legacy truncated in the pickle": _bin(_cut(0.05), legacy=True),
    "empty weight file": _bin(lambda b: b""),
    "text instead of a pickle": _bin(lambda b: b"hello, I am not a checkpoint\n" * 3),
    "index names a missing shard": _index("missing.bin"),
    "index names ../outside": _index("../outside.bin"),
    "index names an absolute path": _index("/etc/passwd"),
    "index names a symlink leaving the folder": _index("link.bin"),
    "index is not JSON": _index_not_json,
    "weights symlinked outside the folder": _symlinked_weights,
    "directory where the weights belong": _dir_as_file,
    "empty folder": _empty_folder,
}
SAFETENSORS: dict[str, Maker] = {
    "header is invalid JSON": _st(b'{"a": {"dtype": "F32",'),
    "length prefix beyond the file": _st(raw=struct.pack("<Q", 10**6) + b"{}"),
    "header over the 100 MB limit": _st(raw=struct.pack("<Q", 2**40) + b"{}"),
    "overlapping data offsets": _st(json.dumps({**_tensor("a", offs=[0, 8]),
                                                **_tensor("b", offs=[4, 12])}).encode(),
                                    data=bytes(12)),
    "offsets beyond the data": _st(json.dumps(_tensor("a", offs=[0, 8])).encode(), data=bytes(4)),
    "unknown dtype": _st(json.dumps(_tensor("a", dtype="Q7")).encode(), data=bytes(8)),
    "duplicate tensor names": _st(b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
                                  b'"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}',
                                  data=b"x"),
    "non-UTF-8 tensor name": _st(b'{"\xff\xfe":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}',
                                 data=b"x"),
    "nesting bomb header": _st(b"[" * 200_000),
    "empty safetensors file": _st(raw=b""),
    "file shorter than the length prefix": _st(raw=b"\x05\x00"),
    "offsets disagree with the shape": _st(json.dumps(_tensor("a", shape=[3])).encode(),
                                           data=bytes(8)),
    "metadata that is not strings": _st(json.dumps({"__metadata__": {"format": 1},
                                                    **_tensor("a")}).encode(), data=bytes(8)),
}


def _tok(files: dict[str, bytes | str]) -> Maker:
    def make(tmp: Path) -> Path:
        d = _folder(tmp)
        for name, body in files.items():
            (d / name).write_bytes(body if isinstance(body, bytes) else body.encode())
        return d
    return make


TOKENIZER: dict[str, Maker] = {
    "corrupt tokenizer.model": _tok({"tokenizer.model": os.urandom(300)}),
    "vocab.json is not JSON": _tok({"vocab.json": "{nope", "merges.txt": "#version\na b\n"}),
    "merges.txt line is malformed": _tok({"vocab.json": '{"a": 0, "b": 1, "ab": 2}',
                                          "merges.txt": "#version\na b c d\n"}),
    "vocab.txt lists a token twice": _tok({"vocab.txt": "[UNK]\n[CLS]\n[SEP]\na\na\n"}),
    "tokenizer_config.json is not JSON": _tok({"vocab.txt": "[UNK]\n[CLS]\n[SEP]\na\n",
                                               "tokenizer_config.json": "{"}),
    "no tokenizer files": _tok({}),
    "tekken.json is not a tekken file": _tok({"tekken.json": '{"config": {}, "vocab": []}'}),
    "tiktoken ranks with a gap": _tok({"tokenizer.model": "QQ== 0\nQg== 5\n",
                                       "tokenizer_config.json": '{"tokenizer_class": '
                                       '"Llama31Tokenizer"}'}),
    "tokenizer_class no class can express": _tok({"vocab.txt": "[UNK]\n[CLS]\n[SEP]\na\n",
                                                 "tokenizer_config.json": '{"tokenizer_class":'
                                                 ' "FancyTokenizer"}'}),
    "a class whose file is missing": _tok({
        "tokenizer_config.json": '{"tokenizer_class": "XLMRobertaTokenizer"}'}),
}


def _bundle(mutate: Callable[[Path], None]) -> Maker:
    def make(tmp: Path) -> Path:
        d = tmp / "src"
        d.mkdir()
        save_file({"w": torch.ones(4)}, d / "model.safetensors", metadata={"format": "pt"})
        (d / "config.json").write_text(CFG)
        (d / "tokenizer.json").write_text("{}")
        modelport.package(d, tmp / "m", ["watsonx-saas"])
        mutate(tmp / "m")
        return tmp / "m"
    return make


def _edit_manifest(fn: Callable[[dict], None]) -> Callable[[Path], None]:
    def mutate(b: Path) -> None:
        p = b / "modelport.manifest.json"
        m = json.loads(p.read_text())
        fn(m)
        p.write_text(json.dumps(m))
    return mutate


BUNDLE: dict[str, Maker] = {
    "manifest missing": _bundle(lambda b: (b / "modelport.manifest.json").unlink()),
    "manifest is not JSON": _bundle(lambda b: (b / "modelport.manifest.json").write_text("[")),
    "manifest path leaves the bundle": _bundle(_edit_manifest(
        lambda m: m["files"][0].update(path="../x"))),
    "manifest digest is not hex": _bundle(_edit_manifest(
        lambda m: m["files"][0].update(sha256="zz"))),
    "bundle file missing": _bundle(lambda b: (b / "config.json").unlink()),
}

CASES = ([(k, v, ("convert", "inspect", "check", "quantize")) for k, v in CHECKPOINT.items()]
         + [(k, v, ("convert", "inspect", "check", "normalize", "quantize"))
            for k, v in SAFETENSORS.items()]
         + [(k, v, ("tokenizer",)) for k, v in TOKENIZER.items()]
         + [(k, v, ("verify", "upload")) for k, v in BUNDLE.items()])
PARAMS = [pytest.param(maker, verb, id=f"{name} -> {verb}") for name, maker, verbs in CASES
          for verb in verbs]


def _cli(verb: str, d: Path, tmp: Path) -> list[str]:
    out = str(tmp / "out")
    return {"convert": ["convert", str(d), out], "inspect": ["inspect", str(d)],
            "check": ["check", str(d)], "normalize": ["normalize", str(d), "--out", out],
            "tokenizer": ["tokenizer", str(d), "--out", out], "verify": ["verify", str(d)],
            "quantize": ["quantize", str(d), "--out", out],
            "upload": ["upload", str(d), f"file://{tmp / 'store'}"]}[verb]


def _library(verb: str, d: Path, tmp: Path) -> None:
    out = tmp / "out"
    if verb == "inspect":
        assert not modelport.inspect(d).ok
    elif verb == "check":
        assert not modelport.check(d).ok
    elif verb == "verify":
        try:
            assert not modelport.verify(d).ok
        except ModelportError:
            pass
    else:
        with pytest.raises(ModelportError):
            {"convert": lambda: modelport.convert(d, out, progress=False),
             "normalize": lambda: modelport.normalize(d, out),
             "tokenizer": lambda: modelport.tokenizer(d, out),
             "quantize": lambda: modelport.quantize(d, out, progress=False),
             "upload": lambda: modelport.upload(d, f"file://{tmp / 'store'}", progress=False),
             }[verb]()


@pytest.mark.hostile_class("broken files x verbs")
@pytest.mark.parametrize(("maker", "verb"), PARAMS)
def test_broken_input(tmp_path: Path, maker: Maker, verb: str) -> None:
    d = maker(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    _library(verb, d, tmp_path)
    r = CliRunner().invoke(cli, _cli(verb, d, tmp_path))
    assert r.exit_code not in (0, 70), r.output  # refused, and not as an internal error
    assert "Traceback" not in r.output + r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2, r.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "store").exists()
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written, nothing lost

