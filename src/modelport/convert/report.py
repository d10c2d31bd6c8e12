"""What ``convert`` reports, whichever route wrote the folder."""

from __future__ import annotations

from pydantic import Field

from modelport._types import FileRecord, Record, SkippedItem
from modelport._version import __version__


class InputFile(Record):
    path: str
    format: str
    size: int


class ConvertReport(Record):
    """What ``convert`` did; every input tensor name is accounted for in ``tensor_map``."""

    src: str
    dst: str
    inputs: list[InputFile]
    state_dict_key: str | None
    tensors_in: int
    tensors_written: int
    parameters: int
    total_bytes: int
    dtypes: dict[str, int]
    outputs: list[FileRecord]
    aliases: dict[str, str] = Field(description="name not written -> name it aliases")
    overlapping_views: list[list[str]]
    tensor_map: dict[str, str] = Field(description="input name -> output file, or 'alias of X'")
    renamed: dict[str, str] = Field(default_factory=dict, description="a training framework's "
                                    "name -> the model's (prefixes removed to fit config.json)")
    skipped_entries: list[SkippedItem]
    skipped_files: list[SkippedItem]
    warnings: list[str]
    verified: bool
    seconds: float
    verify_seconds: float
    modelport_version: str = __version__
    remote_bytes_fetched: int | None = Field(
        None, description="s3:// sources: bytes read from the store (headers + tensors)")
    remote_requests: int | None = None
    remote_scratch_peak: int | None = Field(
        None, description="s3:// sources: most local disk the mirror held at once")
    remote_read: str | None = Field(
        None, description="s3:// sources: 'ranges' (each shard's tensor bytes, Hugging Face "
        "weights) or 'whole files' (a computed format, downloaded first)")


__all__ = ["ConvertReport", "InputFile"]
