"""Distributed checkpoints (torch.distributed.checkpoint) opened for ``convert``: every model
tensor reassembled from its chunks when the writer reaches it; optimizer state and other
entries listed as left out."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from modelport._types import SkippedItem
from modelport.convert.dcp import DcpTensor, assemble, is_dcp, read_metadata, spans
from modelport.convert.opened import Opened, Produced
from modelport.convert.options import ConvertOptions
from modelport.convert.report import InputFile
from modelport.convert.side_files import other_files
from modelport.errors import InputError

TRAINER_SUBDIR = "pytorch_model_fsdp_0"  # the HF Trainer's FSDP checkpoint folder


def dcp_folder(src: Path) -> Path | None:
    """The DCP folder of ``src``: itself, or the HF Trainer's ``pytorch_model_fsdp_0/``."""
    if src.is_dir() and is_dcp(src):
        return src
    sub = src / TRAINER_SUBDIR
    return sub if src.is_dir() and is_dcp(sub) else None


# top-level entries of training state (torchtitan, torchtune, accelerate, Lightning Fabric)
TRAINING_STATE = {"optim", "optimizer", "optimizers", "lr_scheduler", "lr_schedulers",
                  "scheduler", "schedulers", "rng_state", "dataloader", "train_state", "step",
                  "epoch", "extra_state"}


def _select(tensors: list[DcpTensor], other: list[str], key: str | None, fits_config: bool
            ) -> tuple[list[DcpTensor], str | None, list[SkippedItem]]:
    """The model's tensors: those under ``key``, else all but the training state."""
    tops = Counter(t.fqn.split(".", 1)[0] for t in tensors)
    if key is not None and key not in tops:
        raise InputError(f"no entry {key!r} in the checkpoint",
                         hint=f"top-level keys: {', '.join(sorted(tops))}")
    drop = {k for k in tops if (k != key if key else k in TRAINING_STATE)}
    keep = [t for t in tensors if t.fqn.split(".", 1)[0] not in drop]
    chosen = key
    # the app-state layout {"model": ..., "optim": ...}: strip the container's name unless
    # the model's own names start with it (config.json decides, through fit_names later)
    if key is None and drop and not fits_config and keep and all(
            t.fqn.startswith("model.") for t in keep):
        chosen = "model"
    if chosen is not None:
        for t in keep:
            t.fqn = t.fqn[len(chosen) + 1:]
    skipped = [SkippedItem(name=k, reason=f"training state ({n} tensor(s)); not converted")
               for k, n in sorted(tops.items()) if k in drop]
    skipped += [SkippedItem(name=o, reason="not a tensor; not converted") for o in other]
    return keep, chosen, skipped


def config_dir(src: Path, folder: Path) -> Path | None:
    """Where a training checkpoint's config.json is: its own folder, SRC, or SRC's parent."""
    for d in (folder, src, src.parent):
        if (d / "config.json").is_file():
            return d
    return None


def open_dcp(src: Path, options: ConvertOptions) -> Opened:
    """Open the distributed checkpoint in ``src`` (see :func:`dcp_folder`) from its metadata."""
    from modelport.convert.framework_names import model_renaming

    folder = dcp_folder(src)
    assert folder is not None
    tensors, other = read_metadata(folder)
    n_in = len(tensors)
    cfg_dir = config_dir(src, folder)
    tensors, key, skipped = _select(tensors, other, options.state_dict_key, cfg_dir is not None)
    warnings: list[str] = []
    renamed, note = model_renaming([t.fqn for t in tensors], cfg_dir,
                                   strip_prefix=options.strip_prefix, fit=options.fit_names)
    for t in tensors:
        t.fqn = renamed.get(t.fqn, t.fqn)
    if note:
        warnings.append(note)
    if cfg_dir is None:
        warnings.append("no config.json beside the checkpoint: add the model's config.json "
                        "to the output before deploying")
    names = [] if cfg_dir is None else [p.name for p in sorted(cfg_dir.iterdir())
                                         if p.is_file() and not p.name.startswith(".")]
    copies, left = other_files(names, {n for n in names if n.endswith(".distcp")})
    return Opened(
        src=src, tensors_in=n_in, state_dict_key=key, renamed=renamed,
        skipped_entries=skipped, warnings=warnings,
        copy_files=[cfg_dir / n for n in copies] if cfg_dir is not None else [],
        skipped_files=[SkippedItem(name=x.name, reason=x.reason) for x in left],
        inputs=[InputFile(path=str(p), format="dcp", size=p.stat().st_size)
                for p in sorted(folder.glob("*.distcp"))],
        tensors=[Produced(t.fqn, t.dtype, tuple(t.shape), t.nbytes, None,
                          lambda t=t: spans(folder, t),
                          lambda out, t=t: assemble(folder, t, out)) for t in tensors])


__all__ = ["config_dir", "dcp_folder", "open_dcp"]

