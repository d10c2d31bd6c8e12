"""A target's rules as the ``TargetCheck`` that ``quantize`` takes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelport.package.check import check, quant_problems
from modelport.package.rules import load_target, resolve_target


class RulesCheck:
    """``quantize``'s view of one target: its quantization formats and its full check."""

    def __init__(self, name: str) -> None:
        self.name = resolve_target(name)
        self.rules = load_target(self.name)

    def preflight(self, model_type: str, planned: dict[str, Any]) -> list[str]:
        return quant_problems(self.rules, model_type, planned, errors_only=True)

    def check(self, folder: Path) -> tuple[int, int]:
        res = check(folder, [self.name]).targets[0]
        return res.errors, res.warnings
