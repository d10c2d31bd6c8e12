"""Execute a conversion plan: write shards streaming, hash while writing, prove, rename; one
report for every route."""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelport._io.atomic import atomic_dir
from modelport._io.hashcache import record as record_hashes
from modelport._io.hashing import copy_hashed, sha256_file
from modelport._io.urls import location
from modelport._types import FileRecord, SkippedItem, file_role
from modelport.convert.options import ConvertOptions
from modelport.convert.plan import ConvertPlan, plan_convert
from modelport.convert.report import ConvertReport, InputFile
from modelport.convert.shards import ShardPlan
from modelport.convert.writer import write_shards
from modelport.errors import CheckpointError, ModelportError


def _progress(total: int, enabled: bool | None, desc: str) -> object:
    if enabled is False:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                disable=None if enabled is None else not enabled, leave=False)


def execute(plan: ConvertPlan, *, progress: bool | None = None,
            before_shard: Callable[[ShardPlan], None] | None = None,
            after_shard: Callable[[ShardPlan, Path, FileRecord], None] | None = None
            ) -> ConvertReport:
    """Write the plan's outputs into a temp folder with the one writer
    (:mod:`modelport.convert.writer`), prove them, then rename into place.
    ``before_shard`` / ``after_shard`` run around each shard (a remote source fetches its
    tensors' bytes before and gives the scratch space back after; a remote destination
    uploads the written, verified shard)."""
    t0 = time.perf_counter()
    feed = plan.feed()
    notes: list[str] = []
    bar = _progress(plan.total_bytes, progress, "convert")
    try:
        with atomic_dir(plan.dst, overwrite=plan.options.overwrite) as tmp:
            outputs, tensor_map, verify_s = write_shards(
                tmp, plan.shards, feed, verify=plan.options.verify, aliases=plan.aliases,
                progress=bar, before_shard=before_shard, after_shard=after_shard)
            notes = _side_files(plan, tmp, outputs)
            record_hashes(tmp, {o.path: o.sha256 for o in outputs})
    except OSError as e:
        if isinstance(e, ModelportError):
            raise
        raise CheckpointError(f"cannot write output: {e.strerror or e}", path=plan.dst,
                              hint="check free space and permissions; nothing was left behind"
                              ) from e
    finally:
        feed.close()
        plan.close()
        if bar is not None:
            bar.close()  # type: ignore[attr-defined]
    for dropped, kept in plan.aliases.items():
        tensor_map[dropped] = f"alias of {kept}"
    return _report(plan, outputs, tensor_map, notes, time.perf_counter() - t0, verify_s)


def _side_files(plan: ConvertPlan, tmp: Path, outputs: list[FileRecord]) -> list[str]:
    """Copy the source's other files and write those the format implies (config.json,
    tokenizer), recording each in ``outputs``; the notes the format's side step gives."""
    for src, rel in plan.copies:
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        size, sha = copy_hashed(src, tmp / rel)
        outputs.append(FileRecord(path=rel, role=file_role(rel), size=size, sha256=sha))
    side = plan.opened.side if plan.opened is not None else None
    if side is None:
        return []
    notes = side(tmp)
    recorded = {o.path for o in outputs}
    for p in sorted(tmp.rglob("*")):  # what the side step wrote
        rel = p.relative_to(tmp).as_posix()
        if p.is_file() and not rel.startswith(".") and rel not in recorded:
            outputs.append(FileRecord(path=rel, role=file_role(rel), size=p.stat().st_size,
                                      sha256=sha256_file(p)))
    return notes


def _report(plan: ConvertPlan, outputs: list[FileRecord], tensor_map: dict[str, str],
            notes: list[str], seconds: float, verify_s: float) -> ConvertReport:
    """The one report of every route, from the plan and what was written."""
    written = [t for s in plan.shards for t in s.tensors]
    if plan.source is not None:
        src = plan.source
        origin, key, n_in = src.src, src.state_dict_key, len(src.tensors)
        inputs = [InputFile(path=str(f.path), format=f.format, size=os.path.getsize(f.path))
                  for f in src.files]
        dtypes = dict(Counter(t.dtype for t in src.tensors))
    else:
        op = plan.opened
        assert op is not None
        origin, key, n_in, inputs = op.src, op.state_dict_key, op.tensors_in, op.inputs
        dtypes = dict(Counter(t.dtype for t in op.tensors))
    entries, files = plan.skipped
    return ConvertReport(
        src=str(origin), dst=str(plan.dst), inputs=inputs, state_dict_key=key,
        tensors_in=n_in, tensors_written=len(written),
        parameters=sum(math.prod(t.shape) for t in written),
        total_bytes=plan.total_bytes, dtypes=dtypes, outputs=outputs,
        aliases=plan.aliases, overlapping_views=plan.overlapping, tensor_map=tensor_map,
        renamed=plan.renamed,
        skipped_entries=[SkippedItem(name=n, reason=r) for n, r in entries],
        skipped_files=[SkippedItem(name=n, reason=r) for n, r in files],
        warnings=[*plan.warnings, *notes], verified=plan.options.verify,
        seconds=round(seconds, 3), verify_seconds=round(verify_s, 3),
    )


def convert(
    src: str | Path, dst: str | Path, options: ConvertOptions | None = None, *,
    progress: bool | None = None, store: dict[str, Any] | None = None, **kwargs: object,
) -> ConvertReport:
    """Convert a pickled or safetensors checkpoint into verified safetensors shards.

    Args:
        src: a model folder, a single ``.bin``/``.pt``/``.pth``/``.ckpt``/``.safetensors``
            file, a ``torch.distributed.checkpoint`` folder (``.metadata`` + ``.distcp``), a
            DeepSpeed ZeRO checkpoint (a folder with ``latest``, or ``global_stepN/``), Meta's
            or Mistral's original layout, a ``.gguf`` file (or a folder holding one), or a
            llama2.c ``ckpt.pt``; :mod:`modelport.convert.formats` decides which.
        dst: the output folder (created; must not exist unless ``overwrite``).
        options: a :class:`ConvertOptions`; keyword arguments build one when omitted.
        progress: show a progress bar (None: only on a terminal or notebook).
        store: for ``s3://bucket/prefix`` sources: ``endpoint_url``, ``region``, ``profile``
            (credentials as boto3 finds them).

    Returns:
        A :class:`ConvertReport` listing every file written with its sha256 and the fate of
        every input tensor name.

    Raises:
        InputError, CheckpointError, UnsafeCheckpointError, UnsupportedError,
        VerificationError: nothing is left at ``dst`` in every case.

    Example:
        >>> report = modelport.convert("llama-bin/", "llama-st/", max_shard_size="2GB")
        >>> report.outputs[0].sha256
    """
    if options is None:
        options = ConvertOptions(**kwargs)  # type: ignore[arg-type]
    elif kwargs:  # validated (model_copy would take "2GB" as it is)
        options = ConvertOptions(**{**options.model_dump(), **kwargs})
    src, dst = location(src, what="SRC"), location(dst, what="DST")
    if isinstance(src, str) or isinstance(dst, str):
        from modelport.convert.remote_convert import convert_remote

        return convert_remote(src, dst, options, progress=progress, store=store)
    return execute(plan_convert(src, dst, options), progress=progress)


__all__ = ["ConvertReport", "convert", "execute"]
