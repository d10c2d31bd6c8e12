"""The records ``check`` reports (their JSON Schema is check-report.schema.json)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from modelport._types import Record

SCHEMA_VERSION = 1


class Finding(Record):
    """One rule that did not pass."""

    rule_id: str
    severity: Literal["error", "warning", "info"]
    file: str | None = None
    message: str
    detail: str = ""
    fix: str = ""
    command: str | None = Field(None, description="the modelport command that fixes it")
    unconfirmed: bool = False
    sources: list[str] = Field(default_factory=list)


class HardwareAdvice(Record):
    fits: bool
    recommendation: str
    tier: str | None = None
    gpus: int | None = None
    gpu_memory_gb: float | None = None
    notes: list[str] = Field(default_factory=list)
    unconfirmed: bool = False
    caution: str | None = Field(None, description="fits only by the page's own examples, "
                                "against its sizing guideline: a warning")


class TargetReport(Record):
    target: str
    title: str
    spec: str | None
    spec_name: str | None = None  # as the platform names it (watsonx-cfm-caikit-1.1)
    findings: list[Finding]
    hardware: HardwareAdvice
    errors: int
    warnings: int

    @property
    def ok(self) -> bool:
        return self.errors == 0


class Facts(Record):
    """What the rules look at, read from headers and configs."""

    model_type: str | None
    architectures: list[str]
    model_kind: Literal["general", "timeseries"]
    quant_method: str | None
    quant_bits: int | None
    parameters: int = Field(description="parameters; for quantized weights, before packing")
    tensors: int
    weight_bytes: int
    dtypes: dict[str, int]
    weight_formats: list[str]


class CheckReport(Record):
    """The ``--json`` schema of ``modelport check`` (schema_version 1)."""

    schema_version: int = SCHEMA_VERSION
    path: str
    facts: Facts
    targets: list[TargetReport]
    ok: bool
    seconds: float
