"""Target rules as data: one TOML file per catalogue in ``targets/``, validated by these
models. Adding a platform is adding a file; :mod:`modelport.package.check` is the one engine.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from functools import cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from modelport.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Severity = Literal["error", "warning", "info"]
CheckKind = Literal[
    "config_present", "config_keys", "file_present", "arch_supported", "quant_allowed",
    "weights_safetensors", "st_metadata", "index_consistent", "chat_template", "remote_code",
    "bf16_weights", "config_value", "family_in", "single_capability", "hardware_fit",
    "quant_format",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Model):
    """Where a rule comes from: a URL or a seed page, and when it was read."""

    url: str
    retrieved: date
    quote: str = ""
    unconfirmed: bool = False


class Architecture(_Model):
    """One certified architecture row (watsonx tables)."""

    model_type: str
    quantization: list[str] = Field(default_factory=list)
    unconfirmed_quantization: list[str] = Field(default_factory=list)
    tensor_parallel: bool = True
    sizes: list[str] = Field(default_factory=list)
    specs: list[str] = Field(default_factory=list)
    examples: list[str] = Field(default_factory=list)


class ListedShape(_Model):
    """The unit shape the platform lists for one of a family's models: its size, and its
    bytes a parameter where the listing names a precision (FP8: 1)."""

    params_b: float
    shape: str
    bytes_per_param: float | None = None


class UnitShape(_Model):
    """One dedicated AI cluster unit shape of the page: its limit name, the units to request
    and the AI units it counts; ``gpu_gb`` (the GPUs' memory) is not on the page."""

    name: str
    limit: str
    units: int
    ai_units: float
    gpu_gb: float


class Family(_Model):
    """A model family a platform lists (Databricks provisioned throughput, OCI imports)."""

    name: str
    architectures: list[str] = Field(default_factory=list)
    model_types: list[str] = Field(default_factory=list)
    capability: Literal["TEXT_TO_TEXT", "IMAGE_TEXT_TO_TEXT", "EMBEDDING", "RERANK"] = \
        "TEXT_TO_TEXT"
    shapes: list[ListedShape] = Field(default_factory=list)
    unconfirmed: bool = False


class QuantFormat(_Model):
    """What a target's runtime loads for one quantization method (``quantization_config``)."""

    method: str
    bits: list[int]
    group_sizes: list[int]
    sym: list[bool] | None = Field(None, description="allowed 'sym' (GPTQ); None: any")
    zero_point: list[bool] | None = Field(None, description="allowed 'zero_point' (AWQ)")
    formats: list[str] = Field(description="GPTQ checkpoint_format / AWQ version")
    sources: list[str] = Field(min_length=1)
    unconfirmed: bool = False


class AppliesWhen(_Model):
    model_kind: Literal["general", "timeseries"] | None = None
    model_type: list[str] | None = None
    spec: list[str] | None = None
    quantized: bool | None = None


class Check(_Model):
    """One rule. ``kind`` selects the engine function; the other fields are its parameters."""

    id: str = Field(pattern=r"^[a-z0-9-]+(\.[a-z0-9_-]+)+$")
    kind: CheckKind
    severity: Severity
    message: str
    fix: str = ""
    autofix: str | None = Field(None, description="modelport command template, {dir} = folder")
    sources: list[str] = Field(min_length=1)
    applies_when: AppliesWhen = AppliesWhen()
    unconfirmed: bool = False
    # kind parameters
    file: str | None = None
    files: list[str] = Field(default_factory=list)
    keys: list[str] = Field(default_factory=list)
    path: str | None = None
    op: Literal["eq", "ne", "in", "not_in", "exists", "absent", "le"] | None = None
    value: Any = None
    severity_uncertified: Severity | None = None
    severity_missing: Severity | None = None


class Tier(_Model):
    name: str
    max_params_b: float


class Hardware(_Model):
    """Sizing data for the recommendation."""

    kind: Literal["watsonx", "oci", "databricks"]
    bytes_per_param: float = 2.0
    tiers: list[Tier] = Field(default_factory=list)
    no_tensor_parallel_tier: str | None = None
    # the largest model the page's own examples run on that tier (it lists them past the
    # tier's size guideline): above the guideline up to this, a warning, not an error
    no_tensor_parallel_examples_b: float | None = None
    gpu_gb: float = 80.0
    overhead: float = 0.5
    bit_factor: dict[str, float] = Field(default_factory=dict)
    timeseries_sizes: list[str] = Field(default_factory=list)
    timeseries_concurrency: list[dict[str, Any]] = Field(default_factory=list)
    units: list[UnitShape] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    unconfirmed: bool = False


class TargetRules(_Model):
    """A whole rules file."""

    schema_version: Literal[1]
    target: str
    title: str
    specs: list[str] = Field(default_factory=list)
    # the names users pick on the platform, by spec id (watsonx-cfm-caikit-1.1 for caikit-1.1)
    spec_names: dict[str, str] = Field(default_factory=dict)
    sources: dict[str, Source]
    architectures: list[Architecture] = Field(default_factory=list)
    families: list[Family] = Field(default_factory=list)
    vllm_model_types: list[str] = Field(default_factory=list)
    quant_formats: list[QuantFormat] = Field(default_factory=list)
    checks: list[Check]
    hardware: Hardware

    def spec_id(self, name: str | None) -> str | None:
        """The spec id for an id or a platform name (``watsonx-cfm-caikit-1.1``)."""
        return {v: k for k, v in self.spec_names.items()}.get(name, name) if name else name

    @model_validator(mode="after")
    def _consistent(self) -> TargetRules:
        ids = [c.id for c in self.checks]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"duplicate check ids: {sorted(dup)}")
        for c in self.checks:
            missing = [s for s in c.sources if s not in self.sources]
            if missing:
                raise ValueError(f"check {c.id} cites unknown sources {missing}")
            if c.applies_when.spec and not set(c.applies_when.spec) <= set(self.specs):
                raise ValueError(f"check {c.id} names unknown specs {c.applies_when.spec}")
        units = {u.name for u in self.hardware.units}
        for f in self.families:
            if units and any(x.shape not in units for x in f.shapes):
                raise ValueError(f"family {f.name} lists a shape that is not a unit shape")
        for q in self.quant_formats:
            missing = [s for s in q.sources if s not in self.sources]
            if missing:
                raise ValueError(f"quant_formats {q.method} cites unknown sources {missing}")
        types = [a.model_type for a in self.architectures]
        if len(types) != len(set(types)):
            raise ValueError("an architecture is listed twice")
        return self

    def quant_format(self, method: str | None) -> QuantFormat | None:
        return next((q for q in self.quant_formats if q.method == method), None)

    def arch(self, model_type: str | None) -> Architecture | None:
        return next((a for a in self.architectures if a.model_type == model_type), None)


