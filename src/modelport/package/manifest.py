"""``modelport.manifest.json``: what a bundle holds, where it came from, and the check results.

The schema (``manifest.schema.json``, generated from these models) maps onto the CNCF
ModelPack model spec: see the README.
"""

from __future__ import annotations

import json
import posixpath
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from modelport._io import jsonio
from modelport._io.paths import open_no_follow
from modelport._types import MANIFEST, human_bytes
from modelport.errors import InputError

SCHEMA_VERSION = 1


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ManifestFile(_M):
    path: str = Field(description="relative POSIX path inside the bundle")
    role: Literal["weights", "index", "config", "tokenizer", "tsfm", "other"]
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @field_validator("path")
    @classmethod
    def _inside(cls, v: str) -> str:
        norm = posixpath.normpath(v)
        if (not v or v.startswith("/") or "\\" in v or norm.startswith("..") or norm != v
                or "\x00" in v):
            raise ValueError(f"path {v!r} leaves the bundle or is not normalized")
        return v


class Quantization(_M):
    method: str
    bits: int | None = None


class ModelInfo(_M):
    model_type: str | None
    architectures: list[str]
    parameters: int
    tensors: int
    weight_bytes: int
    dtypes: dict[str, int]
    format: Literal["safetensors"] = "safetensors"
    quantization: Quantization | None = None


class Step(_M):
    verb: str
    status: Literal["done", "skipped"]
    detail: str = ""


class Provenance(_M):
    source: str
    inputs: list[ManifestFile] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict)
    forced: bool = Field(False, description="packaged despite check errors (--force)")
    verify: bool = True


class ServeCheck(_M):
    """``serve-check``: the bundle served by vLLM, its greedy tokens compared with
    transformers'."""

    engine: Literal["vllm"] = "vllm"
    version: str
    dtype: str
    prompts: list[str]
    max_tokens: int
    tokens_compared: int
    ok: bool
    first_difference: dict[str, Any] | None = None
    seconds: float = Field(description="vLLM's load and generation")


class TargetSummary(_M):
    target: str
    spec: str | None
    ok: bool
    errors: int
    warnings: int
    findings: list[dict[str, Any]]
    hardware: dict[str, Any]


class Manifest(_M):
    schema_version: Literal[1] = SCHEMA_VERSION
    name: str
    created: str = Field(description="ISO 8601 UTC")
    modelport_version: str
    model: ModelInfo
    files: list[ManifestFile]
    excluded: list[dict[str, str]] = Field(default_factory=list)
    provenance: Provenance
    targets: list[TargetSummary]
    serve_check: ServeCheck | None = None

    def file_map(self) -> dict[str, ManifestFile]:
        return {f.path: f for f in self.files}

    def lines(self) -> list[str]:
        """A line per file and per target, as the CLI prints a bundle."""
        out = [f"  {f.path}  {human_bytes(f.size)}  {f.role}  sha256 {f.sha256[:16]}…"
               for f in self.files]
        for t in self.targets:
            out.append(f"  {t.target}: {'OK' if t.ok else 'FAIL'} ({t.errors} errors, "
                       f"{t.warnings} warnings); hardware: {t.hardware['recommendation']}")
        return out


def read_manifest(data: bytes, where: str) -> Manifest:
    """Parse and validate manifest bytes (local file or object)."""
    try:
        m = Manifest.model_validate(jsonio.loads(data))
    except ValidationError as e:
        first = e.errors()[0]
        where_in = ".".join(map(str, first["loc"]))
        raise InputError(f"invalid manifest: {where_in}: {first['msg']}", path=where,
                         hint="re-create the bundle with modelport package") from e
    except ValueError as e:
        raise InputError(f"invalid manifest ({str(e)[:200]})", path=where,
                         hint="re-create the bundle with modelport package") from e
    paths = [f.path for f in m.files]
    if len(paths) != len(set(paths)) or MANIFEST in paths:
        raise InputError("manifest lists a file twice or lists itself", path=where)
    return m


def load_manifest(bundle: Path) -> Manifest:
    """The bundle's manifest, read without following a link."""
    p = bundle / MANIFEST
    if not p.is_file():
        raise InputError(f"no {MANIFEST}", path=bundle,
                         hint="create the bundle with modelport package")
    with open_no_follow(bundle, MANIFEST) as fh:
        return read_manifest(fh.read(), str(p))


def schema() -> str:
    return json.dumps(Manifest.model_json_schema(), indent=2, sort_keys=True) + "\n"
