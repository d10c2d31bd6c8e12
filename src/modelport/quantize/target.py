"""What quantize needs from a deployment target, passed in by the caller (the pipeline room
builds it from the package room's rules): quantize never imports the package room."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol


class TargetCheck(Protocol):
    """A target's verdicts on a quantization: before any work, and on the output."""

    name: str

    def preflight(self, model_type: str, planned: dict[str, Any]) -> list[str]:
        """The errors the target would report for this method, bits and architecture."""
        ...

    def check(self, folder: Path) -> tuple[int, int]:
        """(errors, warnings) of the target's full check on the written folder."""
        ...
