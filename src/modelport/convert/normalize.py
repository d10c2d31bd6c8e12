"""``normalize``: safetensors metadata, dtypes, config.json and the index, proven unchanged
where nothing had to change."""

from __future__ import annotations

import errno
import json
import mmap
import os
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from modelport._io import hashcache, jsonio
from modelport._io.atomic import (
    TMP_MARK,
    atomic_dir,
    clean_stale,
    fsync_dir,
    write_bytes_atomic,
)
from modelport._io.hashing import HashingWriter, copy_hashed, sha256_file
from modelport._io.paths import check_output, inside
from modelport._io.st_header import ST_DTYPES, SafetensorsHeader, build_header, read_header
from modelport._io.st_inplace import new_header_len, recover, rewrite_header
from modelport._types import Record
from modelport.convert.cast import CastStat, verify_cast_file, write_cast_file
from modelport.convert.options import NormalizeOptions
from modelport.convert.sources import ST_INDEX, _walk_files
from modelport.errors import CheckpointError, InputError, VerificationError

FLOATS = {"F16", "BF16", "F32", "F64"}
TARGETS = {"fp16": "F16", "bf16": "BF16", "fp32": "F32"}
CONFIG_DTYPE = {"F16": "float16", "BF16": "bfloat16", "F32": "float32", "F64": "float64"}
# tensors of quantized checkpoints (GPTQ, AWQ, bitsandbytes, fp8 scales): never cast
QUANT_SUFFIXES = ("qweight", "qzeros", "scales", "g_idx", "weight_scale", "weight_scale_inv",
                  "input_scale", "weight_zero_point", "zeros", "absmax", "quant_map",
                  "quant_state", "nested_absmax", "nested_quant_map")

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


class NormalizeReport(Record):
    """What ``normalize`` changed (or, with ``dry_run``, would change)."""

    dir: str
    out: str | None
    in_place: bool
    dry_run: bool
    changed: bool
    files: list[FileResult]
    config_changes: dict[str, list[Any]]
    index: Literal["unchanged", "rebuilt", "created", "none"]
    recovered: list[str]
    verified: bool
    seconds: float


def _is_quant(name: str) -> bool:
    return name.rsplit(".", 1)[-1] in QUANT_SUFFIXES


def _weight_files(folder: Path) -> tuple[list[str], dict[str, Any] | None]:
    """The safetensors files of the folder, and its index (validated) if it has one."""
    names = sorted(p.name for p in folder.iterdir()
                   if p.suffix == ".safetensors" and p.is_file() and not p.name.startswith("."))
    if not (folder / ST_INDEX).is_file():
        return names, None
    try:
        index = jsonio.load_index(folder / ST_INDEX)
        wm = index["weight_map"]
    except (OSError, ValueError) as e:
        raise CheckpointError(f"index is not valid ({e})", path=folder / ST_INDEX,
                              hint="delete it; normalize rebuilds it from the files") from e
    for f in sorted(set(map(str, wm.values()))):
        inside(folder, f, what="index entry", source=folder / ST_INDEX)
        if not (folder / f).is_file():
            raise CheckpointError(f"shard {f!r} named in the index is missing",
                                  path=folder / ST_INDEX, hint="restore the shard")
    return names, index


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


def _config_changes(folder: Path, dtype: str | None) -> tuple[dict[str, Any] | None,
                                                               dict[str, list[Any]]]:
    p = folder / "config.json"
    if dtype is None or not p.is_file():
        return None, {}
    try:
        cfg = jsonio.load(p)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"config.json is not valid JSON ({e})", path=p) from e
    if not isinstance(cfg, dict):
        raise CheckpointError("config.json is not a JSON object", path=p)
    want = CONFIG_DTYPE[dtype]
    keys = [k for k in ("torch_dtype", "dtype") if k in cfg] or ["torch_dtype"]
    changes = {k: [cfg.get(k), want] for k in keys if cfg.get(k) != want}
    if not changes:
        return None, {}
    for k in changes:
        cfg[k] = want
    return cfg, changes


