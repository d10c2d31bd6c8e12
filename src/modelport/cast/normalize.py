"""``normalize``: safetensors metadata, dtypes, config.json and the index, proven unchanged
where nothing had to change."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from modelport._io import jsonio
from modelport._io.atomic import (
    atomic_dir,
    clean_stale,
)
from modelport._io.paths import check_output, inside
from modelport._io.st_header import ST_DTYPES, ST_INDEX, SafetensorsHeader, read_header
from modelport._io.st_inplace import new_header_len, recover
from modelport._types import Record
from modelport.cast.apply import Action, FileResult, apply_in_place, apply_to_out
from modelport.cast.options import NormalizeOptions
from modelport.errors import CheckpointError, InputError

FLOATS = {"F16", "BF16", "F32", "F64"}
TARGETS = {"fp16": "F16", "bf16": "BF16", "fp32": "F32"}
CONFIG_DTYPE = {"F16": "float16", "BF16": "bfloat16", "F32": "float32", "F64": "float64"}
# tensors of quantized checkpoints (GPTQ, AWQ, bitsandbytes, fp8 scales): never cast
QUANT_SUFFIXES = ("qweight", "qzeros", "scales", "g_idx", "weight_scale", "weight_scale_inv",
                  "input_scale", "weight_zero_point", "zeros", "absmax", "quant_map",
                  "quant_state", "nested_absmax", "nested_quant_map")

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
    jsonio.require_valid(folder)
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
        apply_in_place(folder, headers, results, casts, opts, new_cfg, new_index, index_state)
    else:
        assert dst is not None
        with atomic_dir(dst, overwrite=opts.overwrite) as tmp:
            apply_to_out(folder, tmp, headers, results, casts, opts, new_cfg, new_index)
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


__all__ = ["FileResult", "NormalizeReport", "normalize"]
