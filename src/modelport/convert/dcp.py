"""PyTorch distributed checkpoints (``torch.distributed.checkpoint``): a folder with
``.metadata`` and ``__R_K.distcp`` files, as FSDP/FSDP2, torchtitan, torchtune and the HF
Trainer (``pytorch_model_fsdp_0/``) write them.

``.metadata`` is a pickle of torch's ``Metadata`` dataclasses; it is read through the
allow-list (the classes become inert records, nothing is imported). Each tensor is a list of
chunks (offsets and sizes in the full tensor, rows or columns, an uneven last one); each chunk
is a ``torch.save`` blob at a byte range of a ``.distcp`` file, read through the same
allow-listed unpickler. A tensor is reassembled from its chunks only when it is written, one
at a time. Non-tensor entries (step counters, scheduler state) and every tensor outside the
model (optimizer state) are listed as left out. Anchor:
``torch.distributed.checkpoint.format_utils.dcp_to_torch_save`` (loads everything, then one
pickle).
"""

from __future__ import annotations

import io
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelport.convert.feeds import tensor_bytes
from modelport.convert.opened import items
from modelport.convert.pickle_safe import DtypeMarker, Record, TensorRef, _unpickle
from modelport.convert.torch_files import _storage_from_pid
from modelport.errors import CheckpointError

METADATA = ".metadata"
_DCP = "torch.distributed.checkpoint"
ALLOWED = frozenset({
    f"{_DCP}.metadata.Metadata", f"{_DCP}.metadata.TensorStorageMetadata",
    f"{_DCP}.metadata.TensorProperties", f"{_DCP}.metadata.ChunkStorageMetadata",
    f"{_DCP}.metadata.BytesStorageMetadata", f"{_DCP}.metadata.MetadataIndex",
    f"{_DCP}.metadata.StorageMeta", f"{_DCP}.metadata._MEM_FORMAT_ENCODING",
    f"{_DCP}.filesystem._StorageInfo", "torch.serialization._get_layout",
})


def is_dcp(folder: Path) -> bool:
    return (folder / METADATA).is_file() and any(folder.glob("*.distcp"))


def _fields(r: Any) -> dict[str, Any]:
    """A dataclass record's fields (its pickled ``__dict__``, or slots state)."""
    if not isinstance(r, Record):
        return {}
    st = r.state
    if isinstance(st, tuple) and len(st) == 2:  # (dict, slots)
        st = {**(st[0] or {}), **(st[1] or {})}
    return st if isinstance(st, dict) else {}


@dataclass
class Chunk:
    offsets: tuple[int, ...]
    sizes: tuple[int, ...]
    file: str
    offset: int
    length: int


@dataclass
class DcpTensor:
    fqn: str
    dtype: str
    shape: tuple[int, ...]
    chunks: list[Chunk] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        from modelport.convert.pickle_safe import element_size

        n = element_size(self.dtype)
        for d in self.shape:
            n *= d
        return n


def _dtype(props: Any, path: Path) -> str:
    f = _fields(props)
    cand = f.get("dtype")
    if cand is None and isinstance(getattr(props, "state", None), tuple):
        cand = next((x for x in props.state if isinstance(x, DtypeMarker)), None)
    if not isinstance(cand, DtypeMarker):
        raise CheckpointError("a tensor's dtype is not readable in .metadata", path=path)
    return cand.name


