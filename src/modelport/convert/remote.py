"""Model folders in object storage (``s3://bucket/prefix``, or any fsspec URL), read with
ranged GETs.

A :class:`RemoteMirror` makes a local folder that *looks* like the remote one to the readers
modelport already has: small files (config, index, tokenizer) are downloaded whole; each
weight file becomes a sparse file of its full size in which only the byte ranges the parsers
read are filled in — a safetensors header, or a zip's end record, central directory,
``data.pkl`` and the local header of each storage. Tensor bytes are fetched shard by shard
(:meth:`fetch_tensors`) just before a shard is written and released (:meth:`release`: punched out
of the sparse file) once it is written and verified, so local scratch space holds about one
shard of source bytes and nothing is fetched twice. :attr:`fetched` counts every byte read
from the store.

The registry decides what the mirrored folder is (:attr:`format`). A format whose tensors are
computed from whole files (DCP, ZeRO, Meta, GGUF, llama2.c, Megatron) cannot be read by the
ranges of its tensors: :meth:`fetch_whole` downloads its files to scratch first, and the
scratch space then holds the whole checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from modelport._io.fileio import pwrite_all
from modelport._io.ranges import merge, missing, punch, subtract
from modelport._io.redact import redact
from modelport._io.s3 import storage_error
from modelport.convert.sources import PICKLE_SUFFIXES, SourceSet, SourceTensor
from modelport.errors import InputError, ModelportError, OutputWriteError, StorageError

if TYPE_CHECKING:
    from modelport.convert.formats import Format

R = TypeVar("R", bound=BaseModel)
READ_RETRIES = 5  # resumed reads of one range before the error is the user's
SMALL_FILE_LIMIT = 64 * 2**20  # non-weight files above this are not mirrored
SAMPLED_SUFFIXES = (".distcp", ".gguf")  # the computed formats' data files beside pickles


class _RangeFile:
    """A read-only, seekable file object over one object: each read fetches what the sparse
    file lacks (at least 1 KiB at a time) and is served from it, so whatever a parser reads
    through it is in the mirror afterwards."""

    def __init__(self, mirror: RemoteMirror, rel: str, size: int) -> None:
        self._m, self._rel, self._size, self._pos = mirror, rel, size, 0

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, off: int, whence: int = 0) -> int:
        self._pos = off if whence == 0 else self._pos + off if whence == 1 else self._size + off
        return self._pos

    def read(self, n: int = -1) -> bytes:
        end = self._size if n is None or n < 0 else min(self._size, self._pos + n)
        if end <= self._pos:
            return b""
        self._m._fill(self._rel, [(self._pos, min(self._size, max(end, self._pos + 1024)))])
        with open(self._m.root / self._rel, "rb") as f:
            f.seek(self._pos)
            data = f.read(end - self._pos)
        self._pos = end
        return data

    def close(self) -> None:
        pass

    def __enter__(self) -> _RangeFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


def open_store(url: str, endpoint_url: str | None, region: str | None,
                profile: str | None) -> tuple[str, str, Any, Any]:
    """(bucket, prefix, S3 client, fsspec filesystem) for ``s3://`` (client) or another fsspec
    URL (filesystem, the bucket folded into the prefix)."""
    if url.startswith("s3://"):
        from modelport._io.s3 import parse_s3, s3_client

        bucket, prefix = parse_s3(url)
        return bucket, prefix, s3_client(endpoint_url, region, profile), None
    try:  # any fsspec store: ranged reads through the store's own package
        import fsspec

        fs, path = fsspec.core.url_to_fs(url)
    except ImportError as e:
        from modelport.errors import MissingDependencyError

        raise MissingDependencyError(str(e).split("'")[1] if "'" in str(e) else "fsspec",
                                     "stores") from e
    return "", path.rstrip("/"), None, fs


class RemoteMirror:
    """A local stand-in for ``s3://bucket/prefix`` (see the module docstring)."""

    def __init__(self, url: str, *, endpoint_url: str | None = None, region: str | None = None,
                 profile: str | None = None, scratch_dir: str | Path | None = None) -> None:
        self.url = url.rstrip("/")
        self.bucket, self.prefix, self._c, self._fs = open_store(self.url, endpoint_url,
                                                                  region, profile)
        self.fetched = 0
        self.requests = 0
        self.retries = 0  # reads cut mid-body and resumed
        self._lock = threading.Lock()
        self.dir = Path(tempfile.mkdtemp(prefix="modelport-remote-", dir=scratch_dir))
        self.root = self.dir / (self.prefix.rsplit("/", 1)[-1] or self.bucket)
        self.root.mkdir()
        self.sizes: dict[str, int] = {}
        self.not_mirrored: list[str] = []  # large files that are not weights
        self._present: dict[str, list[tuple[int, int]]] = {}
        self._sampled: list[str] = []  # other formats' data files: their first bytes only
        try:
            self._mirror()
            self.format = self._settle()
        except BaseException:
            self.close()
            raise

    # -- store access ---------------------------------------------------------------------

    def _key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def get_range(self, rel: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of ``rel`` by ranged GETs. A read cut mid-body (a reset
        connection, a timeout) is read again from where it stopped, the bytes received kept,
        up to :data:`READ_RETRIES` times with backoff; an answer of the store (403, 404) is
        not retried."""
        got = bytearray()
        failures = 0
        while start + len(got) < end:
            err: Exception | None = None
            try:
                self._read_into(got, rel, start + len(got), end)
            except Exception as e:
                if _answered(e):
                    raise storage_error(e, f"{self.url}/{rel}", "get") from e
                err = e
            with self._lock:
                self.requests += 1
            if start + len(got) >= end:
                break
            if failures >= READ_RETRIES:  # cut again and again, or a body that ends early
                if err is not None:
                    raise storage_error(err, f"{self.url}/{rel}", "get") from err
                break
            failures += 1
            with self._lock:
                self.retries += 1
            time.sleep(min(0.1 * 2 ** failures, 5.0))
        if len(got) != end - start:
            raise StorageError(f"asked for {end - start} bytes, got {len(got)}",
                               url=f"{self.url}/{rel}", op="get")
        with self._lock:
            self.fetched += len(got)
        return bytes(got)

    def _read_into(self, got: bytearray, rel: str, pos: int, end: int) -> None:
        """Append bytes [pos, end) of ``rel`` to ``got`` as they arrive (one request)."""
        if self._fs is not None:
            got += self._fs.cat_file(f"{self.prefix}/{rel}", start=pos, end=end)
            return
        body = self._c.get_object(Bucket=self.bucket, Key=self._key(rel),
                                  Range=f"bytes={pos}-{end - 1}")["Body"]
        try:
            while chunk := body.read(1 << 20):
                got += chunk
        finally:
            body.close()

    def _list(self) -> dict[str, int]:
        out: dict[str, int] = {}
        base = f"{self.prefix}/" if self.prefix else ""
        if self._fs is not None:
            try:
                found = self._fs.find(self.prefix, detail=True) if self._fs.isdir(
                    self.prefix) else {}
            except Exception as e:
                raise storage_error(e, self.url, "list") from e
            for path, info in found.items():
                rel = str(path)[len(base):] if str(path).startswith(base) else ""
                if rel and _listed(rel):
                    out[rel] = int(info.get("size") or 0)
            return out
        try:
            for page in self._c.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                          Prefix=base):
                for o in page.get("Contents", []):
                    rel = o["Key"][len(base):]
                    if rel and not rel.endswith("/") and _listed(rel):
                        out[rel] = int(o["Size"])
        except Exception as e:
            raise storage_error(e, self.url, "list") from e
        return out

    # -- the mirror -----------------------------------------------------------------------

    def _is_weights(self, rel: str) -> bool:
        return rel.endswith(".safetensors") or Path(rel).suffix in PICKLE_SUFFIXES

    def _settle(self) -> Format:
        """What the folder is (the registry says). Sampled data files stay for a computed
        format (:meth:`fetch_whole`); for Hugging Face weights they are listed not mirrored."""
        from modelport.convert.formats import detect

        fmt, _ = detect(self.root)
        if fmt.regions:
            for rel in self._sampled:
                (self.root / rel).unlink()
                del self._present[rel]
                self.not_mirrored.append(rel)
        return fmt

    def fetch_whole(self) -> str | None:
        """Complete every mirrored file when the format is computed from whole files (DCP,
        GGUF, the ranks' pickles), refused up front when scratch cannot hold them; the
        report's note, or None for Hugging Face weights (read by ranges).

        Raises:
            OutputWriteError: not enough scratch space; nothing was downloaded.
        """
        if self.format.regions:
            return None
        need = sum(self.sizes[r] for r in self._present)
        free = shutil.disk_usage(self.dir).free
        if free < need:
            raise OutputWriteError(
                f"a {self.format.label} is read from whole files: {need:,} bytes to download, "
                f"{free:,} free in {self.dir.parent}", path=self.url,
                hint="set TMPDIR to a disk with room for the checkpoint; nothing was written")
        before = self.fetched
        for rel in sorted(self._present):
            self._fill(rel, [(0, self.sizes[rel])])
        return (f"a {self.format.label}: its tensors are computed from whole files, so its "
                f"files were downloaded to scratch first ({self.fetched - before:,} bytes)")

    def _mirror(self) -> None:
        self.sizes = self._list()
        if not self.sizes:
            raise InputError("no objects under this prefix", path=self.url,
                             hint="check the bucket and prefix")
        for rel, size in sorted(self.sizes.items()):
            local = self.root / rel
            local.parent.mkdir(parents=True, exist_ok=True)
            if self._is_weights(rel):
                with open(local, "wb") as f:
                    f.truncate(size)  # sparse: blocks appear only where bytes are written
                self._present[rel] = []
                self._headers(rel, size)
            elif Path(rel).suffix in SAMPLED_SUFFIXES:  # enough to tell the format
                with open(local, "wb") as f:
                    f.truncate(size)
                self._present[rel] = []
                self._sampled.append(rel)
                self._fill(rel, [(0, min(size, 1024))])
            elif size <= SMALL_FILE_LIMIT:
                local.write_bytes(self.get_range(rel, 0, size) if size else b"")
            else:
                self.not_mirrored.append(rel)

    def _put(self, rel: str, start: int, data: bytes) -> None:
        fd = os.open(self.root / rel, os.O_WRONLY)
        try:
            pwrite_all(fd, data, start)
        finally:
            os.close(fd)
        self._present[rel].append((start, start + len(data)))

    def _fill(self, rel: str, ranges: Iterable[tuple[int, int]]) -> None:
        """Fetch the parts of ``ranges`` that are not in the sparse file yet."""
        for start, end in merge(ranges):
            for a, b in missing(self._present[rel], start, end):
                self._put(rel, a, self.get_range(rel, a, b))

    def _headers(self, rel: str, size: int) -> None:
        self._fill(rel, [(0, min(size, 1024))])  # the magic bytes, a header's length
        with open(self.root / rel, "rb") as f:
            first = f.read(8)
        if rel.endswith(".safetensors") and len(first) == 8:
            n = int.from_bytes(first, "little")
            self._fill(rel, [(0, min(size, 8 + n))])
        elif first[:2] == b"PK":  # a zip: read it once as convert will, through the store
            from modelport.convert.torch_files import _load_zip
            from modelport.errors import ModelportError

            try:
                _load_zip(self.root / rel, frozenset(),
                          opener=lambda: _RangeFile(self, rel, size))
            except ModelportError:
                pass  # the local read later says what is wrong, with the file's name
        else:  # a legacy pickle stream: it is read from the start to the end
            self._fill(rel, [(0, size)])

    # -- tensors ----------------------------------------------------------------------------

    def fetch_tensors(self, source: SourceSet, tensors: Iterable[SourceTensor]
                      ) -> dict[str, list[tuple[int, int]]]:
        """Fetch the bytes of ``tensors`` into the sparse files; returns the byte ranges per
        file, for :meth:`release`."""
        from modelport.convert.sources import Reader

        reader = Reader(source.files)  # for the storages' offsets: it opens nothing
        spans: dict[str, list[tuple[int, int]]] = {}
        for t in tensors:
            base = reader.storage_start(t)
            if base is None:  # a compressed storage: read whole with the zip directory
                continue
            a, b = t.byte_span()
            rel = source.files[t.file_index].path.relative_to(self.root).as_posix()
            spans.setdefault(rel, []).append((base + a, base + b))
        spans = {rel: merge(ranges) for rel, ranges in spans.items()}
        for rel, ranges in spans.items():
            self._fill(rel, ranges)
        return spans

    def release(self, spans: dict[str, list[tuple[int, int]]]) -> None:
        """Punch fetched ranges out of the sparse files (the scratch space goes back)."""
        for rel, ranges in spans.items():
            fd = os.open(self.root / rel, os.O_WRONLY)
            try:
                for a, b in ranges:
                    punch(fd, a, b - a)
                    self._present[rel] = subtract(self._present[rel], a, b)
            finally:
                os.close(fd)

    def scratch_bytes(self) -> int:
        """Blocks the mirror holds on disk now."""
        total = 0
        for dp, _, fs in os.walk(self.dir):
            for fn in fs:
                total += os.stat(os.path.join(dp, fn)).st_blocks * 512
        return total

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def speak_url(self, text: str) -> str:
        """``text`` with the mirror's scratch folder (gone after :meth:`close`) said as the
        URL it stands for."""
        return text.replace(str(self.root), redact(self.url))

    def as_url(self, rec: R) -> R:
        """A report about the mirror, re-said about the URL (paths, findings and hints)."""
        root = json.dumps(str(self.root))[1:-1]
        return type(rec).model_validate_json(
            rec.model_dump_json().replace(root, json.dumps(redact(self.url))[1:-1]))

    def __enter__(self) -> RemoteMirror:
        return self

    def error_as_url(self, exc: BaseException) -> None:
        """Re-say a :class:`ModelportError` about the URL: its hint must not name the scratch
        folder."""
        if isinstance(exc, ModelportError):
            exc.message, exc.hint = self.speak_url(exc.message), self.speak_url(exc.hint)
            exc.path = self.speak_url(exc.path) if exc.path else exc.path
            exc.args = (exc.message,)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc is not None:
            self.error_as_url(exc)
        self.close()


def _listed(rel: str) -> bool:
    """Hidden files and folders (``.git``, ``.cache``) are not the model's, except
    torch.distributed.checkpoint's index, ``.metadata``."""
    parts = rel.split("/")
    return ".." not in parts and not any(p.startswith(".") for p in parts[:-1]) and \
        (not parts[-1].startswith(".") or parts[-1] == ".metadata")


def _answered(e: Exception) -> bool:
    """The store answered (403, 404, an invalid range): retrying changes nothing."""
    return type(e).__name__ == "ClientError" or isinstance(e, (FileNotFoundError,
                                                               PermissionError))


__all__ = ["RemoteMirror", "open_store"]