# short names kept for the targets that were split: "databricks" is provisioned throughput
ALIASES = {"databricks": "databricks-provisioned-throughput"}


def resolve_target(name: str) -> str:
    """A target name with its alias resolved (what ran is said under the real name)."""
    return ALIASES.get(name, name)


def target_names() -> list[str]:
    """The targets shipped with modelport (one rules file each)."""
    files = resources.files("modelport.package").joinpath("targets").iterdir()
    return sorted(f.name[: -len(".toml")] for f in files if f.name.endswith(".toml"))


@cache
def load_target(name: str) -> TargetRules:
    """Load and validate one rules file.

    Raises:
        InputError: no such target, or the file does not validate.
    """
    name = resolve_target(name)
    if name not in target_names():
        raise InputError(f"unknown target {name!r}", hint=f"targets: {', '.join(target_names())}")
    try:
        return TargetRules.model_validate(_resolved(name, ()))
    except (ValidationError, tomllib.TOMLDecodeError) as e:
        raise InputError(f"rules file {name}.toml is invalid: {e}") from e


def _resolved(name: str, seen: tuple[str, ...]) -> dict[str, Any]:
    """The raw TOML of a target with its ``extends`` chain merged in.

    A child replaces top-level keys it sets, adds ``sources``, replaces checks with the same
    id, appends new ones and drops those named in ``remove_checks``.
    """
    if name in seen:
        raise InputError(f"rules files extend each other in a loop: {' -> '.join(seen)}")
    text = resources.files("modelport.package").joinpath("targets", f"{name}.toml").read_text(
        encoding="utf-8")
    raw = tomllib.loads(text)
    base_name = raw.pop("extends", None)
    if base_name is None:
        raw.pop("remove_checks", None)
        return raw
    base = _resolved(base_name, (*seen, name))
    remove = set(raw.pop("remove_checks", []))
    merged = {**base, **{k: v for k, v in raw.items() if k not in ("sources", "checks")}}
    merged["sources"] = {**base.get("sources", {}), **raw.get("sources", {})}
    own = {c["id"]: c for c in raw.get("checks", [])}
    checks = [own.pop(c["id"], c) for c in base.get("checks", []) if c["id"] not in remove]
    merged["checks"] = checks + list(own.values())
    return merged


def json_schema() -> str:
    """The JSON Schema of a rules file, generated from the models (targets.schema.json)."""
    return json.dumps(TargetRules.model_json_schema(), indent=2, sort_keys=True) + "\n"