def read_metadata(folder: Path) -> tuple[list[DcpTensor], list[str]]:
    """The tensors (with their chunks) and the names of the non-tensor entries."""
    path = folder / METADATA
    with path.open("rb") as f:
        md = _unpickle(f, path, ALLOWED, _no_persistent)  # type: ignore[arg-type]
    top = _fields(md)
    sdm, storage = top.get("state_dict_metadata"), top.get("storage_data")
    if not isinstance(sdm, dict) or not isinstance(storage, dict):
        raise CheckpointError("not a torch.distributed.checkpoint .metadata file", path=path)
    where: dict[tuple[str, tuple[int, ...]], Any] = {}
    for k, v in storage.items():
        kf = _fields(k)
        where[(str(kf.get("fqn")), tuple(kf.get("offset") or ()))] = _fields(v)
    tensors: list[DcpTensor] = []
    other: list[str] = []
    for fqn, meta in sdm.items():
        g = getattr(meta, "global_name", "")
        if not g.endswith("TensorStorageMetadata"):
            other.append(str(fqn))
            continue
        mf = _fields(meta)
        t = DcpTensor(str(fqn), _dtype(mf.get("properties"), path), tuple(mf.get("size") or ()))
        for c in mf.get("chunks") or []:
            cf = _fields(c)
            offs, sizes = tuple(cf.get("offsets") or ()), tuple(cf.get("sizes") or ())
            info = where.get((t.fqn, offs))
            if info is None:
                raise CheckpointError(f"{t.fqn}: the chunk at {offs} has no storage entry",
                                      path=path, hint="the checkpoint is incomplete")
            t.chunks.append(Chunk(offs, sizes, str(info.get("relative_path")),
                                  int(info.get("offset", 0)), int(info.get("length", 0))))
        _check_cover(t, path)
        tensors.append(t)
    return tensors, other


def _check_cover(t: DcpTensor, path: Path) -> None:
    """The chunks tile the tensor: inside it, and their element counts add up."""
    total = 1
    for d in t.shape:
        total *= d
    got = 0
    for c in t.chunks:
        if len(c.offsets) != len(t.shape) or any(o + s > d for o, s, d in
                                                  zip(c.offsets, c.sizes, t.shape, strict=True)):
            raise CheckpointError(f"{t.fqn}: a chunk lies outside the tensor", path=path)
        n = 1
        for s in c.sizes:
            n *= s
        got += n
    if got != total:
        raise CheckpointError(f"{t.fqn}: its chunks hold {got} of {total} elements", path=path,
                              hint="a rank's shard is missing from the checkpoint")


def _no_persistent(pid: Any) -> Any:
    raise CheckpointError("unexpected persistent id in .metadata")


class _Window(io.RawIOBase):
    """A byte range of a file, seekable, as zipfile reads it."""

    def __init__(self, f: Any, start: int, length: int) -> None:
        self._f, self._start, self._len, self._pos = f, start, length, 0

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        self._pos = {0: pos, 1: self._pos + pos, 2: self._len + pos}[whence]
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, n: int = -1) -> bytes:
        n = self._len - self._pos if n is None or n < 0 else min(n, self._len - self._pos)
        self._f.seek(self._start + self._pos)
        data = self._f.read(max(0, n))
        self._pos += len(data)
        return bytes(data)

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


