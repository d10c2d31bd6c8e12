"""Torch checkpoint files, zip and legacy, opened through the safe unpickler.

Finds where each storage's bytes lie (zip member offset, or offset in a legacy file) without
reading them; :mod:`modelport.convert.sources` maps them lazily.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelport.convert.pickle_safe import (
    _ELEM_SIZE,
    StorageRef,
    StorageType,
    _unpickle,
)
from modelport.errors import CheckpointError, UnsafeCheckpointError, UnsupportedError

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
MAX_PICKLE_BYTES = 512 * 2**20  # the pickle of a state dict is ~100 bytes a tensor
_LEGACY_PROTOCOL = 1001
# what zipfile raises on damaged archives (it is not consistent about it)
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError,
               NotImplementedError, zlib.error, struct.error, KeyError, IndexError)


@dataclass
class PickleCheckpoint:
    """A pickled torch checkpoint, unpickled safely; tensors are :class:`TensorRef`."""

    path: Path
    kind: str  # "zip" or "legacy"
    obj: Any
    # storage key -> (byte offset in the file, available bytes), or member bytes if compressed
    storage_offsets: dict[str, tuple[int, int]]
    storage_inline: dict[str, bytes]
    byteorder: str = "little"


def _storage_from_pid(pid: Any, path: Path) -> StorageRef:
    if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
        if isinstance(pid, tuple) and pid and pid[0] == "module":
            raise UnsafeCheckpointError(["<pickled nn.Module source code>"], path=path)
        raise CheckpointError(f"unexpected persistent id {str(pid)[:80]!r}", path=path)
    _, stype, key, location, numel = pid[:5]
    if not isinstance(stype, StorageType):
        raise CheckpointError(f"storage of unknown type {stype!r}", path=path)
    if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
        raise CheckpointError("malformed storage record", path=path)
    view_offset = 0
    if len(pid) > 5 and pid[5] is not None:  # legacy view: (view_key, offset, view_size)
        view = pid[5]
        if not (isinstance(view, tuple) and len(view) == 3 and isinstance(view[1], int)):
            raise CheckpointError("malformed legacy storage view", path=path)
        view_offset = view[1]
    return StorageRef(key, stype.dtype, numel, str(location), view_offset)


def _load_zip(path: Path, extra: frozenset[str], opener: Any = None) -> PickleCheckpoint:
    """``opener()``, when given, returns a binary file object to read instead of ``path``
    (remote sources read through it)."""
    try:
        zf = zipfile.ZipFile(opener() if opener else path)
        infos = zf.infolist()
    except _ZIP_ERRORS as e:
        raise CheckpointError(
            f"corrupt zip checkpoint ({e})", path=path,
            hint="the file is truncated or damaged; re-export or re-download it",
        ) from e
    with zf:
        pkls = [i for i in infos if i.filename.count("/") == 1 and i.filename.endswith("/data.pkl")]
        if len(pkls) != 1:
            raise CheckpointError(
                "zip file is not a torch checkpoint (no single <name>/data.pkl)", path=path
            )
        prefix = pkls[0].filename[: -len("data.pkl")]
        members = {i.filename: i for i in infos}
        byteorder = "little"
        if prefix + "byteorder" in members:
            try:
                byteorder = zf.read(prefix + "byteorder").decode("ascii", "replace").strip()
            except _ZIP_ERRORS as e:
                raise CheckpointError(f"corrupt zip member byteorder ({e})", path=path,
                                      hint="the file is damaged; re-export or re-download it"
                                      ) from e
        if byteorder != "little":
            raise UnsupportedError(f"big-endian checkpoint (byteorder {byteorder!r})", path=path)
        storages: dict[str, StorageRef] = {}

        def persistent(pid: Any) -> StorageRef:
            ref = _storage_from_pid(pid, path)
            storages.setdefault(ref.key, ref)
            return ref

        if pkls[0].file_size > MAX_PICKLE_BYTES:
            raise CheckpointError(
                f"data.pkl declares {pkls[0].file_size} bytes (limit {MAX_PICKLE_BYTES}); a "
                "state dict's pickle is a few MB", path=path,
                hint="the file is damaged or hostile (zip bomb)")
        try:
            with zf.open(pkls[0]) as f:
                data = f.read(MAX_PICKLE_BYTES + 1)
        except _ZIP_ERRORS as e:
            raise CheckpointError(f"cannot read data.pkl ({e})", path=path) from e
        obj = _unpickle(io.BytesIO(data), path, extra, persistent, member=pkls[0].filename)
        offsets: dict[str, tuple[int, int]] = {}
        inline: dict[str, bytes] = {}
        with (opener() if opener else open(path, "rb")) as raw:
            size = raw.seek(0, 2)
            for key, ref in storages.items():
                info = members.get(f"{prefix}data/{key}")
                if info is None:
                    raise CheckpointError(
                        f"storage {key!r} is named by the pickle but missing from the zip",
                        path=path, hint="the checkpoint is incomplete; re-export it",
                    )
                need = ref.numel * (1 if ref.dtype is None else _ELEM_SIZE[ref.dtype])
                if info.file_size < need:
                    raise CheckpointError(
                        f"storage {key!r} holds {info.file_size} bytes, its tensors need {need}",
                        path=path, hint="the checkpoint is truncated; re-export it",
                    )
                if info.compress_type != zipfile.ZIP_STORED:
                    if info.file_size > 64 * max(info.compress_size, 2**20):
                        raise CheckpointError(
                            f"storage {key!r} would inflate {info.compress_size} bytes to "
                            f"{info.file_size}", path=path, hint="the file looks like a zip bomb")
                    try:
                        inline[key] = zf.read(info)
                    except _ZIP_ERRORS as e:
                        raise CheckpointError(f"cannot read storage {key!r} ({e})",
                                              path=path) from e
                    continue
                raw.seek(info.header_offset)
                local = raw.read(30)
                if len(local) < 30 or local[:4] != b"PK\x03\x04":
                    raise CheckpointError(f"bad zip local header for storage {key!r}", path=path)
                n, m = struct.unpack("<HH", local[26:30])
                start = info.header_offset + 30 + n + m
                if start + info.file_size > size:
                    raise CheckpointError(
                        f"storage {key!r} runs past the end of the file", path=path,
                        hint="the checkpoint is truncated; re-export or re-download it",
                    )
                offsets[key] = (start, info.file_size)
    return PickleCheckpoint(path, "zip", obj, offsets, inline, byteorder)


def _load_legacy(path: Path, extra: frozenset[str]) -> PickleCheckpoint:
    storages: dict[str, StorageRef] = {}

    def persistent(pid: Any) -> StorageRef:
        ref = _storage_from_pid(pid, path)
        root = storages.setdefault(ref.key, ref)
        if root.dtype != ref.dtype:
            raise CheckpointError(f"storage {ref.key!r} used with two dtypes", path=path)
        return ref

    def no_persistent(pid: Any) -> Any:
        raise CheckpointError("unexpected persistent id in legacy header", path=path)

    with open(path, "rb") as f:
        size = f.seek(0, 2)
        f.seek(0)
        magic = _unpickle(f, path, extra, no_persistent)  # type: ignore[arg-type]
        if magic != _LEGACY_MAGIC:
            raise CheckpointError("not a torch checkpoint (pickle without torch's magic number)",
                                  path=path, hint="only torch.save files can be converted")
        version = _unpickle(f, path, extra, no_persistent)  # type: ignore[arg-type]
        if version != _LEGACY_PROTOCOL:
            raise UnsupportedError(f"legacy checkpoint protocol {version!r}", path=path)
        sys_info = _unpickle(f, path, extra, no_persistent)  # type: ignore[arg-type]
        if isinstance(sys_info, dict) and sys_info.get("little_endian") is False:
            raise UnsupportedError("big-endian legacy checkpoint", path=path)
        obj = _unpickle(f, path, extra, persistent)  # type: ignore[arg-type]
        keys = _unpickle(f, path, extra, no_persistent)  # type: ignore[arg-type]
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise CheckpointError("malformed storage key list", path=path)
        offsets: dict[str, tuple[int, int]] = {}
        for key in keys:
            head = f.read(8)
            if len(head) < 8:
                raise CheckpointError(f"file ends before storage {key!r}", path=path,
                                      hint="the checkpoint is truncated; re-export it")
            (numel,) = struct.unpack("<q", head)
            ref = storages.get(key)
            if ref is None:
                raise CheckpointError(f"storage {key!r} is stored but named by no tensor",
                                      path=path, hint="the checkpoint is corrupt; re-export it")
            esize = _ELEM_SIZE[ref.dtype] if ref.dtype else 1
            start = f.tell()
            if numel < 0 or start + numel * esize > size:
                raise CheckpointError(f"storage {key!r} runs past the end of the file",
                                      path=path, hint="the checkpoint is truncated; re-export it")
            offsets[key] = (start, numel * esize)
            f.seek(numel * esize, 1)
    for key, ref in storages.items():
        if key not in offsets:
            raise CheckpointError(f"storage {key!r} is named by the pickle but not stored",
                                  path=path)
        need = ref.numel * (_ELEM_SIZE[ref.dtype] if ref.dtype else 1)
        if offsets[key][1] < need:
            raise CheckpointError(f"storage {key!r} is shorter than its tensors need", path=path)
    return PickleCheckpoint(path, "legacy", obj, offsets, {})


def load_pickle_checkpoint(
    path: str | Path, allow_globals: Iterable[str] = ()
) -> PickleCheckpoint:
    """Unpickle a torch checkpoint (zip or legacy) without executing anything.

    Args:
        path: the ``.bin``/``.pt``/``.pth``/``.ckpt`` file.
        allow_globals: extra ``module.name`` globals to rebuild as inert :class:`Record` objects.

    Raises:
        UnsafeCheckpointError: the pickle names globals outside the allow-list (all are listed).
        CheckpointError: the file is corrupt, truncated or not a torch checkpoint.
    """
    path = Path(path)
    extra = frozenset(allow_globals)
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except IsADirectoryError as e:
        raise CheckpointError("is a directory, expected a checkpoint file", path=path) from e
    except OSError as e:
        raise CheckpointError(f"cannot read: {e.strerror}", path=path) from e
    if head[:2] == b"PK":
        return _load_zip(path, extra)
    if not head:
        raise CheckpointError("empty file", path=path, hint="re-export or re-download it")
    if path.suffix == ".tar" or head.startswith(b"\x1f\x8b"):
        raise UnsupportedError("tar/gzip checkpoints (torch < 0.4) are not supported", path=path)
    # anything else is read as a legacy (non-zip) torch.save stream; a pickle of any protocol
    # goes through the same allow-list, so hostile globals are named, never run
    return _load_legacy(path, extra)
