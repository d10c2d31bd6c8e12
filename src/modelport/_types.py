"""Result records shared by the verbs (pydantic, so every report has a stable JSON form)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FileRecord(Record):
    """A file written (or copied) into an output folder."""

    path: str  # relative to the output folder
    role: str  # weights, index, config, tokenizer, other
    size: int
    sha256: str
    tensors: int = 0


class SkippedItem(Record):
    """Something not carried into the output, and why."""

    name: str
    reason: str


def file_role(rel: str) -> str:
    """Classify a file of a model folder by its name."""
    name = rel.rsplit("/", 1)[-1]
    if name.endswith(".safetensors"):
        return "weights"
    if name.endswith(".index.json"):
        return "index"
    if name in ("tsfm_config.json",):
        return "tsfm"
    if name.startswith("tokenizer") or name in (
        "vocab.json", "vocab.txt", "merges.txt", "special_tokens_map.json", "added_tokens.json",
        "spiece.model", "sentencepiece.bpe.model", "chat_template.jinja", "chat_template.json",
    ):
        return "tokenizer"
    if name.endswith(".json"):
        return "config"
    return "other"


# the bundle's manifest file name (package writes it; quantize never carries one over)
MANIFEST = "modelport.manifest.json"

# what a model is served as, for the rules' ``applies_when.model_kind``: check and inspect
# both gate their tokenizer and tsfm findings on it
TIMESERIES_TYPES = frozenset({"tinytimemixer"})


def model_kind(model_type: str | None) -> Literal["general", "timeseries"]:
    return "timeseries" if model_type in TIMESERIES_TYPES else "general"
