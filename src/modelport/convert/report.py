"""What ``convert`` reports, whichever route wrote the folder."""

from __future__ import annotations

from pydantic import Field

from modelport._types import FileRecord, Record, SkippedItem, human_bytes
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

    def summary(self) -> str:
        """What ``modelport convert`` prints."""
        rep = self
        rate = rep.total_bytes / rep.seconds if rep.seconds else 0.0
        formats = ", ".join(sorted({i.format for i in rep.inputs}))
        lines = [
            f"converted {rep.tensors_in} tensors ({rep.parameters:,} parameters, "
            f"{human_bytes(rep.total_bytes)}) from {formats}"
            f" in {rep.seconds:.2f} s ({human_bytes(rate)}/s)"
            + (f", verified in {rep.verify_seconds:.2f} s" if rep.verified else ", NOT verified"),
        ]
        lines += [f"  {o.path}  {human_bytes(o.size)}  sha256 {o.sha256[:16]}…"
                  for o in rep.outputs]
        lines += [f"  alias: {a} -> {b} (written once)" for a, b in rep.aliases.items()]
        lines += [f"  overlapping views written as copies: {', '.join(g)}"
                  for g in rep.overlapping_views]
        lines += [f"  skipped {s.name}: {s.reason}" for s in rep.skipped_entries[:20]]
        if len(rep.skipped_entries) > 20:
            lines.append(f"  ... {len(rep.skipped_entries) - 20} more skipped entries (--json)")
        lines += [f"  not copied {s.name}: {s.reason}" for s in rep.skipped_files]
        lines += [f"  warning: {w}" for w in rep.warnings]
        if rep.remote_bytes_fetched is not None:
            how = "ranged GETs" if rep.remote_read == "ranges" else "GETs of whole files"
            lines.append(f"  read {human_bytes(rep.remote_bytes_fetched)} from the store in "
                         f"{rep.remote_requests} {how}; local scratch peak "
                         f"{human_bytes(rep.remote_scratch_peak or 0)}")
        return "\n".join(lines)


__all__ = ["ConvertReport", "InputFile"]
