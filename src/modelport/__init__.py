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
    "serve_check",
    "targets",
    "tokenizer",
    "tsfm_config",
    "upload",
    "verify",
]


def _store(endpoint_url: str | None, region: str | None, profile: str | None
           ) -> dict[str, Any] | None:
    given = {"endpoint_url": endpoint_url, "region": region, "profile": profile}
    return given if any(given.values()) else None


def convert(src: Any, dst: Any, options: ConvertOptions | None = None, *,
            progress: bool | None = None, endpoint_url: str | None = None,
            region: str | None = None, profile: str | None = None,
            store: dict[str, Any] | None = None, **kwargs: Any) -> ConvertReport:
    """Convert a checkpoint (folder, file or ``s3://bucket/prefix``) into verified safetensors
    (a folder or ``s3://bucket/prefix``). See :func:`modelport.convert.checkpoint.convert`.

    Args:
        src: what to convert; dst: where the shards go.
        options: a :class:`ConvertOptions`; its fields may be given as keyword arguments
            instead (``max_shard_size="2GB"``, ``aliases="copy"``, ...).
        progress: a progress bar (None: on a terminal or in a notebook).
        endpoint_url: the S3 endpoint of ``s3://`` at either end (IBM COS, OCI, MinIO).
        region: the store's region.
        profile: a profile of ~/.aws/credentials (else credentials as boto3 finds them).
        store: the same three as a dict (the older spelling).
    """
    from modelport.convert.checkpoint import convert as _convert

    return _convert(src, dst, options, progress=progress,
                    store=_store(endpoint_url, region, profile) or store, **kwargs)


def plan_convert(src: Any, dst: Any, options: ConvertOptions | None = None) -> ConvertPlan:
    """Plan a conversion without writing anything (shards, aliases, skipped names)."""
    from modelport.convert.plan import plan_convert as _plan

    return _plan(src, dst, options)


def inspect(path: Any, *, allow_globals: tuple[str, ...] = (), endpoint_url: str | None = None,
            region: str | None = None, profile: str | None = None,
            store: dict[str, Any] | None = None) -> InspectReport:
    """Describe a model folder, weight file or ``s3://bucket/prefix`` without loading tensor
    data. See :func:`modelport.convert.inspect.inspect`.

    Args:
        path: a folder, a file or ``s3://bucket/prefix``.
        allow_globals: ``module.name`` globals a pickle may hold beyond the allow-list.
        endpoint_url: the S3 endpoint of an ``s3://`` path; region: its region;
            profile: a profile of ~/.aws/credentials.
        store: the same three as a dict (the older spelling).
    """
    from modelport.convert.inspect import inspect as _inspect

    return _inspect(path, allow_globals=allow_globals,
                    store=_store(endpoint_url, region, profile) or store)


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
          endpoint_url: str | None = None, region: str | None = None,
          profile: str | None = None, store: dict[str, Any] | None = None) -> CheckReport:
    """Will this folder (or ``s3://bucket/prefix``) deploy on the targets? See
    :func:`modelport.package.check.check`; ``endpoint_url``, ``region``, ``profile``: the
    store of an ``s3://`` path (``store``: the same as a dict)."""
    from modelport.package.check import check as _check

    return _check(path, list(targets) if not isinstance(targets, str) else [targets], spec=spec,
                  store=_store(endpoint_url, region, profile) or store)


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


def upload(bundle: Any, url: str, options: Any = None, *, endpoint_url: str | None = None,
           region: str | None = None, profile: str | None = None, concurrency: int = 8,
           progress: bool | None = None) -> Any:
    """Upload a bundle to ``s3://bucket/prefix`` (or ``file://``, ``gs://``, ...), resumable
    and verified. See :func:`modelport.package.upload.upload`.

    Args:
        bundle: the bundle folder; url: where it goes.
        options: an ``UploadOptions`` (then the keyword arguments are not used).
        endpoint_url: the S3 endpoint (IBM COS, OCI, MinIO); region: its region;
            profile: a profile of ~/.aws/credentials.
        concurrency: parts in flight.
        progress: a progress bar (None: on a terminal or in a notebook).
    """
    from modelport.package.upload import UploadOptions
    from modelport.package.upload import upload as _upload

    o = options or UploadOptions(endpoint_url=endpoint_url, region=region, profile=profile,
                                 concurrency=concurrency)
    return _upload(bundle, url, o, progress=progress)


def verify(target: Any, options: Any = None, *, endpoint_url: str | None = None,
           region: str | None = None, profile: str | None = None) -> Any:
    """Check a local, ``s3://`` (or other store's) bundle against its manifest. See
    :func:`modelport.package.upload.verify`; ``endpoint_url``, ``region``, ``profile``: the
    store of an ``s3://`` bundle (``options``: an ``UploadOptions`` instead)."""
    from modelport.package.upload import UploadOptions
    from modelport.package.upload import verify as _verify

    return _verify(target, options or UploadOptions(endpoint_url=endpoint_url, region=region,
                                                    profile=profile))


def prepare(src: Any, out: Any, targets: Any = ("watsonx-saas",), *,
            upload_url: str | None = None, endpoint_url: str | None = None,
            region: str | None = None, profile: str | None = None, **kwargs: Any) -> Any:
    """The whole pipeline, from a checkpoint (a folder, a file or ``s3://bucket/prefix``) to a
    verified bundle, and its upload to ``upload_url``. See
    :func:`modelport.pipeline.prepare.prepare` for the other options (``dtype``,
    ``quantize``, ``adapter``, ``tokenizer_family``, ``force``, ``overwrite``, ...).

    Args:
        endpoint_url: the S3 endpoint of ``s3://`` at either end (the source and
            ``upload_url``); region: its region; profile: a profile of ~/.aws/credentials.
    """
    from modelport.pipeline.prepare import prepare as _prepare

    store = _store(endpoint_url, region, profile) or kwargs.pop("store", None)
    return _prepare(src, out, targets, upload_url=upload_url, store=store, **kwargs)


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


def serve_check(bundle: Any, *, python: str | None = None, prompts: list[str] | None = None,
                max_tokens: int = 16) -> Any:
    """Serve a prepared folder or bundle with vLLM (the engine watsonx.ai's caikit-1.1 and OCI
    run) and compare its greedy tokens with transformers'. See
    :func:`modelport.package.serve_check.serve_check`.

    Args:
        bundle: the folder (config.json, safetensors, tokenizer.json).
        python: the interpreter of a venv with vLLM (default: this one when it imports vllm,
            else ``.venv-serve``).
        prompts: the prompts (default: three lines of the tokenizer proof corpus).
        max_tokens: greedy tokens generated per prompt.

    Returns:
        A ``ServeCheckReport`` (``ok``, ``first_difference``, ``tokens_compared``); a bundle's
        manifest records it.
    """
    from modelport.package.serve_check import record
    from modelport.package.serve_check import serve_check as _serve_check

    rep = _serve_check(bundle, python=python, prompts=prompts, max_tokens=max_tokens)
    record(bundle, rep)
    return rep
