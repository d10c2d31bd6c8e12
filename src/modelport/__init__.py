"""modelport: turn the checkpoints people have into folders the platforms accept.

The verbs are plain functions; heavy imports (torch, transformers) happen inside them, so
``import modelport`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# The subpackages share names with the verbs. Import them first (their __init__ is empty), so
# the verb functions defined below are what ``modelport.convert`` etc. stay bound to.
import modelport.convert as _convert_pkg  # noqa: F401
import modelport.quantize as _quantize_pkg  # noqa: F401
from modelport import errors
from modelport._version import __version__

if TYPE_CHECKING:
    from modelport.cast.normalize import NormalizeReport
    from modelport.cast.options import NormalizeOptions
    from modelport.convert.checkpoint import ConvertReport
    from modelport.convert.inspect import InspectReport
    from modelport.convert.options import ConvertOptions
    from modelport.convert.plan import ConvertPlan
    from modelport.package.check import CheckReport
    from modelport.quantize.options import QuantizeOptions
    from modelport.quantize.run import QuantizeReport

__all__ = [
    "CheckReport",
    "ConvertOptions",
    "ConvertReport",
    "InspectReport",
    "NormalizeOptions",
    "NormalizeReport",
    "QuantizeOptions",
    "QuantizeReport",
    "__version__",
    "check",
    "check_data",
    "convert",
    "errors",
    "inspect",
    "normalize",
    "plan_convert",
    "quantize",
    "targets",
    "tokenizer",
    "tsfm_config",
    "upload",
    "verify",
]


def convert(src: Any, dst: Any, options: ConvertOptions | None = None, **kwargs: Any
            ) -> ConvertReport:
    """Convert a checkpoint (folder or file) into verified safetensors. See
    :func:`modelport.convert.checkpoint.convert`."""
    from modelport.convert.checkpoint import convert as _convert

    return _convert(src, dst, options, **kwargs)


def plan_convert(src: Any, dst: Any, options: ConvertOptions | None = None) -> ConvertPlan:
    """Plan a conversion without writing anything (shards, aliases, skipped names)."""
    from modelport.convert.plan import plan_convert as _plan

    return _plan(src, dst, options)


def inspect(path: Any, **kwargs: Any) -> InspectReport:
    """Describe a model folder or weight file without loading tensor data. See
    :func:`modelport.convert.inspect.inspect`."""
    from modelport.convert.inspect import inspect as _inspect

    return _inspect(path, **kwargs)


def normalize(folder: Any, out: Any = None, options: NormalizeOptions | None = None,
              **kwargs: Any) -> NormalizeReport:
    """Fix safetensors metadata, dtypes, config.json dtype and the index. See
    :func:`modelport.cast.normalize.normalize`."""
    from modelport.cast.normalize import normalize as _normalize

    return _normalize(folder, out, options, **kwargs)


def quantize(src: Any, dst: Any, options: QuantizeOptions | None = None, **kwargs: Any
             ) -> QuantizeReport:
    """Quantize a model folder to GPTQ v1 or AWQ GEMM, verified. See
    :func:`modelport.quantize.run.quantize` (needs ``pip install modelport[quantize]``)."""
    from modelport.pipeline.quantize import quantize as _quantize

    return _quantize(src, dst, options, **kwargs)


def check(path: Any, targets: Any = ("watsonx-saas",), *, spec: str | None = None,
          store: dict[str, Any] | None = None) -> CheckReport:
    """Will this folder (or ``s3://bucket/prefix``) deploy on the targets? See
    :func:`modelport.package.check.check`."""
    from modelport.package.check import check as _check

    return _check(path, list(targets) if not isinstance(targets, str) else [targets], spec=spec,
                  store=store)


def check_data(src: Any, target: str = "databricks", **kwargs: Any) -> Any:
    """Check fine-tuning JSONL for the target's rules. See
    :func:`modelport.package.data_check.check_data`."""
    from modelport.package.data_check import check_data as _check_data

    return _check_data(src, target, **kwargs)


def tokenizer(folder: Any, out: Any = None, options: Any = None, **kwargs: Any) -> Any:
    """Synthesize tokenizer.json with a parity proof. See
    :func:`modelport.tok.tokenizer`."""
    from modelport.tok.verb import tokenizer as _tokenizer

    return _tokenizer(folder, out, options, **kwargs)


def tsfm_config(folder: Any, options: Any = None, *, check_only: bool = False,
                **kwargs: Any) -> Any:
    """Write or check tsfm_config.json for a TinyTimeMixer folder. See
    :func:`modelport.tsfm.tsfm_config`."""
    from modelport.tsfm import TsfmOptions
    from modelport.tsfm import tsfm_config as _tsfm

    return _tsfm(folder, options or TsfmOptions(**kwargs), check_only=check_only)


def package(folder: Any, out: Any, targets: Any = ("watsonx-saas",), **kwargs: Any) -> Any:
    """Check a folder and write a bundle with its manifest. See
    :func:`modelport.package.bundle.package`."""
    from modelport.package.bundle import package as _package

    return _package(folder, out, targets, **kwargs)


def upload(bundle: Any, url: str, options: Any = None, **kwargs: Any) -> Any:
    """Upload a bundle to s3://bucket/prefix, resumable and verified. See
    :func:`modelport.package.upload.upload`."""
    from modelport.package.upload import upload as _upload

    return _upload(bundle, url, options, **kwargs)


def verify(target: Any, options: Any = None, **kwargs: Any) -> Any:
    """Check a local or s3:// bundle against its manifest. See
    :func:`modelport.package.upload.verify`."""
    from modelport.package.upload import verify as _verify

    return _verify(target, options, **kwargs)


def prepare(src: Any, out: Any, targets: Any = ("watsonx-saas",), **kwargs: Any) -> Any:
    """The whole pipeline, from a checkpoint to a verified bundle (and upload). See
    :func:`modelport.pipeline.prepare.prepare`."""
    from modelport.pipeline.prepare import prepare as _prepare

    return _prepare(src, out, targets, **kwargs)


def targets() -> list[str]:
    """The import targets modelport has rules for."""
    from modelport.package.rules import target_names

    return target_names()


_LAZY = {
    "CheckReport": "modelport.package.check",
    "NormalizeOptions": "modelport.cast.options",
    "NormalizeReport": "modelport.cast.normalize",
    "ConvertReport": "modelport.convert.checkpoint",
    "ConvertOptions": "modelport.convert.options",
    "InspectReport": "modelport.convert.inspect",
    "QuantizeOptions": "modelport.quantize.options",
    "QuantizeReport": "modelport.quantize.run",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'modelport' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
