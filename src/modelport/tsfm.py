"""``tsfm-config``: write or check ``tsfm_config.json`` for TinyTimeMixer models.

The watsonx time-series runtime (granite-tsfm's serving code) reads this file; Hugging Face
copies of TTM lack it and forecasting then fails. The values match what IBM's own writer
(``tsfm_public.toolkit.service_util.save_deployment_package``) produces, and every field is
written explicitly, with both handler pairs (older runtimes read ``service_handler_*``, newer
ones ``inference_handler_*``; unknown keys are ignored).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from modelport._io import jsonio
from modelport._io.atomic import write_bytes_atomic
from modelport._types import Record
from modelport.errors import InputError, OutputExistsError, UnsupportedError

TSFM_FILE = "tsfm_config.json"
MODEL_TYPES = {"tinytimemixer"}
HANDLERS = {
    "service_handler_module_path": "tsfminference.tsfm_service_handler",
    "service_handler_class_name": "TinyTimeMixerForecastingHandler",
    "inference_handler_module_path": "tsfminference.tsfm_inference_handler",
    "inference_handler_class_name": "TinyTimeMixerForecastingInferenceHandler",
    "tuning_handler_module_path": "tsfmfinetuning.tsfm_tuning_handler",
    "tuning_handler_class_name": "TinyTimeMixerForecastingTuningHandler",
}
MODULE_PREFIXES = ("tsfm_public.", "tsfminference.", "tsfmfinetuning.")


class TsfmOptions(BaseModel):
    """Overrides for the fields derived from config.json (None: derive)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    minimum_context_length: int | None = Field(None, gt=0)
    maximum_context_length: int | None = Field(None, gt=0)
    maximum_prediction_length: int | None = Field(None, gt=0)
    multivariate_support: bool = True
    missing_value_support: bool = False
    exogenous_support: bool = False
    is_finetuned: bool | None = Field(None, description="default: preprocessor_config.json "
                                      "present")
    inference_batch_size: int = Field(16, gt=0)
    overwrite: bool = False


class TsfmFinding(Record):
    severity: Literal["error", "warning"]
    key: str
    message: str


class TsfmReport(Record):
    path: str
    written: bool
    config: dict[str, Any]
    findings: list[TsfmFinding]

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)


def _model_config(folder: Path) -> dict[str, Any]:
    p = folder / "config.json"
    try:
        cfg = jsonio.load(p)
    except FileNotFoundError as e:
        raise InputError("no config.json", path=folder,
                         hint="tsfm-config derives its fields from the model's config.json") from e
    except (OSError, ValueError) as e:
        raise InputError(f"config.json is not valid JSON ({e})", path=p) from e
    if not isinstance(cfg, dict):
        raise InputError("config.json is not a JSON object", path=p)
    if cfg.get("model_type") not in MODEL_TYPES:
        raise UnsupportedError(
            f"model_type {cfg.get('model_type')!r}: tsfm_config.json only applies to "
            "time-series models", path=p, supported=sorted(MODEL_TYPES),
            hint="general-purpose models need no tsfm_config.json")
    for key in ("context_length", "prediction_length"):
        if not isinstance(cfg.get(key), int) or cfg[key] <= 0:
            raise InputError(f"config.json has no positive integer {key}", path=p)
    return cfg


def build_tsfm_config(folder: str | Path, options: TsfmOptions | None = None) -> dict[str, Any]:
    """The tsfm_config.json content for a TinyTimeMixer folder (nothing written)."""
    folder = Path(folder)
    o = options or TsfmOptions()
    cfg = _model_config(folder)
    archs = cfg.get("architectures") or ["TinyTimeMixerForPrediction"]
    finetuned = o.is_finetuned if o.is_finetuned is not None else \
        (folder / "preprocessor_config.json").is_file()
    return {
        "model_type": cfg["model_type"],
        "module_path": "tsfm_public.models.tinytimemixer.modeling_tinytimemixer",
        "model_config_name": "TinyTimeMixerConfig",
        "model_class_name": archs[0],
        "minimum_context_length": o.minimum_context_length or cfg["context_length"],
        "maximum_context_length": o.maximum_context_length or cfg["context_length"],
        "maximum_prediction_length": o.maximum_prediction_length or cfg["prediction_length"],
        "multivariate_support": o.multivariate_support,
        "missing_value_support": o.missing_value_support,
        "exogenous_support": o.exogenous_support,
        "is_finetuned": finetuned,
        "inference_batch_size": o.inference_batch_size,
        **HANDLERS,
    }


