"""What a source holds: which weight files, in which format, and every tensor in them.

Nothing here reads tensor data; :class:`Reader` maps it lazily (mmap) when asked.
"""

from __future__ import annotations

import mmap
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelport._io import jsonio
from modelport._io.pages import drop_pages
from modelport._io.paths import inside, walk_files
from modelport._io.st_header import ST_DTYPES, ST_INDEX, SafetensorsHeader, read_header
from modelport.convert.pickle_safe import TensorRef, element_size
from modelport.convert.side_files import PICKLE_SUFFIXES, other_files
from modelport.convert.state_dict import Skipped, select_state_dict
from modelport.convert.torch_files import PickleCheckpoint, load_pickle_checkpoint
from modelport.errors import CheckpointError, InputError

PT_INDEX = "pytorch_model.bin.index.json"
_PT_SHARD = re.compile(r"^pytorch_model(-\d+-of-\d+)?\.bin$")
_ST_TO_TORCH = {k: v[1] for k, v in ST_DTYPES.items()}


@dataclass(frozen=True)
class SourceTensor:
    """One tensor to convert, located in its source file; no data loaded."""

    name: str
    dtype: str  # torch dtype name
    shape: tuple[int, ...]
    file_index: int
    storage_key: str
    byte_offset: int  # into the storage buffer
    stride: tuple[int, ...] | None  # None: contiguous
    nbytes: int

    @classmethod
    def from_ref(cls, name: str, ref: TensorRef, file_index: int) -> SourceTensor:
        """A pickled tensor: byte offset into its storage, stride kept only when needed."""
        stride = None if ref.is_contiguous() else ref.stride
        return cls(name, ref.dtype, ref.shape, file_index, ref.storage.key,
                   ref.offset * element_size(ref.dtype), stride, ref.nbytes)

    @property
    def identity(self) -> tuple[Any, ...]:
        """Equal for exact aliases: same storage, offset, shape, stride and dtype."""
        return (self.file_index, self.storage_key, self.byte_offset, self.shape, self.stride,
                self.dtype)

    def byte_span(self) -> tuple[int, int]:
        """Bytes of the storage this tensor may touch: [begin, end)."""
        if self.stride is None or self.nbytes == 0:
            return self.byte_offset, self.byte_offset + self.nbytes
        esize = element_size(self.dtype)
        extent = 1 + sum((s - 1) * st for s, st in zip(self.shape, self.stride, strict=True))
        return self.byte_offset, self.byte_offset + extent * esize


@dataclass
class SourceFile:
    path: Path
    format: str  # "zip", "legacy" or "safetensors"
    pickle: PickleCheckpoint | None = None
    header: SafetensorsHeader | None = None


@dataclass
class SourceSet:
    """Everything convert reads from SRC."""

    src: Path
    root: Path | None  # the folder, or None for a single file
    files: list[SourceFile]
    tensors: list[SourceTensor]
    index_path: Path | None
    copy_files: list[str]  # relative paths to copy unchanged
    skipped_files: list[Skipped] = field(default_factory=list)
    skipped_entries: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    state_dict_key: str | None = None



