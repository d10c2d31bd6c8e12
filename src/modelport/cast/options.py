"""Options of ``normalize`` (imports only pydantic, so ``--help`` never loads torch)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class NormalizeOptions(BaseModel):
    """How ``normalize`` fixes safetensors metadata, dtypes, config.json and the index."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dtype: Literal["fp16", "bf16", "fp32"] | None = Field(
        None, description="cast floating tensors to this dtype (never integer, bool, fp8 or "
        "quantization tensors)",
    )
    on_overflow: Literal["error", "clamp"] = Field(
        "error", description="values beyond the target range: refuse ('error') or saturate "
        "('clamp')",
    )
    in_place: bool = Field(False, description="change DIR itself (each file atomically)")
    link: bool = Field(False, description="hard-link unchanged files into --out instead of "
                       "copying (same file system)")
    dry_run: bool = Field(False, description="report what would change; write nothing")
    verify: bool = Field(True, description="hash every data region before and after and "
                         "re-read every rewritten tensor")
    insert_range: bool = Field(True, description="in place, grow headers with fallocate "
                               "INSERT_RANGE (ext4/xfs) instead of rewriting the file")
    overwrite: bool = Field(False, description="replace --out if it exists")


__all__ = ["NormalizeOptions"]
