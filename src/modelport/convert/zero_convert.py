"""``convert`` for DeepSpeed ZeRO checkpoints: each parameter assembled from its pieces of the
flat fp32 partitions (or taken from the 16-bit module), one at a time, written into
safetensors shards while hashed, each shard re-read and proven; optimizer state left out."""

from __future__ import annotations

import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

from modelport._io.atomic import atomic_dir
from modelport._io.hashcache import record as record_hashes
from modelport._io.hashing import copy_hashed
from modelport._io.paths import check_output
from modelport._io.st_header import TORCH_TO_ST
from modelport._types import FileRecord, SkippedItem, file_role
from modelport.convert.checkpoint import ConvertReport, InputFile
from modelport.convert.computed import tensor_bytes, write_shards
from modelport.convert.dcp_convert import config_dir
from modelport.convert.options import ConvertOptions
from modelport.convert.sources import Reader
from modelport.convert.zero import ZeroTensor, module_weights, read_zero, zero_folder
from modelport.errors import InputError

# files of a training run's checkpoint folder that are not the model's
TRAINING_FILES = {"latest", "trainer_state.json", "training_args.bin", "scheduler.pt",
                  "optimizer.pt", "zero_to_fp32.py", "zero_to_torch.py"}
_MODEL_FILE_SUFFIXES = (".json", ".model", ".txt", ".tiktoken", ".jinja", ".py")


def assemble(reader: Reader, t: ZeroTensor) -> Any:
    """The tensor ``t`` (a view where it is one piece of one file, else one copy)."""
    import torch

    dtype = getattr(torch, t.dtype)
    if t.whole is not None:
        x = reader.tensor(t.whole)
        return x if x.dtype == dtype else x.to(dtype)
    n = math.prod(t.shape)
    if len(t.pieces) == 1:
        p = t.pieces[0]
        x = reader.tensor(p.part).reshape(-1)[p.start: p.start + p.numel]
        return (x if x.dtype == dtype else x.to(dtype)).reshape(t.shape)
    out = torch.empty(n, dtype=dtype)
    pos = 0
    for p in t.pieces:
        out[pos: pos + p.numel].copy_(reader.tensor(p.part).reshape(-1)[p.start:
                                                                        p.start + p.numel])
        pos += p.numel
    return out.reshape(t.shape)


def _fit(tensors: list[ZeroTensor], aliases: dict[str, str], options: ConvertOptions,
         cfg_dir: Path | None, warnings: list[str]) -> dict[str, str]:
    """Rename the tensors (and the aliases) to the model's names; the renaming."""
    from modelport.convert.framework_names import model_renaming

    renamed, note = model_renaming([t.name for t in tensors], cfg_dir,
                                   strip_prefix=options.strip_prefix, fit=options.fit_names)
    if note:
        warnings.append(note)
    for t in tensors:
        t.name = renamed.get(t.name, t.name)
    fitted = {renamed.get(k, k): renamed.get(v, v) for k, v in aliases.items()}
    aliases.clear()
    aliases.update(fitted)
    return renamed


def convert_zero(src: Path, dst: Path, options: ConvertOptions) -> ConvertReport:
    """Convert the ZeRO checkpoint under ``src`` (see :func:`zero_folder`)."""
    t0 = time.perf_counter()
    folder = zero_folder(src)
    assert folder is not None
    check_output(src, dst, overwrite=options.overwrite)
    ck = read_zero(src, options.allow_globals)
    tensors = module_weights(ck) if options.zero_weights == "module" else ck.tensors
    n_in = len(tensors) + len(ck.aliases)
    cfg_dir = config_dir(src, folder)
    warnings: list[str] = [
        f"DeepSpeed ZeRO stage {ck.stage}, {ck.world_size} rank(s), deepspeed "
        f"{ck.ds_version or '?'}: " + ("the fp32 master weights from the optimizer partitions"
                                       if options.zero_weights == "fp32" else
                                       "the engine module's weights as saved")]
    if cfg_dir is None:
        warnings.append("no config.json beside the checkpoint: add the model's config.json "
                        "to the output before deploying")
    aliases = dict(ck.aliases) if options.zero_weights == "fp32" else {}
    renamed = _fit(tensors, aliases, options, cfg_dir, warnings)
    bad = [t.name for t in tensors if t.dtype not in TORCH_TO_ST]
    if bad:
        raise InputError(f"dtypes safetensors cannot hold: {', '.join(bad[:3])}", path=folder)
    skipped_files: list[SkippedItem] = []
    reader = Reader(ck.files)
    try:
        with atomic_dir(dst, overwrite=options.overwrite) as tmp:
            outputs, tensor_map = write_shards(
                tmp, tensors,
                lambda t: (t.name, TORCH_TO_ST[t.dtype], t.shape, t.nbytes),
                lambda t, w: w.write(tensor_bytes(assemble(reader, t))),
                options.max_shard_size, options.verify)
            if options.copy_other_files and cfg_dir is not None:
                for p in sorted(cfg_dir.iterdir()):
                    if not p.is_file() or p.name.startswith("."):
                        continue
                    if p.name in TRAINING_FILES or p.suffix not in _MODEL_FILE_SUFFIXES:
                        skipped_files.append(SkippedItem(
                            name=p.name, reason="training run state; not copied"))
                        continue
                    size, sha = copy_hashed(p, tmp / p.name)
                    outputs.append(FileRecord(path=p.name, role=file_role(p.name), size=size,
                                              sha256=sha))
            record_hashes(tmp, {o.path: o.sha256 for o in outputs})
    finally:
        reader.close()
    for a, b in aliases.items():
        tensor_map[a] = f"alias of {b}"
    dtypes = Counter(t.dtype for t in tensors)
    params = sum(math.prod(t.shape) for t in tensors)
    total = sum(t.nbytes for t in tensors)
    return ConvertReport(
        src=str(src), dst=str(dst),
        inputs=[InputFile(path=str(f.path), format=f"zero-{ck.stage} {f.format} pickle",
                          size=f.path.stat().st_size) for f in ck.files],
        state_dict_key=None, tensors_in=n_in, tensors_written=len(tensors), parameters=params,
        total_bytes=total, dtypes=dict(dtypes), outputs=outputs, aliases=aliases,
        overlapping_views=[], tensor_map=tensor_map, renamed=renamed,
        skipped_entries=[SkippedItem(name=w, reason=r) for w, r in ck.left_out],
        skipped_files=skipped_files, warnings=warnings, verified=options.verify,
        seconds=round(time.perf_counter() - t0, 3), verify_seconds=0.0)


__all__ = ["assemble", "convert_zero"]
