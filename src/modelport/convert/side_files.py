"""The one copy policy for the files of a model folder that are not the weights a route
reads: model files (config, tokenizer, generation config, README, sub-folders such as
``1_Pooling/``) go to the output as they are; a training run's state and weight files the route
does not read are listed as not copied, with the reason."""

from __future__ import annotations

from pathlib import Path

from modelport.convert.state_dict import Skipped

PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"}
TRAINING_STATE = {"latest", "trainer_state.json", "training_args.bin", "zero_to_fp32.py",
                  "zero_to_torch.py"}
_STATE_PREFIXES = ("optimizer", "scheduler", "rng_state")


def training_state(rel: str) -> bool:
    """A training run's state rather than the model (optimizer, scheduler, RNG, trainer)."""
    name = Path(rel).name
    return name in TRAINING_STATE or (Path(rel).suffix in PICKLE_SUFFIXES
                                      and name.startswith(_STATE_PREFIXES))


def other_files(rels: list[str], claimed: set[str]) -> tuple[list[str], list[Skipped]]:
    """(files to copy, files left out with the reason) of ``rels`` that are not in
    ``claimed`` (see the module docstring)."""
    copy: list[str] = []
    skipped: list[Skipped] = []
    for r in rels:
        if r in claimed:
            continue
        weights = Path(r).suffix in PICKLE_SUFFIXES or r.endswith(".safetensors")
        if training_state(r):
            skipped.append(Skipped(r, "training run state; not copied"))
        elif weights:
            skipped.append(Skipped(r, "weights file not converted (not part of the model)"))
        else:
            copy.append(r)
    return copy, skipped


__all__ = ["PICKLE_SUFFIXES", "TRAINING_STATE", "other_files", "training_state"]
