"""Rewrite a safetensors header in place, crash-safe, without touching the data blocks.

Two paths, both journaled: the new header fits in the old one's space (padded with spaces),
or the file system inserts whole blocks at the front of the file (Linux ``fallocate`` with
``FALLOC_FL_INSERT_RANGE`` on ext4/xfs). Data offsets are relative to the end of the header,
so growing it by whole blocks moves no data. Before changing a file, the old header bytes
are saved in a journal beside it (fsynced); :func:`recover` rolls an interrupted change back
(or accepts it, if it completed), so a file is always the old or the new version once
``recover`` has run.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import struct
from pathlib import Path

from modelport._io import jsonio
from modelport._io.atomic import fsync_dir, write_bytes_atomic
from modelport._io.fileio import pwrite_all
from modelport._io.st_header import SafetensorsHeader, read_header
from modelport.errors import CheckpointError

FALLOC_FL_COLLAPSE_RANGE = 0x08
FALLOC_FL_INSERT_RANGE = 0x20
JOURNAL_SUFFIX = ".modelport-journal"

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]


def _fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    if _libc.fallocate(fd, mode, offset, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def journal_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{JOURNAL_SUFFIX}")


def _json(tensors_json: dict[str, object], metadata: dict[str, str]) -> bytes:
    obj: dict[str, object] = {"__metadata__": metadata}
    obj.update(tensors_json)
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def header_bytes(tensors_json: dict[str, object], metadata: dict[str, str], length: int) -> bytes:
    """Prefix + JSON padded with spaces to exactly ``length`` bytes of header."""
    raw = _json(tensors_json, metadata)
    if len(raw) > length:
        raise ValueError("header does not fit")
    return struct.pack("<Q", length) + raw + b" " * (length - len(raw))


def tensors_json(h: SafetensorsHeader) -> dict[str, object]:
    return {t.name: {"dtype": t.dtype, "shape": list(t.shape), "data_offsets": [t.begin, t.end]}
            for t in sorted(h.tensors.values(), key=lambda t: t.begin)}


def new_header_len(h: SafetensorsHeader, metadata: dict[str, str]) -> int:
    """Bytes of compact JSON the new header needs (unpadded)."""
    return len(_json(tensors_json(h), metadata))


def rewrite_header(path: Path, h: SafetensorsHeader, metadata: dict[str, str],
                   *, allow_insert: bool) -> str:
    """Give ``path`` a header with ``metadata``; returns the path taken.

    Returns ``"header-in-padding"`` or ``"header-insert-range"``.

    Raises:
        OSError: with errno EOPNOTSUPP when neither in-place path is possible here.
    """
    need = new_header_len(h, metadata)
    old_len = h.header_len
    inserted = 0
    if need > old_len:
        if not allow_insert:
            raise OSError(errno.EOPNOTSUPP, "header does not fit in its padding")
        block = os.statvfs(path.parent).f_bsize
        inserted = -(-(need - old_len) // block) * block
    new = header_bytes(tensors_json(h), metadata, old_len + inserted)
    with open(path, "rb") as f:
        old = f.read(8 + old_len)
    journal = journal_path(path)
    write_bytes_atomic(journal, json.dumps({
        "file": path.name, "old_size": h.file_size, "inserted": inserted,
        "old_header": old.hex(), "data_start": h.data_start,
    }).encode())
    fsync_dir(path.parent)
    fd = os.open(path, os.O_RDWR)
    try:
        if inserted:
            try:
                _fallocate(fd, FALLOC_FL_INSERT_RANGE, 0, inserted)
            except OSError:
                journal.unlink()
                raise
        pwrite_all(fd, new, 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    journal.unlink()
    fsync_dir(path.parent)
    return "header-insert-range" if inserted else "header-in-padding"


def recover(folder: Path) -> list[str]:
    """Finish or roll back header rewrites that a crash interrupted; returns what it did."""
    done: list[str] = []
    for journal in sorted(folder.glob(f".*{JOURNAL_SUFFIX}")):
        try:
            j = jsonio.load(journal)
            path = folder / j["file"]
            old = bytes.fromhex(j["old_header"])
            inserted, old_size = int(j["inserted"]), int(j["old_size"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"unreadable journal ({e})", path=journal,
                                  hint="remove it by hand after checking the file") from e
        if "/" in j["file"] or not path.is_file():
            journal.unlink()
            continue
        size = path.stat().st_size
        try:
            h = read_header(path)
            complete = (h.data_start == int(j["data_start"]) + inserted
                        and (h.metadata or {}).get("format") == "pt")
        except CheckpointError:
            complete = False
        if complete:
            done.append(f"{path.name}: interrupted header rewrite had completed")
        else:
            fd = os.open(path, os.O_RDWR)
            try:
                if inserted and size == old_size + inserted:
                    _fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0, inserted)
                elif size != old_size:
                    raise CheckpointError(
                        f"size {size} matches neither the old ({old_size}) nor the grown file",
                        path=path, hint="restore the file from its source")
                pwrite_all(fd, old, 0)
                os.fsync(fd)
            finally:
                os.close(fd)
            done.append(f"{path.name}: interrupted header rewrite rolled back")
        journal.unlink()
        fsync_dir(folder)
    return done
