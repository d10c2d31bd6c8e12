"""What Databricks' fine-tuning page (seed 002) says beyond the line format: the base models
and their context lengths, the retired ones and their dates, continued pre-training's file
sizes and token counts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import Field

from modelport._types import Record

SOURCE = ("https://docs.databricks.com/aws/en/large-language-models/foundation-model-training "
          "(seed 002)")
# "Supported models": name -> maximum context length
SUPPORTED: dict[str, int] = {
    "meta-llama/Llama-3.2-1B": 131072, "meta-llama/Llama-3.2-1B-Instruct": 131072,
    "meta-llama/Llama-3.2-3B": 131072, "meta-llama/Llama-3.2-3B-Instruct": 131072,
    "meta-llama/Meta-Llama-3.1-70B": 131072, "meta-llama/Meta-Llama-3.1-70B-Instruct": 131072,
    "meta-llama/Meta-Llama-3.1-8B": 131072, "meta-llama/Meta-Llama-3.1-8B-Instruct": 131072,
}
# "Retired models": name -> (context length, no longer supported after)
RETIRED: dict[str, tuple[int, dt.date]] = {
    "mistralai/Mistral-7B-v0.1": (32768, dt.date(2025, 4, 30)),
    "mistralai/Mistral-7B-Instruct-v0.2": (32768, dt.date(2025, 4, 30)),
    "mistralai/Mixtral-8x7B-v0.1": (32768, dt.date(2025, 4, 30)),
    "databricks/dbrx-base": (32768, dt.date(2025, 4, 30)),
    "databricks/dbrx-instruct": (32768, dt.date(2025, 4, 30)),
}
# "after January 30, 2025 the Meta Llama 3.1 405B model family is retired"
RETIRED_FAMILIES = {"meta-llama/Meta-Llama-3.1-405B": dt.date(2025, 1, 30),
                    "meta-llama/Llama-3.1-405B": dt.date(2025, 1, 30)}
PRETRAIN_MIN_MB, PRETRAIN_MAX_MB, PRETRAIN_SLOW_GB = 60, 256, 1
PRETRAIN_MIN_TOKENS = 1_500_000


class BaseModel(Record):
    name: str
    context_length: int | None = Field(None, description="from the page's table")
    status: Literal["supported", "retired", "unknown"]
    retired_after: str | None = None


def base_model(name: str) -> BaseModel:
    """The page's word on a base model (a Hugging Face id; case and a trailing slash aside)."""
    key = name.strip().rstrip("/")
    low = {k.lower(): k for k in (*SUPPORTED, *RETIRED, *RETIRED_FAMILIES)}
    canon = low.get(key.lower())
    if canon is None and "405b" in key.lower() and "llama-3.1" in key.lower():
        canon = "meta-llama/Meta-Llama-3.1-405B"
    if canon in SUPPORTED:
        return BaseModel(name=canon, context_length=SUPPORTED[canon], status="supported")
    if canon in RETIRED:
        ctx, when = RETIRED[canon]
        return BaseModel(name=canon, context_length=ctx, status="retired",
                         retired_after=when.isoformat())
    if canon in RETIRED_FAMILIES:
        return BaseModel(name=canon, status="retired",
                         retired_after=RETIRED_FAMILIES[canon].isoformat())
    return BaseModel(name=key, status="unknown")


def pretraining_files(src: Path) -> list[Path]:
    """The text files of a continued pre-training folder (or the one file)."""
    if src.is_file():
        return [src]
    return sorted(p for p in src.rglob("*") if p.is_file() and p.suffix in (".txt", ".text")
                  and not any(part.startswith(".") for part in p.relative_to(src).parts))
