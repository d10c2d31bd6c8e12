"""The records ``inspect`` returns (a model folder or file, described without reading
tensor data)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from modelport._types import Record, human_bytes


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

    def summary(self) -> str:
        """What ``modelport inspect`` prints."""
        rep = self
        lines = [f"{rep.path} ({rep.kind})"]
        if rep.config:
            c = rep.config
            lines.append(f"  model_type {c.model_type}  architectures "
                         f"{', '.join(c.architectures)}"
                         + (f"  dtype {c.torch_dtype}" if c.torch_dtype else "")
                         + (f"  quantization {c.quantization}" if c.quantization else ""))
        for w in rep.weight_files:
            meta = ""
            if w.format == "safetensors":
                meta = f"  metadata format={w.metadata_format}" if w.has_metadata \
                    else "  no metadata"
            extra = f"  aliases {w.aliases}" if w.aliases else ""
            key = f"  under {w.state_dict_key!r}" if w.state_dict_key else ""
            lines.append(f"  {w.path}: {w.format}, {w.tensors} tensors, {w.parameters:,} "
                         f"params, {human_bytes(w.size)}{meta}{extra}{key}")
        for ix in rep.indexes:
            lines.append(f"  {ix.path}: {ix.tensors} tensors in {len(ix.files)} file(s), "
                         f"{'consistent' if ix.consistent else 'INCONSISTENT'}")
        lines.append(f"  total: {rep.tensors} tensors, {rep.parameters:,} parameters, "
                     f"{human_bytes(rep.weight_bytes)}, dtypes "
                     + ", ".join(f"{d}×{n}" for d, n in sorted(rep.dtypes.items())))
        if rep.tokenizer_files:
            lines.append(f"  tokenizer files: {', '.join(rep.tokenizer_files)}")
        for p in rep.problems:
            lines.append(f"  {p.severity}: {p.file + ': ' if p.file else ''}{p.message}")
        return "\n".join(lines)


__all__ = ["ConfigInfo", "IndexInfo", "InspectReport", "Problem", "WeightFile"]
