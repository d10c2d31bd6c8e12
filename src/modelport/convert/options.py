"""Options of ``convert`` (imports only pydantic, so ``--help`` never loads torch)."""

from __future__ import annotations

import re
import warnings
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_size(text: str | int) -> int:
    """'5GB' -> 5_000_000_000, '512MiB' -> 536_870_912, 1000 -> 1000 (the Hub's units)."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*", text, re.IGNORECASE)
    if not m:
        raise ValueError(f"not a size: {text!r} (e.g. 5GB, 512MiB, 1000000)")
    return int(float(m.group(1)) * _UNITS[(m.group(2) or "").upper()])


class ConvertOptions(BaseModel):
    """How ``convert`` turns a checkpoint into safetensors."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_shard_size: int = Field(
        5 * 10**9, gt=0, description="largest output shard in bytes (the Hub's 5GB default)"
    )
    state_dict_key: str | None = Field(
        None, description="where the tensors are in a training checkpoint, e.g. 'state_dict' "
        "(nested keys joined with '/'); found automatically when omitted",
    )
    strip_prefix: str | None = Field(
        None, description="remove this prefix from tensor names, e.g. 'model.'"
    )
    fit_names: bool = Field(
        True, description="remove training frameworks' prefixes (model., module., _orig_mod., "
        "_fsdp_wrapped_module., ...) when the result is exactly the names of the model "
        "config.json describes",
    )
    aliases: Literal["dedupe", "copy"] = Field(
        "dedupe", description="exact aliases (tied weights): write once ('dedupe', what "
        "transformers expects) or once per name ('copy')",
    )
    allow_globals: tuple[str, ...] = Field(
        (), description="extra pickle globals (module.name) to accept as inert records; "
        "they are never imported or run",
    )
    verify: bool = Field(True, description="re-read every output and compare with the source")
    overwrite: bool = Field(False, description="replace DST if it exists")
    copy_other_files: bool = Field(
        True, description="copy config, tokenizer and other non-weight files of a folder"
    )
    zero_weights: Literal["fp32", "module"] = Field(
        "fp32", description="DeepSpeed ZeRO checkpoints: the fp32 master weights from the "
        "optimizer partitions ('fp32', what zero_to_fp32.py writes) or the 16-bit weights "
        "of the engine's module ('module', stages 1 and 2)",
    )
    rope_scaling_factor: float | None = Field(
        None, gt=0, description="Meta's original layout with use_scaled_rope and no factor in "
        "params.json: Llama 3.1 and 3.3 use 8, Llama 3.2 uses 32",
    )

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: object) -> object:
        """``max_shard_bytes`` (modelport 0.1) is ``max_shard_size`` now, as transformers,
        huggingface_hub and the CLI spell it; the old name still works, with a warning."""
        if isinstance(data, dict) and "max_shard_bytes" in data:
            warnings.warn("max_shard_bytes is now max_shard_size (an int of bytes or a size "
                          "such as '5GB')", DeprecationWarning, stacklevel=4)
            data = dict(data)
            old = data.pop("max_shard_bytes")
            data.setdefault("max_shard_size", old)
        return data

    @field_validator("max_shard_size", mode="before")
    @classmethod
    def _size(cls, v: object) -> object:
        return parse_size(v) if isinstance(v, str) else v

    @field_validator("allow_globals")
    @classmethod
    def _globals(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for g in v:
            if not re.fullmatch(r"[A-Za-z_][\w.]*\.[A-Za-z_]\w*", g):
                raise ValueError(f"not a module.name global: {g!r}")
        return v
