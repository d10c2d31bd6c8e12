"""How ``normalize`` writes: safetensors files rewritten (header, casts) or their headers fixed
in place, each proven by hashing, and the folder assembled in ``--out`` or in place."""

from __future__ import annotations

import errno
import json
import mmap
import os
from functools import partial
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from modelport._io import hashcache
from modelport._io.atomic import TMP_MARK, fsync_dir, fsync_path, write_bytes_atomic
from modelport._io.hashing import HashingWriter, copy_hashed, sha256_file
from modelport._io.paths import inside, walk_files
from modelport._io.st_header import ST_INDEX, SafetensorsHeader, build_header, read_header
from modelport._io.st_inplace import rewrite_header
from modelport._types import Record
from modelport.cast.casting import CastStat, verify_cast_file, write_cast_file
from modelport.cast.options import NormalizeOptions
from modelport.errors import InputError, VerificationError

Action = Literal["unchanged", "header-in-padding", "header-insert-range", "rewrite"]


class FileResult(Record):
    path: str
    action: Action
    metadata_before: dict[str, str] | None
    metadata_after: dict[str, str] | None
    casts: list[CastStat] = Field(default_factory=list)
    data_sha256_before: str | None = None
    data_sha256_after: str | None = None
    size: int = 0
    sha256: str | None = None


