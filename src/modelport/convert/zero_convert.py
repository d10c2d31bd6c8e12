"""DeepSpeed ZeRO checkpoints opened for ``convert``: each parameter assembled from its pieces
of the flat fp32 partitions (or taken from the 16-bit module) when the writer reaches it;
optimizer state left out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelport._types import SkippedItem
from modelport.convert.dcp_convert import config_dir
from modelport.convert.opened import Opened, Produced
from modelport.convert.options import ConvertOptions
from modelport.convert.report import InputFile
from modelport.convert.side_files import other_files
from modelport.convert.sources import Reader
from modelport.convert.zero import ZeroTensor, module_weights, read_zero, zero_folder

# files of a training run's checkpoint folder that are not the model's


def assemble(reader: Reader, t: ZeroTensor) -> Any:
    """The tensor ``t``, copied out of the mapped files (cast where its dtype differs)."""
    import torch

    dtype = getattr(torch, t.dtype)
    out = torch.empty(t.shape, dtype=dtype)
    flat, pos = out.reshape(-1), 0
    for part, start, numel in t.parts():
        flat[pos: pos + numel].copy_(reader.tensor(part).reshape(-1)[start: start + numel])
        reader.release(part)  # copied: the mapped pages need not stay resident
        pos += numel
    return out


def spans(reader: Reader, t: ZeroTensor) -> list[tuple[Path, int, int]] | None:
    """The file ranges whose concatenation is ``t``, when every piece is stored plainly in
    ``t``'s dtype (fp32 partitions into fp32); None when it is cast (then computed)."""
    out = []
    for src, start, numel in t.parts():
        span = reader.span(src, start, numel) if src.dtype == t.dtype else None
        if span is None:
            return None
        out.append(span)
    return out


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


def open_zero(src: Path, options: ConvertOptions) -> Opened:
    """Open the ZeRO checkpoint under ``src`` (see :func:`zero_folder`) from its pickles'
    structure (no tensor data read)."""
    folder = zero_folder(src)
    assert folder is not None
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
    names = [] if cfg_dir is None else [p.name for p in sorted(cfg_dir.iterdir())
                                         if p.is_file() and not p.name.startswith(".")]
    kept, left = other_files(names, set())
    copies = [cfg_dir / n for n in kept] if cfg_dir is not None else []
    skipped_files = [SkippedItem(name=x.name, reason=x.reason) for x in left]
    reader = Reader(ck.files)
    return Opened(
        src=src, tensors_in=n_in, aliases=aliases, renamed=renamed, warnings=warnings,
        copy_files=copies, skipped_files=skipped_files, closers=[reader.close],
        inputs=[InputFile(path=str(f.path), format=f"zero-{ck.stage} {f.format} pickle",
                          size=f.path.stat().st_size) for f in ck.files],
        skipped_entries=[SkippedItem(name=w, reason=r) for w, r in ck.left_out],
        tensors=[Produced(t.name, t.dtype, tuple(t.shape), t.nbytes,
                          lambda t=t: assemble(reader, t), lambda t=t: spans(reader, t))
                 for t in tensors])


__all__ = ["assemble", "open_zero", "spans"]