def sniff_format(path: Path) -> str:
    """'safetensors', 'zip', 'legacy' (a pickle stream) or 'unknown', from the first bytes."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return "unknown"
    if head[:2] == b"PK":
        return "zip"
    if len(head) == 9 and head[8:9] == b"{":
        return "safetensors"
    if head[:1] == b"\x80":
        return "legacy"
    return "unknown"


def _read_index(root: Path, name: str) -> tuple[dict[str, str], list[str]]:
    path = root / name
    try:
        obj = jsonio.load(path)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"index is not valid JSON ({e})", path=path,
                              hint="fix or delete the index file") from e
    wm = obj.get("weight_map") if isinstance(obj, dict) else None
    if not isinstance(wm, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in wm.items()
    ):
        raise CheckpointError("index has no weight_map of names to files", path=path,
                              hint="fix or delete the index file")
    files: list[str] = []
    for fname in wm.values():
        if fname not in files:
            inside(root, fname, what="index entry", source=path)
            if not (root / fname).is_file():
                raise CheckpointError(
                    f"shard {fname!r} named in the index is missing", path=path,
                    hint="download the missing shard, or fix the index",
                )
            files.append(fname)
    return wm, files


def _pick_weights(root: Path, rels: list[str]) -> tuple[list[str], str | None, list[Skipped]]:
    """Choose the weight files of a folder: safetensors first, then pickles."""
    top = [r for r in rels if "/" not in r]
    skipped: list[Skipped] = []
    st = sorted(r for r in top if r.endswith(".safetensors"))
    pickles = sorted(r for r in top if Path(r).suffix in PICKLE_SUFFIXES)
    if ST_INDEX in top or st:
        if ST_INDEX in top:
            _, files = _read_index(root, ST_INDEX)
            index: str | None = ST_INDEX
        else:
            files, index = st, None
        skipped += [Skipped(p, "pickle not read: the folder has safetensors weights")
                    for p in pickles]
        skipped += [Skipped(p, "safetensors file not named by the index")
                    for p in st if p not in files]
        return files, index, skipped
    if PT_INDEX in top:
        _, files = _read_index(root, PT_INDEX)
        rest = [p for p in pickles if p not in files]
        return files, PT_INDEX, [Skipped(p, "pickle not converted (not a weight shard)")
                                 for p in rest]
    shards = [p for p in pickles if _PT_SHARD.match(p)]
    if shards:
        if len(shards) > 1 and any("-of-" in s for s in shards):
            raise CheckpointError(
                f"{len(shards)} pytorch_model shards but no {PT_INDEX}", path=root,
                hint="restore the index file, or convert each shard file on its own",
            )
        return shards[:1], None, [Skipped(p, "pickle not converted (not a weight file)")
                                  for p in pickles if p not in shards[:1]]
    candidates = [p for p in pickles if not p.startswith(("training_args", "optimizer",
                                                          "scheduler", "rng_state"))]
    if len(candidates) == 1:
        return candidates, None, [Skipped(p, "pickle not converted (training state)")
                                  for p in pickles if p not in candidates]
    if len(candidates) > 1:
        raise InputError(
            f"the folder holds {len(candidates)} checkpoint files: {', '.join(candidates[:5])}",
            path=root, hint="pass the one to convert as SRC",
        )
    raise InputError("no weights found (no safetensors, pytorch_model*.bin, .pt, .pth or .ckpt)",
                     path=root, hint="point SRC at a model folder or a checkpoint file")


def _strip(name: str, prefix: str | None) -> str:
    return name[len(prefix):] if prefix and name.startswith(prefix) else name


def open_source(
    src: str | Path, *, state_dict_key: str | None = None, strip_prefix: str | None = None,
    allow_globals: tuple[str, ...] = (),
) -> SourceSet:
    """Find the weights in SRC (folder or file) and list their tensors, reading no data.

    Raises:
        InputError: SRC does not exist, holds no weights, or is ambiguous.
        CheckpointError / UnsafeCheckpointError: a weight file is broken or hostile.
    """
    src = Path(src)
    if not src.exists():
        raise InputError("does not exist", path=src, hint="check the path")
    if src.is_dir():
        root: Path | None = src
        for entry in sorted(src.iterdir()):
            if entry.is_dir() and (entry.suffix in PICKLE_SUFFIXES
                                   or entry.name.endswith((".safetensors", ".index.json"))):
                raise CheckpointError(
                    f"{entry.name!r} is a directory where a weight file belongs", path=src,
                    hint="replace it with the real file (a failed download or unpacked zip?)",
                )
        rels = walk_files(src)
        if not rels:
            raise InputError("the folder is empty", path=src,
                             hint="point SRC at a model folder or a checkpoint file")
        weight_rels, index_rel, skipped = _pick_weights(src, rels)
        paths = [inside(src, r, what="weight file", source=src) for r in weight_rels]
        index_path = src / index_rel if index_rel else None
        done = set(weight_rels) | {ST_INDEX, PT_INDEX} | {s.name for s in skipped}
        copy, left = other_files(rels, done)
        skipped += left
        for r in copy:
            inside(src, r, what="file", source=src)
    else:
        root, index_path, copy, skipped = None, None, [], []
        paths = [src]

    files: list[SourceFile] = []
    tensors: list[SourceTensor] = []
    entries: list[Skipped] = []
    warnings: list[str] = []
    seen: dict[str, str] = {}
    chosen_key: str | None = None
    for i, p in enumerate(paths):
        fmt = sniff_format(p)
        if fmt == "safetensors" or (p.suffix == ".safetensors"):
            header = read_header(p)
            files.append(SourceFile(p, "safetensors", header=header))
            for t in header.tensors.values():
                name = _strip(t.name, strip_prefix)
                tensors.append(SourceTensor(name, _ST_TO_TORCH[t.dtype], t.shape, i, t.name,
                                            0, None, t.nbytes))
        else:
            ck = load_pickle_checkpoint(p, allow_globals)
            files.append(SourceFile(p, ck.kind, pickle=ck))
            pairs, chosen_key, skip = select_state_dict(ck.obj, p, state_dict_key)
            entries += skip
            tensors += [SourceTensor.from_ref(_strip(raw_name, strip_prefix), ref, i)
                        for raw_name, ref in pairs]
        for t in tensors[len(seen):]:
            if t.name in seen:
                raise CheckpointError(
                    f"tensor {t.name!r} appears twice ({seen[t.name]} and {p.name})", path=p,
                    hint="the shards overlap; fix the checkpoint (or check --strip-prefix)",
                )
            seen[t.name] = p.name
    if index_path is not None:
        wm, _ = _read_index(index_path.parent, index_path.name)
        located = {t.name: paths[t.file_index].relative_to(src).as_posix() for t in tensors}
        missing = [n for n in wm if _strip(n, strip_prefix) not in located]
        if missing:
            raise CheckpointError(
                f"{len(missing)} tensor(s) named in the index are in no shard: "
                f"{', '.join(missing[:5])}", path=index_path,
                hint="a shard is incomplete or the index is stale; re-download the model",
            )
        wrong = [n for n, f in wm.items() if located.get(_strip(n, strip_prefix)) != f]
        unlisted = [n for n in located if n not in {_strip(k, strip_prefix) for k in wm}]
        if wrong:
            warnings.append(f"index places {len(wrong)} tensor(s) in the wrong shard "
                            f"(e.g. {wrong[0]}); the output index is rebuilt from the files")
        if unlisted:
            warnings.append(f"{len(unlisted)} tensor(s) are missing from the index "
                            f"(e.g. {unlisted[0]}); they are converted too")
    return SourceSet(src, root, files, tensors, index_path, copy, skipped, entries, warnings,
                     chosen_key)


class Reader:
    """Maps the source files lazily and hands out the bytes of a tensor's storage."""

    def __init__(self, files: list[SourceFile]) -> None:
        self._files = files
        self._maps: dict[int, mmap.mmap] = {}
        self._fds: dict[int, int] = {}

    def _map(self, i: int) -> mmap.mmap | None:
        if i not in self._maps:
            fd = self._fd(i)
            if os.fstat(fd).st_size == 0:
                return None
            self._maps[i] = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        return self._maps[i]

    def _fd(self, i: int) -> int:
        if i not in self._fds:
            self._fds[i] = os.open(self._files[i].path, os.O_RDONLY)
        return self._fds[i]

    def storage_start(self, t: SourceTensor) -> int | None:
        """Byte offset of the tensor's storage in its file, or None if not stored plainly."""
        sf = self._files[t.file_index]
        if sf.header is not None:
            return sf.header.data_start + sf.header.tensors[t.storage_key].begin
        assert sf.pickle is not None
        if t.storage_key in sf.pickle.storage_inline:
            return None
        return sf.pickle.storage_offsets[t.storage_key][0]

    def span(self, t: SourceTensor, start: int = 0, numel: int | None = None
             ) -> tuple[Path, int, int] | None:
        """(file, offset, length) of ``numel`` elements from element ``start`` of the
        contiguous tensor ``t`` as its file stores them, if it stores them plainly."""
        esize = element_size(t.dtype)
        n = t.nbytes // esize if numel is None else numel
        base = self.storage_start(t) if t.stride is None else None
        if base is None or start < 0 or (start + n) * esize > t.nbytes:
            return None
        return self._files[t.file_index].path, base + t.byte_offset + start * esize, n * esize

    def regions(self, t: SourceTensor) -> list[tuple[int, int, memoryview]] | None:
        """The writer's feed: the one file range holding ``t`` in C order, if there is one."""
        span = self.span(t) if t.nbytes else None
        return None if span is None else [(self._fd(t.file_index), span[1], self.tensor_bytes(t))]

    def storage(self, t: SourceTensor) -> memoryview:
        """The whole storage buffer ``t`` lives in (zero-copy where possible)."""
        sf = self._files[t.file_index]
        if sf.header is not None:
            e = sf.header.tensors[t.storage_key]
            m = self._map(t.file_index)
            if m is None:
                return memoryview(b"")
            return memoryview(m)[sf.header.data_start + e.begin: sf.header.data_start + e.end]
        assert sf.pickle is not None
        if t.storage_key in sf.pickle.storage_inline:
            return memoryview(sf.pickle.storage_inline[t.storage_key])
        start, length = sf.pickle.storage_offsets[t.storage_key]
        m = self._map(t.file_index)
        if m is None:
            return memoryview(b"")
        return memoryview(m)[start: start + length]

    def tensor_bytes(self, t: SourceTensor, out: Any = None) -> memoryview:
        """The tensor's bytes in C order: a view when contiguous, else one compact copy
        (``out``, the writer's reused buffer, is not needed)."""
        buf = self.storage(t)
        if t.nbytes == 0:
            return memoryview(b"")
        if t.stride is None:
            return buf[t.byte_offset: t.byte_offset + t.nbytes]
        import warnings

        import torch

        dtype = getattr(torch, t.dtype)
        esize = element_size(t.dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # read-only buffer: we never write
            flat = torch.frombuffer(buf, dtype=torch.uint8)
        view = flat.view(dtype).as_strided(t.shape, t.stride, t.byte_offset // esize)
        out = view.contiguous().reshape(-1).view(torch.uint8)
        return memoryview(out.numpy())

    def release(self, t: SourceTensor) -> None:
        """Unmap the pages of ``t``'s bytes from this process (they stay in the page cache and
        map back in if read again): a mapped source read once never stays resident, as YARN
        and ``top`` count memory. Safe at any time: the mapping is read-only and clean."""
        m = self._maps.get(t.file_index)
        start = self.storage_start(t)
        if m is not None and start is not None and t.nbytes:
            a, b = t.byte_span()
            drop_pages(m, start + a, b - a)

    def computed(self, t: SourceTensor) -> bool:
        """Never: every tensor's bytes are read again from the source file (the writer's feed
        protocol)."""
        return False

    def tensor(self, t: SourceTensor) -> Any:
        """The tensor as a read-only torch view of the mapped file (no copy where its bytes
        lie in C order), valid while the reader is open; ``.clone()`` to keep it."""
        import warnings

        import torch

        dtype = getattr(torch, t.dtype)
        buf = self.tensor_bytes(t)
        if not len(buf):
            return torch.empty(t.shape, dtype=dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # read-only: we never write to it
            return torch.frombuffer(buf, dtype=dtype).reshape(t.shape)

    def close(self) -> None:
        for m in self._maps.values():
            try:
                m.close()
            except BufferError:  # a view is still alive somewhere; the GC will unmap it
                pass
        self._maps.clear()
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