def _blob(folder: Path, c: Chunk, f: Any) -> tuple[Any, zipfile.ZipFile, str, Path]:
    """A chunk's ``torch.save`` blob in the open file ``f``: its tensor record (through the
    allow-list), the zip, the zip's root folder, the file's path."""
    path = folder / c.file
    if f.seek(0, 2) < c.offset + c.length:
        raise CheckpointError(f"{c.file} ends before a chunk it should hold", path=path,
                              hint="the file is truncated")
    try:
        z = zipfile.ZipFile(_Window(f, c.offset, c.length))
        pkl = next(n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl")

        def persistent(pid: Any) -> Any:
            return _storage_from_pid(pid, path)

        ref = _unpickle(io.BytesIO(z.read(pkl)), path, frozenset(), persistent)  # type: ignore[arg-type]
    except (zipfile.BadZipFile, StopIteration, KeyError, OSError) as e:
        raise CheckpointError(f"a chunk of {c.file} is not a torch.save blob "
                              f"({type(e).__name__})", path=path) from e
    if not isinstance(ref, TensorRef):
        raise CheckpointError("a chunk holds no tensor", path=path)
    if tuple(ref.shape) != c.sizes:
        raise CheckpointError(f"a chunk of {c.file} is {tuple(ref.shape)}, the metadata says "
                              f"{c.sizes}", path=path)
    return ref, z, pkl[: -len("data.pkl")], path


def _open_chunk_file(folder: Path, c: Chunk) -> Any:
    path = folder / c.file
    if not path.is_file():
        raise CheckpointError(f"{c.file} is missing", path=folder,
                              hint="copy every __R_K.distcp file of the checkpoint")
    return path.open("rb")


def read_chunk(folder: Path, c: Chunk, dtype: str) -> Any:
    """One chunk as a torch tensor: its ``torch.save`` blob, through the allow-list."""
    import torch

    with _open_chunk_file(folder, c) as f:
        ref, z, root, path = _blob(folder, c, f)
        try:
            buf = z.read(f"{root}data/{ref.storage.key}")
        except (zipfile.BadZipFile, KeyError, OSError) as e:
            raise CheckpointError(f"a chunk of {c.file} is not a torch.save blob "
                                  f"({type(e).__name__})", path=path) from e
    torch_dtype = getattr(torch, ref.dtype)
    if not buf:
        flat = torch.empty(0, dtype=torch_dtype)
    else:
        import warnings

        with warnings.catch_warnings():  # read-only bytes: the chunk is copied into place
            warnings.simplefilter("ignore", UserWarning)
            flat = torch.frombuffer(buf, dtype=torch_dtype)
    return flat.as_strided(ref.shape, ref.stride, ref.offset)


def _c_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    out, n = [], 1
    for d in reversed(shape):
        out.append(n)
        n *= d
    return tuple(reversed(out))


def chunk_span(folder: Path, c: Chunk, dtype: str) -> tuple[int, int] | None:
    """(offset, length) of a chunk's bytes in its ``.distcp`` file when they lie there in C
    order, stored uncompressed, in the tensor's dtype; None otherwise (then it is read)."""
    from modelport.convert.pickle_safe import element_size

    with _open_chunk_file(folder, c) as f:
        ref, z, root, _ = _blob(folder, c, f)
        try:
            info = z.getinfo(f"{root}data/{ref.storage.key}")
        except KeyError:
            return None
        f.seek(c.offset + info.header_offset)
        local = f.read(30)
    if info.compress_type != zipfile.ZIP_STORED or local[:4] != b"PK\x03\x04" or \
            ref.dtype != dtype or (ref.numel > 1 and tuple(ref.stride) != _c_strides(ref.shape)):
        return None
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    esize = element_size(dtype)
    begin, length = ref.offset * esize, ref.numel * esize
    if begin + length > info.file_size:
        return None
    return c.offset + info.header_offset + 30 + name_len + extra_len + begin, length


def spans(folder: Path, t: DcpTensor) -> list[tuple[Path, int, int]] | None:
    """The file ranges whose concatenation is ``t``'s bytes, when its chunks split it on the
    first dimension only (as FSDP does) and each lies in C order; None when a chunk splits
    a row (a tensor-parallel column split): then :func:`assemble` computes it."""
    if not t.shape:
        return None
    out, at = [], 0
    for c in sorted(t.chunks, key=lambda c: c.offsets[0]):
        if c.offsets[0] != at or any(o for o in c.offsets[1:]) or \
                tuple(c.sizes[1:]) != tuple(t.shape[1:]):
            return None
        if c.sizes[0] == 0:
            continue
        span = chunk_span(folder, c, t.dtype)
        if span is None:
            return None
        out.append((folder / c.file, *span))
        at += c.sizes[0]
    return out if at == t.shape[0] else None


def assemble(folder: Path, t: DcpTensor, out: Any) -> None:
    """``t`` from its chunks into ``out`` (the writer's buffer: a numpy array of its shape,
    items unsigned integers of its element size), each chunk copied into place straight from
    a map of its file where it is stored plainly, else read from its blob."""
    import mmap

    import numpy as np

    for c in t.chunks:
        where = tuple(slice(o, o + s) for o, s in zip(c.offsets, c.sizes, strict=True))
        span = chunk_span(folder, c, t.dtype)
        if span is None or span[1] == 0:  # read from its blob, in the tensor's dtype
            import torch

            part = read_chunk(folder, c, t.dtype).to(getattr(torch, t.dtype))
            out[where] = items(tensor_bytes(part), t.dtype, tuple(c.sizes))
            continue
        with (folder / c.file).open("rb") as f:
            m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        part = np.frombuffer(m, dtype=out.dtype, count=span[1] // out.itemsize,
                             offset=span[0]).reshape(c.sizes)
        out[where] = part
        del part
        try:
            m.close()  # its pages leave the process with it
        except BufferError:  # a view is still referenced; the GC unmaps it
            pass


__all__ = ["DcpTensor", "assemble", "is_dcp", "read_metadata", "spans"]