def _dominant_float(headers: dict[str, SafetensorsHeader], casts: dict[str, dict[str, str]]
                    ) -> str | None:
    counts: dict[str, int] = {}
    for fname, h in headers.items():
        for t in h.tensors.values():
            d = casts.get(fname, {}).get(t.name, t.dtype)
            if d in FLOATS and not _is_quant(t.name):
                counts[d] = counts.get(d, 0) + t.numel
    return max(counts, key=lambda d: counts[d]) if counts else None


def normalize(folder: str | Path, out: str | Path | None = None,
              options: NormalizeOptions | None = None, **kwargs: Any) -> NormalizeReport:
    """Fix safetensors metadata (``format: pt``), dtypes, config.json dtype and the index.

    Args:
        folder: a model folder holding safetensors weights.
        out: the output folder (required unless ``in_place`` or ``dry_run``).
        options: a :class:`NormalizeOptions`; keyword arguments build one when omitted.

    Returns:
        A :class:`NormalizeReport`; ``changed`` is False when there was nothing to do.

    Raises:
        InputError, CheckpointError, VerificationError; with ``on_overflow="error"`` a cast
        that overflows raises ``InputError`` naming the tensors, and nothing is changed.
    """
    t0 = time.perf_counter()
    opts = options or NormalizeOptions(**kwargs)
    if options is not None and kwargs:
        opts = options.model_copy(update=kwargs)
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("is not a folder", path=folder, hint="normalize takes a model folder")
    if not opts.in_place and not opts.dry_run and out is None:
        raise InputError("give --out DIR or --in-place", path=folder)
    if opts.in_place and out is not None:
        raise InputError("--out and --in-place exclude each other", path=folder)
    dst = Path(out) if out is not None else None
    if dst is not None and not opts.dry_run:
        check_output(folder, dst, overwrite=opts.overwrite)
    recovered: list[str] = []
    if opts.in_place and not opts.dry_run:
        recovered = recover(folder)
        clean_stale(folder, ".*")
    names, old = _weight_files(folder)
    if not names:
        raise InputError("no safetensors weights in the folder", path=folder,
                         hint=f"run: modelport convert {folder} OUT")
    headers = {n: read_header(folder / n) for n in names}
    seen: dict[str, str] = {}
    for n, h in headers.items():
        for t in h.tensors:
            if t in seen:
                raise CheckpointError(f"tensor {t!r} is in both {seen[t]} and {n}",
                                      path=folder, hint="remove the duplicate shard")
            seen[t] = n
    target = TARGETS[opts.dtype] if opts.dtype else None
    casts = {n: {t.name: target for t in h.tensors.values()
                 if target and t.dtype in FLOATS and t.dtype != target and not _is_quant(t.name)}
             for n, h in headers.items()}
    results: list[FileResult] = []
    for n, h in headers.items():
        meta_after = dict(h.metadata or {})
        meta_after["format"] = "pt"
        needs_meta = (h.metadata or {}).get("format") != "pt"
        action: Action = "unchanged"
        if casts[n] or (needs_meta and not opts.in_place):
            action = "rewrite"
        elif needs_meta:
            fits = new_header_len(h, meta_after) <= h.header_len
            action = "header-in-padding" if fits else (
                "header-insert-range" if opts.insert_range else "rewrite")
        results.append(FileResult(path=n, action=action, metadata_before=h.metadata,
                                  metadata_after=meta_after if action != "unchanged"
                                  else h.metadata, size=h.file_size))
    dtype_after = _dominant_float(headers, casts)
    new_cfg, cfg_changes = _config_changes(folder, dtype_after if opts.dtype else None)
    index_files = [n for n in names if n == "model.safetensors" or n.startswith("model-")]
    if old is not None:
        index_files = sorted(set(index_files) | set(map(str, old["weight_map"].values())))
    new_index = None
    index_state: Literal["unchanged", "rebuilt", "created", "none"] = "none"
    if len(index_files) > 1 or old is not None:
        wm = {t: f for f in index_files for t in sorted(headers[f].tensors)}
        total = sum(headers[f].tensors[t].numel
                    * ST_DTYPES[casts[f].get(t, headers[f].tensors[t].dtype)][0]
                    for t, f in wm.items())
        new_index = {"metadata": {"total_size": total}, "weight_map": wm}
        if old is None:
            index_state = "created"
        else:
            old_wm = old.get("weight_map")
            meta = old.get("metadata")
            old_total = meta.get("total_size") if isinstance(meta, dict) else None
            index_state = "unchanged" if (old_wm == wm and old_total == total) else "rebuilt"
    changed = any(r.action != "unchanged" for r in results) or bool(cfg_changes) or \
        index_state in ("rebuilt", "created")
    report = NormalizeReport(
        dir=str(folder), out=str(dst) if dst else None, in_place=opts.in_place,
        dry_run=opts.dry_run, changed=changed, files=results, config_changes=cfg_changes,
        index=index_state, recovered=recovered, verified=opts.verify and not opts.dry_run,
        seconds=0.0)
    if opts.dry_run:
        report.seconds = round(time.perf_counter() - t0, 3)
        return report
    if opts.in_place:
        _apply_in_place(folder, headers, results, casts, opts, new_cfg, new_index, index_state)
    else:
        assert dst is not None
        with atomic_dir(dst, overwrite=opts.overwrite) as tmp:
            _apply_to_out(folder, tmp, headers, results, casts, opts, new_cfg, new_index)
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