def _sha_regions(items: list[tuple[Path, int]]) -> list[str]:
    """Hash several data regions, one per core."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as ex:
        return list(ex.map(lambda it: sha256_file(*it), items))


def _write_file(src: Path, h: SafetensorsHeader, dst: Path, metadata: dict[str, str]
                ) -> HashingWriter:
    """Stream ``src`` into ``dst`` with a new header; the data is copied by the kernel."""
    order = sorted(h.tensors.values(), key=lambda t: t.begin)
    header, _ = build_header([(t.name, t.dtype, t.shape, t.nbytes) for t in order], metadata)
    fd = os.open(src, os.O_RDONLY)
    m = mmap.mmap(fd, 0, access=mmap.ACCESS_READ) if h.file_size else None
    mv = memoryview(m) if m is not None else memoryview(b"")
    w = HashingWriter(dst)
    try:
        w.write(header)
        for t in order:
            region = mv[h.data_start + t.begin: h.data_start + t.end]
            if len(region):
                w.copy_from(fd, h.data_start + t.begin, region)
        w.start_sync()
        w.close()
    except BaseException:
        w.abort()
        dst.unlink(missing_ok=True)
        raise
    finally:
        del mv
        os.close(fd)
    return w


def _verify_header_rewrite(h: SafetensorsHeader, dst: Path) -> None:
    """The rewritten file parses with safetensors' own reader and names the same tensors with
    the same dtypes and shapes; the caller proves the data unchanged by hashing both data
    regions."""
    from safetensors import safe_open

    with safe_open(str(dst), "np") as f:  # the library's own parser accepts the file
        if set(f.keys()) != set(h.tensors) or (f.metadata() or {}).get("format") != "pt":
            raise VerificationError("tensor names or metadata changed", path=dst)
    out = read_header(dst)
    for name, t in h.tensors.items():
        o = out.tensors[name]
        if (o.shape, o.dtype, o.nbytes) != (t.shape, t.dtype, t.nbytes):
            raise VerificationError(f"tensor {name!r} differs after rewrite", path=dst,
                                    hint="this is a modelport bug; please report it")


def _check_overflow(stats: list[CastStat], path: Path, opts: NormalizeOptions) -> None:
    bad = [s for s in stats if s.overflow]
    if bad and opts.on_overflow == "error":
        listed = ", ".join(f"{s.name} ({s.overflow} values, max |x| {s.max_abs:.4g})"
                           for s in bad[:5])
        raise InputError(f"casting to {bad[0].to_dtype} overflows {len(bad)} tensor(s): "
                         f"{listed}", path=path,
                         hint="pass --on-overflow clamp to saturate them, or keep the dtype")


def _rewrite(folder: Path, n: str, h: SafetensorsHeader, target: Path, r: FileResult,
             casts: dict[str, str], opts: NormalizeOptions, proofs: Any = None) -> Any:
    """Rewrite one file. ``proofs`` (a thread pool): a cast file's fsync and proof run there,
    beside the next file's cast, and their future is returned; the caller waits for it before
    anything is kept."""
    proof = None
    metadata = r.metadata_after or {"format": "pt"}
    clamp = opts.on_overflow == "clamp"
    try:
        if casts:
            size, sha, stats = write_cast_file(folder / n, h, target, metadata, casts, clamp,
                                               verify=opts.verify, sync=False)
            _check_overflow(stats, folder / n, opts)
            settle = partial(verify_cast_file, target, h, casts, sync=True) if opts.verify \
                else partial(fsync_path, target)
            proof = proofs.submit(settle) if proofs is not None else settle()
        else:
            w = _write_file(folder / n, h, target, metadata)
            size, sha, stats = w.size, w.sha256, []
            if opts.verify:  # the data must be untouched: prove it
                _verify_header_rewrite(h, target)
                r.data_sha256_before, r.data_sha256_after = _sha_regions(
                    [(folder / n, h.data_start), (target, read_header(target).data_start)])
                if r.data_sha256_before != r.data_sha256_after:
                    raise VerificationError("data region changed", path=target)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    r.casts, r.size, r.sha256 = stats, size, sha
    return proof


def apply_to_out(folder: Path, tmp: Path, headers: dict[str, SafetensorsHeader],
                  results: list[FileResult], casts: dict[str, dict[str, str]],
                  opts: NormalizeOptions, new_cfg: dict[str, Any] | None,
                  new_index: dict[str, Any] | None) -> None:
    from concurrent.futures import ThreadPoolExecutor

    done = set()
    with ThreadPoolExecutor(max_workers=1) as proofs:
        pending = []
        for r in results:
            n = r.path
            done.add(n)
            if r.action == "unchanged":
                _carry(folder / n, tmp / n, opts.link)
                continue
            pending.append(_rewrite(folder, n, headers[n], tmp / n, r, casts[n], opts, proofs))
        for proof in pending:  # every proof holds before the folder is kept (first error raises)
            if proof is not None:
                proof.result()
    if new_cfg is not None:
        write_bytes_atomic(tmp / "config.json", (json.dumps(new_cfg, indent=2) + "\n").encode())
        done.add("config.json")
    if new_index is not None:
        write_bytes_atomic(tmp / ST_INDEX,
                           (json.dumps(new_index, indent=2, sort_keys=True) + "\n").encode())
        done.add(ST_INDEX)
    for rel in walk_files(folder):
        if rel not in done and TMP_MARK not in rel:
            inside(folder, rel, what="file", source=folder)
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            _carry(folder / rel, tmp / rel, opts.link)
    # pass on the digests of the files carried over unchanged (linked or copied: the same
    # bytes); never of one written anew here (config.json, the index): record() stamps the
    # new file, so an old digest would be vouched for
    cache = hashcache.load(folder)
    written = {r.path for r in results if r.action != "unchanged"} | (
        {"config.json"} if new_cfg is not None else set()) | (
        {ST_INDEX} if new_index is not None else set())
    known = {rel: sha for rel in cache if rel not in written and (tmp / rel).is_file()
             and (sha := hashcache.cached(folder, rel, cache)) is not None}
    known.update({r.path: r.sha256 for r in results if r.sha256})
    if known:
        hashcache.record(tmp, known)


def _carry(src: Path, dst: Path, link: bool) -> None:
    if link:
        try:
            os.link(src, dst)
            return
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise
    copy_hashed(src, dst)


def apply_in_place(folder: Path, headers: dict[str, SafetensorsHeader],
                    results: list[FileResult], casts: dict[str, dict[str, str]],
                    opts: NormalizeOptions, new_cfg: dict[str, Any] | None,
                    new_index: dict[str, Any] | None, index_state: str) -> None:
    header_jobs = [r for r in results if r.action in ("header-in-padding",
                                                      "header-insert-range")]
    if opts.verify and header_jobs:
        befores = _sha_regions([(folder / r.path, headers[r.path].data_start)
                                for r in header_jobs])
        for r, sha in zip(header_jobs, befores, strict=True):
            r.data_sha256_before = sha
    for r in header_jobs:
        try:
            rewrite_header(folder / r.path, headers[r.path], r.metadata_after or {"format": "pt"},
                           allow_insert=opts.insert_range)
        except OSError as e:  # the file system cannot insert blocks: stream it instead
            if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
            r.action = "rewrite"
            r.data_sha256_before = None
    done = [r for r in header_jobs if r.action != "rewrite"]
    new_headers = {r.path: read_header(folder / r.path) for r in done}
    for r in done:
        r.size = new_headers[r.path].file_size
    if opts.verify and done:
        afters = _sha_regions([(folder / r.path, new_headers[r.path].data_start) for r in done])
        for r, sha in zip(done, afters, strict=True):
            r.data_sha256_after = sha
            if sha != r.data_sha256_before:
                raise VerificationError("data region changed during header rewrite",
                                        path=folder / r.path,
                                        hint="restore the file from its source")
    for r in results:
        if r.action != "rewrite":
            continue
        path = folder / r.path
        tmp = path.with_name(f".{r.path}{TMP_MARK}{os.getpid()}")
        tmp.unlink(missing_ok=True)
        _rewrite(folder, r.path, headers[r.path], tmp, r, casts[r.path], opts)
        os.replace(tmp, path)
        fsync_dir(folder)
    if new_cfg is not None:
        write_bytes_atomic(folder / "config.json",
                           (json.dumps(new_cfg, indent=2) + "\n").encode())
    if new_index is not None and index_state != "unchanged":
        write_bytes_atomic(folder / ST_INDEX,
                           (json.dumps(new_index, indent=2, sort_keys=True) + "\n").encode())
    fsync_dir(folder)
