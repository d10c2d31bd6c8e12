"""dtype casts of safetensors files, streamed: exact overflow and underflow counts, each
piece read back right after it is written and compared with what was meant, sha256 of the
bytes read back.

Two threads share the work, one per core: a worker reads a piece (256 Ki elements) with
``pread`` (a source cut short is an error; through a map it would kill the process), casts it
into a buffer and writes it with ``pwrite``; the calling thread reads the piece back through a
map of the output, compares it with the worker's buffer and hashes it, in file order. The
proof costs one read of the output and no second cast. (``pwrite`` and not a writable map: on
the VM we measure on, first writes into a mapped file cost 2.4 s/GiB against 0.3 s/GiB for
``pwrite``.) bf16 → fp16 and bf16 → fp32 are cast on the bits with numpy (``cast.bits``);
every other pair goes through torch. ``posix_fallocate`` reserves every block first, so a
full disk is an error before any byte is written.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import queue
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from modelport._io.atomic import fsync_path
from modelport._io.fileio import pwrite_all
from modelport._io.st_header import (
    ST_DTYPES,
    SafetensorsHeader,
    TensorEntry,
    build_header,
    read_header,
)
from modelport._types import Record
from modelport.cast import bits as cast_bits
from modelport.errors import InputError, VerificationError

ELEMENTS_PER_PIECE = 256 * 1024
_RING = 4  # output buffers in flight between the worker and the hashing thread
FLUSH_BYTES = 256 * 2**20  # start writing back every 256 MiB, not all at the final fsync


class CastStat(Record):
    name: str
    from_dtype: str
    to_dtype: str
    max_abs: float
    overflow: int = Field(description="finite values beyond the target's range")
    to_zero: int = Field(description="non-zero values that became zero")
    clamped: bool


def as_tensor(buf: memoryview, st_dtype: str) -> Any:
    """A flat torch view of a buffer (no copy)."""
    import torch

    dtype = getattr(torch, ST_DTYPES[st_dtype][1])
    if not len(buf):
        return torch.empty(0, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # read-only map: we never write to it
        return torch.frombuffer(buf, dtype=torch.uint8).view(dtype)


def nonzero(x: Any) -> int:
    """Count values that are not ±0, on the bits (about twice as fast as on floats)."""
    import torch

    ints = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[x.element_size()]
    mask = {1: 0x7F, 2: 0x7FFF, 4: 0x7FFFFFFF, 8: 0x7FFFFFFFFFFFFFFF}[x.element_size()]
    return int(torch.count_nonzero(x.view(ints) & mask))


def cast_chunk(x: Any, st_to: str, clamp: bool, stat: CastStat | None = None,
               out: Any = None) -> Any:
    """Cast one chunk with torch (into ``out`` when given); count overflow (finite |x| beyond
    the target's max) and values that become zero into ``stat``. With ``clamp``, finite
    values saturate; inf and nan stay."""
    import torch

    t_to = getattr(torch, ST_DTYPES[st_to][1])
    if stat is None and not clamp:
        return out.copy_(x) if out is not None else x.to(t_to)
    top = torch.finfo(t_to).max
    lo, hi = (float(v) for v in torch.aminmax(x)) if x.numel() else (0.0, 0.0)
    risky = not (-top <= lo and hi <= top)  # also true when x holds inf or nan
    src = x
    if risky:
        wide = x.to(torch.float64 if x.dtype == torch.float64 else torch.float32)
        finite = torch.isfinite(wide)
        ax = torch.where(finite, wide.abs(), 0)
        over = int((ax > top).sum())
        if stat is not None:
            stat.max_abs = max(stat.max_abs, float(ax.max()) if ax.numel() else 0.0)
            stat.overflow += over
        if clamp and over:
            src = torch.where(finite, wide.clamp(-top, top), wide)
    elif stat is not None:
        stat.max_abs = max(stat.max_abs, abs(lo), abs(hi))
    y = out.copy_(src) if out is not None else src.to(t_to)
    if stat is not None:  # a non-zero x gives a zero y only by underflow
        stat.to_zero += nonzero(x) - nonzero(y)
    return y


Caster = Callable[[np.ndarray, np.ndarray, CastStat], None]


def _caster(st_from: str, st_to: str, clamp: bool, sc: cast_bits.Scratch) -> Caster:
    """The function that casts one piece (uint8 buffers in and out) and counts into a stat;
    ``sc`` is the worker thread's scratch space."""
    if (st_from, st_to) == ("BF16", "F16"):
        def bits16(src: np.ndarray, dst: np.ndarray, stat: CastStat) -> None:
            top, over, zero = cast_bits.bf16_to_f16(src.view(np.uint16), dst.view(np.uint16),
                                                    clamp, sc)
            stat.max_abs = max(stat.max_abs, cast_bits.bf16_bits_value(top))
            stat.overflow += over
            stat.to_zero += zero
        return bits16
    if (st_from, st_to) == ("BF16", "F32"):
        def bits32(src: np.ndarray, dst: np.ndarray, stat: CastStat) -> None:
            top = cast_bits.bf16_to_f32(src.view(np.uint16), dst.view(np.uint32), sc)
            stat.max_abs = max(stat.max_abs, cast_bits.bf16_bits_value(top))
        return bits32

    def with_torch(src: np.ndarray, dst: np.ndarray, stat: CastStat) -> None:
        cast_chunk(as_tensor(memoryview(src), st_from), st_to, clamp, stat,
                   out=as_tensor(memoryview(dst), st_to))
    return with_torch


@dataclass(frozen=True)
class _Piece:
    src: int  # offset in the source file
    n_in: int
    dst: int  # offset in the output file
    n_out: int
    tensor: int  # index into the file's tensors in data order


def _pieces(h: SafetensorsHeader, order: list[TensorEntry], out_sizes: list[int], start: int
            ) -> Iterator[_Piece]:
    pos = start
    for i, (t, n_out) in enumerate(zip(order, out_sizes, strict=True)):
        if t.numel:
            size_in, size_out = t.nbytes // t.numel, n_out // t.numel
            for e in range(0, t.numel, ELEMENTS_PER_PIECE):
                k = min(ELEMENTS_PER_PIECE, t.numel - e)
                yield _Piece(h.data_start + t.begin + e * size_in, k * size_in,
                             pos + e * size_out, k * size_out, i)
        pos += n_out


@dataclass
class _Plan:
    """One file's new header, its pieces, and per tensor (in data order) how to cast it."""

    header: bytes
    total: int
    order: list[TensorEntry]
    pieces: list[_Piece]
    casts: list[tuple[Caster, CastStat] | None]  # None: the tensor is copied as it is

    @property
    def stats(self) -> list[CastStat]:
        return [c[1] for c in self.casts if c is not None]


def _plan(h: SafetensorsHeader, metadata: dict[str, str], casts: dict[str, str], clamp: bool
          ) -> _Plan:
    order = sorted(h.tensors.values(), key=lambda t: t.begin)
    entries: list[tuple[str, str, tuple[int, ...], int]] = []
    jobs: list[tuple[Caster, CastStat] | None] = []
    sc = cast_bits.Scratch(ELEMENTS_PER_PIECE)  # the worker thread's
    for t in order:
        to = casts.get(t.name, t.dtype)
        entries.append((t.name, to, t.shape, t.numel * ST_DTYPES[to][0]))
        jobs.append((_caster(t.dtype, to, clamp, sc),
                     CastStat(name=t.name, from_dtype=t.dtype, to_dtype=to, max_abs=0.0,
                              overflow=0, to_zero=0, clamped=clamp))
                    if t.name in casts else None)
    header, _ = build_header(entries, metadata)
    total = len(header) + sum(e[3] for e in entries)
    pieces = list(_pieces(h, order, [e[3] for e in entries], len(header)))
    return _Plan(header, total, order, pieces, jobs)


def _pread(fd: int, buf: np.ndarray, offset: int, path: Path) -> None:
    view, done = memoryview(buf), 0
    while done < len(view):
        k = os.preadv(fd, [view[done:]], offset + done)
        if k == 0:
            raise InputError("the file ended early: was it changed while modelport read it?",
                             path=path, hint="run again when nothing else writes to it")
        done += k


def _map(fd: int, length: int) -> np.ndarray:
    """A read-only map of a file as a uint8 array (unmapped when the array is collected)."""
    return np.frombuffer(mmap.mmap(fd, length, access=mmap.ACCESS_READ), np.uint8)


class _Worker(threading.Thread):
    """Reads the pieces (``pread``: a source cut short is an error, where a map would kill
    the process), casts or copies them and writes them, in order; hands each written buffer
    to the caller."""

    def __init__(self, fd_in: int, src: Path, fd_out: int, plan: _Plan) -> None:
        super().__init__(daemon=True)
        self.fd_in, self.src, self.fd_out = fd_in, src, fd_out
        self.pieces, self.casts = plan.pieces, plan.casts
        buf_bytes = max([p.n_out for p in plan.pieces] + [1])
        self.inb = np.empty(max([p.n_in for p in plan.pieces] + [1]), np.uint8)
        self.free: queue.Queue[np.ndarray] = queue.Queue()
        for _ in range(_RING):
            self.free.put(np.empty(buf_bytes, np.uint8))
        self.done: queue.Queue[tuple[_Piece, np.ndarray] | BaseException | None] = \
            queue.Queue()
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            for p in self.pieces:
                buf = self.free.get()
                if self.stop.is_set():
                    return
                out = buf[: p.n_out]
                job = self.casts[p.tensor]
                if job is None:  # not cast: the source's bytes
                    _pread(self.fd_in, out, p.src, self.src)
                else:
                    src = self.inb[: p.n_in]
                    _pread(self.fd_in, src, p.src, self.src)
                    caster, stat = job
                    caster(src, out, stat)
                pwrite_all(self.fd_out, out, p.dst)
                self.done.put((p, buf))
            self.done.put(None)
        except BaseException as e:  # handed to the caller, who raises it
            self.done.put(e)

    def halt(self) -> None:
        self.stop.set()
        for _ in range(_RING):
            self.free.put(np.empty(0, np.uint8))
        self.join()


class _Flusher:
    """``fdatasync`` on a thread every ``FLUSH_BYTES`` written, one at a time: the disk
    writes while the cast goes on, and the final fsync of a large file has little left.
    Each sync has its own duplicate of the descriptor, so closing the file never races it."""

    def __init__(self, fd: int) -> None:
        self.fd, self.mark = fd, 0
        self.thread: threading.Thread | None = None

    def written(self, upto: int) -> None:
        if upto - self.mark >= FLUSH_BYTES and not (self.thread and self.thread.is_alive()):
            self.thread = threading.Thread(target=self._sync, args=(os.dup(self.fd),),
                                           daemon=True)
            self.thread.start()
            self.mark = upto

    @staticmethod
    def _sync(fd: int) -> None:
        try:
            os.fdatasync(fd)
        except OSError:  # only a head start: the final fsync reports any error
            pass
        finally:
            os.close(fd)


def write_cast_file(src: Path, h: SafetensorsHeader, dst: Path, metadata: dict[str, str],
                    casts: dict[str, str], clamp: bool, *, verify: bool = True,
                    sync: bool = True) -> tuple[int, str, list[CastStat]]:
    """Write ``src`` to the new file ``dst`` with a new header, casting the named tensors.

    With ``verify`` every piece is read back and compared with what was meant to be written.
    Returns (size, sha256 of the bytes written, one ``CastStat`` per cast tensor). ``dst`` is
    removed on any error. ``sync=False`` leaves the fsync to the caller (who may run it beside
    the next file's cast).
    """
    plan = _plan(h, metadata, casts, clamp)
    fd_in = os.open(src, os.O_RDONLY)
    try:
        if os.fstat(fd_in).st_size != h.file_size:
            raise InputError("the file changed since its header was read", path=src,
                             hint="run again when nothing else writes to it")
        sha = _write(fd_in, src, dst, plan, verify=verify, sync=sync)
    finally:
        os.close(fd_in)
    return plan.total, sha, plan.stats


def _write(fd_in: int, src: Path, dst: Path, plan: _Plan, *, verify: bool, sync: bool) -> str:
    """Run the worker and prove its pieces; returns the sha256 of the new file."""
    sha = hashlib.sha256()
    fd_out = os.open(dst, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    worker, flusher = None, _Flusher(fd_out)
    try:
        os.posix_fallocate(fd_out, 0, plan.total)  # ENOSPC/EFBIG here, before any byte
        pwrite_all(fd_out, plan.header, 0)
        written = _map(fd_out, plan.total)
        if verify:
            _check(written, 0, np.frombuffer(plan.header, np.uint8), dst, "the header")
        sha.update(plan.header)
        worker = _Worker(fd_in, src, fd_out, plan)
        worker.start()
        while (item := worker.done.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            p, buf = item
            if verify:  # what the file now holds, read back through the map
                _check(written, p.dst, buf[: p.n_out], dst, repr(plan.order[p.tensor].name))
                sha.update(written[p.dst: p.dst + p.n_out])
            else:
                sha.update(buf[: p.n_out])
            worker.free.put(buf)
            flusher.written(p.dst + p.n_out)
        worker.join()
        if sync:
            os.fsync(fd_out)
    except BaseException:
        if worker is not None and worker.is_alive():
            worker.halt()
        os.close(fd_out)
        dst.unlink(missing_ok=True)
        raise
    os.close(fd_out)
    return sha.hexdigest()


def _check(written: np.ndarray, offset: int, meant: np.ndarray, path: Path, what: str
           ) -> None:
    """The bytes at ``offset`` of the written file equal ``meant``."""
    got = written[offset: offset + len(meant)]
    if len(meant) % 8 == 0 and offset % 8 == 0:
        got, meant = got.view(np.uint64), meant.view(np.uint64)
    if not np.array_equal(got, meant):
        raise VerificationError(f"the bytes of {what} on disk differ from those written",
                                path=path, hint="check the disk; nothing was kept")


def verify_cast_file(dst: Path, h: SafetensorsHeader, casts: dict[str, str], *,
                     sync: bool = False) -> None:
    """The written file parses (safetensors' own reader) and has every tensor with its new
    dtype and shape (``sync``: fsync it first). Its bytes were proven as they were written."""
    from safetensors import safe_open

    if sync:
        fsync_path(dst)
    with safe_open(str(dst), "np") as f:
        if set(f.keys()) != set(h.tensors) or (f.metadata() or {}).get("format") != "pt":
            raise VerificationError("tensor names or metadata changed", path=dst)
    out = read_header(dst)
    for name, t in h.tensors.items():
        o = out.tensors[name]
        if o.shape != t.shape or o.dtype != casts.get(name, t.dtype) or \
                o.nbytes != t.numel * ST_DTYPES[o.dtype][0]:
            raise VerificationError(f"tensor {name!r} has the wrong dtype or shape", path=dst,
                                    hint="this is a modelport bug; please report it")


__all__ = ["CastStat", "as_tensor", "cast_chunk", "nonzero", "verify_cast_file",
           "write_cast_file"]
