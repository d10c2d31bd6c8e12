"""What a path is, decided in one place: the ordered registry of checkpoint formats.

``detect`` asks each format in turn, cheaply and without importing torch, whether it claims
the path (and which root: a ZeRO tag folder, DCP's Trainer subfolder, the ``.gguf`` file of a
folder); the Hugging Face reader (a folder of safetensors or pickles, or one weight file)
takes the rest. ``convert``, ``inspect``, ``prepare``, ``--dry-run``, ``s3://`` sources and the
Spark jobs ask it; ``inspect`` lists a format through its inspector (a new format can use
``inspect_opened``: what its opener says ``convert`` writes).
Each format also says which convert options it applies; :func:`check_options` refuses, in one
line, an option a route would otherwise ignore.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelport.errors import InputError

# switches that turn a step off are honoured by every route (a route without the step)
_ALWAYS = {"verify", "overwrite", "fit_names", "copy_other_files"}
_FLAGS = {"max_shard_size": "--max-shard-size", "state_dict_key": "--state-dict-key",
          "strip_prefix": "--strip-prefix", "aliases": "--aliases",
          "allow_globals": "--allow-global", "zero_weights": "--weights",
          "rope_scaling_factor": "--rope-scaling-factor"}


@dataclass(frozen=True)
class Format:
    """One checkpoint format: how it is recognised and how it is opened."""

    name: str
    label: str
    detector: str | None  # "module:function": path -> the root it claims, or None
    # "module:function": (src, ConvertOptions) -> convert.opened.Opened, the tensors computed
    # one at a time; None: the Hugging Face reader (file regions, copied byte for byte)
    opener: str | None
    options: frozenset[str]  # ConvertOptions fields this route applies, beyond _ALWAYS
    # "module:function": (path, root, problems, allow_globals) -> (WeightFile, the files it
    # read), what ``inspect`` lists; None: the Hugging Face walk over the folder's files
    inspector: str | None = None

    @property
    def regions(self) -> bool:
        """Its tensors are regions of its files: s3:// sources and Spark split the work."""
        return self.opener is None


_M = "modelport.convert."
REGISTRY: tuple[Format, ...] = (
    Format("dcp", "torch.distributed.checkpoint", _M + "dcp_convert:dcp_folder",
           _M + "dcp_convert:open_dcp",
           frozenset({"max_shard_size", "state_dict_key", "strip_prefix"}),
           _M + "inspect_formats:inspect_dcp"),
    Format("zero", "DeepSpeed ZeRO checkpoint", _M + "zero:zero_folder",
           _M + "zero_convert:open_zero",
           frozenset({"max_shard_size", "strip_prefix", "allow_globals", "zero_weights"}),
           _M + "inspect_formats:inspect_zero"),
    Format("meta", "Meta's or Mistral's original layout (params.json)",
           _M + "meta_llama:meta_root", _M + "meta_llama:open_meta",
           frozenset({"max_shard_size", "allow_globals", "rope_scaling_factor"})),
    Format("gguf", "GGUF (llama.cpp)", _M + "formats:gguf_file",
           _M + "gguf_source:open_gguf", frozenset({"max_shard_size"}),
           _M + "inspect_formats:inspect_gguf"),
    Format("llama2c", "llama2.c training checkpoint", _M + "llama2c:llama2c_file",
           _M + "llama2c:open_llama2c", frozenset({"max_shard_size", "allow_globals"})),
    Format("megatron", "Megatron-LM checkpoint (mp_rank_XX/model_optim_rng.pt)",
           _M + "megatron:megatron_root", _M + "megatron:open_megatron",
           frozenset({"max_shard_size", "allow_globals"}), _M + "inspect_formats:inspect_opened"),
    Format("hf", "Hugging Face weights (safetensors or pickles)", None, None,
           frozenset({"max_shard_size", "state_dict_key", "strip_prefix", "aliases",
                      "allow_globals"})),
)
BY_NAME = {f.name: f for f in REGISTRY}


def gguf_file(path: Path) -> Path | None:
    """A ``.gguf`` file, or the one ``.gguf`` of a folder that holds no other weights."""
    if path.is_file():
        return path if path.suffix == ".gguf" else None
    if not path.is_dir():
        return None
    ggufs = sorted(p for p in path.iterdir() if p.suffix == ".gguf" and p.is_file())
    others = [p for p in path.iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".pth")]
    return ggufs[0] if len(ggufs) == 1 and not others else None


def load(spec: str) -> Any:
    """The function a ``"module:function"`` spec names, imported only now."""
    module, func = spec.split(":")
    return getattr(importlib.import_module(module), func)


def detect(path: str | Path) -> tuple[Format, Path]:
    """(format, root): the first format of :data:`REGISTRY` that claims ``path``."""
    path = Path(path)
    for fmt in REGISTRY:
        if fmt.detector is None:
            return fmt, path
        root = load(fmt.detector)(path)
        if root is not None:
            return fmt, Path(root)
    raise AssertionError("the registry ends with a format that takes every path")


def options_help() -> str:
    """The options each format applies, for ``modelport convert --help`` (from the registry,
    so the help cannot drift from what is refused)."""
    lines = ["\b", "Options by format (another is refused, never ignored):"]
    order = list(_FLAGS)
    for fmt in REGISTRY:
        flags = [_FLAGS[o] for o in sorted(fmt.options, key=order.index)]
        lines.append(f"  {fmt.name:8s} {' '.join(flags)}")
    regions = ", ".join(f.name for f in REGISTRY if f.regions)
    lines.append("--dry-run, s3:// destinations and Spark take every format; an s3:// source "
                 f"is read by byte ranges ({regions}) or downloaded whole first (the others)")
    return "\n".join(lines)


def check_options(fmt: Format, options: Any) -> None:
    """Refuse an option set away from its default that this format's route does not apply.

    Raises:
        InputError: naming the flag and the format.
    """
    defaults = type(options)()
    for name in type(options).model_fields:
        if name in _ALWAYS or name in fmt.options:
            continue
        if getattr(options, name) != getattr(defaults, name):
            flag = _FLAGS.get(name, name)
            raise InputError(f"{flag} does not apply to a {fmt.label}",
                             hint=f"drop {flag}; `modelport convert --help` says which "
                             "options each format takes")


__all__ = ["BY_NAME", "REGISTRY", "Format", "check_options", "detect", "gguf_file", "load",
           "options_help"]