def _check_overflow(stats: list[CastStat], path: Path, opts: NormalizeOptions) -> None:
    bad = [s for s in stats if s.overflow]
    if bad and opts.on_overflow == "error":
        listed = ", ".join(f"{s.name} ({s.overflow} values, max |x| {s.max_abs:.4g})"
                           for s in bad[:5])
        raise InputError(f"casting to {bad[0].to_dtype} overflows {len(bad)} tensor(s): "
                         f"{listed}", path=path,
                         hint="pass --on-overflow clamp to saturate them, or keep the dtype")


def _rewrite(folder: Path, n: str, h: SafetensorsHeader, target: Path, r: FileResult,
             casts: dict[str, str], opts: NormalizeOptions) -> None:
    metadata = r.metadata_after or {"format": "pt"}
    clamp = opts.on_overflow == "clamp"
    try:
        if casts:
            size, sha, stats = write_cast_file(folder / n, h, target, metadata, casts, clamp)
            _check_overflow(stats, folder / n, opts)
            if opts.verify:
                verify_cast_file(target, h, casts, sha)
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


def _apply_to_out(folder: Path, tmp: Path, headers: dict[str, SafetensorsHeader],
                  results: list[FileResult], casts: dict[str, dict[str, str]],
                  opts: NormalizeOptions, new_cfg: dict[str, Any] | None,
                  new_index: dict[str, Any] | None) -> None:
    done = set()
    for r in results:
        n = r.path
        done.add(n)
        if r.action == "unchanged":
            _carry(folder / n, tmp / n, opts.link)
            continue
        _rewrite(folder, n, headers[n], tmp / n, r, casts[n], opts)
    if new_cfg is not None:
        write_bytes_atomic(tmp / "config.json", (json.dumps(new_cfg, indent=2) + "\n").encode())
        done.add("config.json")
    if new_index is not None:
        write_bytes_atomic(tmp / ST_INDEX,
                           (json.dumps(new_index, indent=2, sort_keys=True) + "\n").encode())
        done.add(ST_INDEX)
    for rel in _walk_files(folder):
        if rel not in done and TMP_MARK not in rel:
            inside(folder, rel, what="file", source=folder)
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            _carry(folder / rel, tmp / rel, opts.link)
    # pass known digests on: a hard link keeps size, mtime and inode, so the cached entry
    # stays valid; a copy does not match and is recomputed when needed
    cache = hashcache.load(folder)
    known = {rel: sha for rel in cache if (tmp / rel).is_file()
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


def _apply_in_place(folder: Path, headers: dict[str, SafetensorsHeader],
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


__all__ = ["NormalizeReport", "normalize"]