def validate(folder: Path, tsfm: dict[str, Any]) -> list[TsfmFinding]:
    """Check a tsfm_config.json against the runtime's rules and the model's config.json."""
    cfg = _model_config(folder)
    out: list[TsfmFinding] = []

    def bad(key: str, msg: str, severity: Literal["error", "warning"] = "error") -> None:
        out.append(TsfmFinding(severity=severity, key=key, message=msg))

    if tsfm.get("model_type") != cfg["model_type"]:
        bad("model_type", f"{tsfm.get('model_type')!r} differs from config.json's "
                          f"{cfg['model_type']!r}")
    pairs = [("inference_handler_module_path", "inference_handler_class_name"),
             ("service_handler_module_path", "service_handler_class_name")]
    if not any(a in tsfm for a, _ in pairs):
        bad("inference_handler_module_path", "no handler: set the inference_handler_* pair "
                                             "(newer runtimes) or service_handler_* (older)")
    for key, value in tsfm.items():
        is_handler = key.startswith(("service_handler", "inference_handler", "tuning_handler"))
        text = value if isinstance(value, str) else ""
        if is_handler and key.endswith("_module_path") and not text.startswith(MODULE_PREFIXES):
            bad(key, f"{value!r} must start with one of {', '.join(MODULE_PREFIXES)}")
        if is_handler and key.endswith("_class_name") and not text.endswith("Handler"):
            bad(key, f"{value!r} must be a class name ending in 'Handler'")
    if not str(tsfm.get("module_path", "tsfm_public")).startswith("tsfm_public"):
        bad("module_path", f"{tsfm.get('module_path')!r} is not a tsfm_public module")
    ctx, pred = cfg["context_length"], cfg["prediction_length"]
    lo, hi = tsfm.get("minimum_context_length", 1), tsfm.get("maximum_context_length")
    mp = tsfm.get("maximum_prediction_length")
    for key, v in (("minimum_context_length", lo), ("maximum_context_length", hi),
                   ("maximum_prediction_length", mp)):
        if v is not None and (not isinstance(v, int) or v <= 0):
            bad(key, f"{v!r} is not a positive integer")
    if isinstance(hi, int) and hi != ctx:
        bad("maximum_context_length", f"{hi} differs from config.json context_length {ctx}")
    if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
        bad("minimum_context_length", f"{lo} exceeds maximum_context_length {hi}")
    if isinstance(mp, int) and mp > pred:
        bad("maximum_prediction_length", f"{mp} exceeds config.json prediction_length {pred}")
    if mp is None:
        bad("maximum_prediction_length", "missing", "warning")
    if tsfm.get("is_finetuned") and not (folder / "preprocessor_config.json").is_file():
        bad("is_finetuned", "true, but the folder has no preprocessor_config.json")
    return out


def tsfm_config(folder: str | Path, options: TsfmOptions | None = None, *,
                check_only: bool = False) -> TsfmReport:
    """Write ``tsfm_config.json`` into a TinyTimeMixer folder, or check the one it has.

    Raises:
        UnsupportedError: the model is not a time-series model.
        InputError: no usable config.json; OutputExistsError: the file exists (use
            ``overwrite`` or ``check_only``).
    """
    folder = Path(folder)
    jsonio.require_valid(folder)
    target = folder / TSFM_FILE
    if check_only:
        try:
            existing = jsonio.load(target)
        except FileNotFoundError as e:
            raise InputError(f"no {TSFM_FILE} to check", path=folder,
                             hint=f"write one: modelport tsfm-config {folder}") from e
        except (OSError, ValueError) as e:
            raise InputError(f"{TSFM_FILE} is not valid JSON ({e})", path=target) from e
        if not isinstance(existing, dict):
            raise InputError(f"{TSFM_FILE} is not a JSON object", path=target)
        return TsfmReport(path=str(target), written=False, config=existing,
                          findings=validate(folder, existing))
    o = options or TsfmOptions()
    content = build_tsfm_config(folder, o)
    findings = validate(folder, content)
    if any(f.severity == "error" for f in findings):
        raise InputError("the options give an invalid tsfm_config.json: "
                         + "; ".join(f"{f.key}: {f.message}" for f in findings), path=folder)
    if target.exists() and not o.overwrite:
        raise OutputExistsError(f"{TSFM_FILE} already exists", path=target,
                                hint="check it with --check, or replace it with --overwrite")
    write_bytes_atomic(target, (json.dumps(content, indent=2) + "\n").encode())
    return TsfmReport(path=str(target), written=True, config=content, findings=findings)
