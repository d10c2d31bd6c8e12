"""The records ``inspect`` returns (a model folder or file, described without reading
tensor data)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from modelport._types import Record


class Problem(Record):
    severity: Literal["error", "warning"]
    file: str | None
    message: str


class WeightFile(Record):
    path: str
    format: str  # safetensors, zip pickle, legacy pickle, unreadable
    size: int
    tensors: int = 0
    parameters: int = 0
    tensor_bytes: int = 0
    dtypes: dict[str, int] = Field(default_factory=dict)
    metadata_format: str | None = None  # safetensors __metadata__["format"], if any
    has_metadata: bool | None = None
    state_dict_key: str | None = None
    aliases: int = 0


class IndexInfo(Record):
    path: str
    files: list[str]
    tensors: int
    total_size: int | None
    consistent: bool


class ConfigInfo(Record):
    model_type: str | None = None
    architectures: list[str] = Field(default_factory=list)
    torch_dtype: str | None = None
    quantization: str | None = None
    remote_code: bool = False
    tie_word_embeddings: bool | None = None


class InspectReport(Record):
    """What ``inspect`` found; ``problems`` holds everything that would stop a platform."""

    path: str
    kind: Literal["folder", "file"]
    weight_files: list[WeightFile]
    indexes: list[IndexInfo]
    config: ConfigInfo | None
    tokenizer_files: list[str]
    other_files: list[str]
    tensors: int
    parameters: int
    weight_bytes: int
    dtypes: dict[str, int]
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)
    remote_bytes_fetched: int | None = Field(
        None, description="s3:// paths: bytes read from the store (headers only)")


__all__ = ["ConfigInfo", "IndexInfo", "InspectReport", "Problem", "WeightFile"]
