"""``prepare_many``: one Spark task per model, one result row per model, failures included.

Each task runs :func:`modelport.pipeline.prepare.prepare` on its executor. A model that fails
gives a row with ``ok = false`` and the error's class and message; it never fails the job or
the other models, so a pipeline filters the rows and retries what it wants. Sources are paths
every executor can read (a Databricks volume ``/Volumes/…``, a mounted bucket, a shared file
system); a destination is a path or an ``s3://`` URL, where the bundle is built in the
executor's scratch space, uploaded (resumable, verified remotely) and removed.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# the result DataFrame's columns, in order (a Spark DDL type each)
RESULT_FIELDS: list[tuple[str, str]] = [
    ("source", "string"), ("destination", "string"), ("ok", "boolean"),
    ("error_class", "string"), ("error_message", "string"), ("checks", "string"),
    ("manifest_sha256", "string"), ("bytes", "bigint"), ("files", "int"), ("seconds", "double"),
]
SCHEMA = ", ".join(f"{n} {t}" for n, t in RESULT_FIELDS)
_PREPARE_KEYS = {"dtype", "force", "overwrite", "quantize", "tokenizer_family",
                 "accept_tokenizer_guess"}
_STORE_KEYS = {"endpoint_url", "region", "profile"}


def _verdicts(targets: Iterable[Any]) -> str:
    """``target: ok`` or ``target: N error(s), M warning(s)``, joined by ``; ``."""
    return "; ".join(
        f"{t.target}: ok" + (f" ({t.warnings} warning(s))" if t.warnings else "") if t.ok
        else f"{t.target}: {t.errors} error(s), {t.warnings} warning(s)" for t in targets)


def run_one(source: str, destination: str, targets: list[str], options: Mapping[str, Any]
            ) -> dict[str, Any]:
    """Prepare one model; a result row (never raises for the model's own errors)."""
    from modelport._quiet import quiet_third_party
    from modelport.errors import ModelportError

    if options.get("quiet", True):
        quiet_third_party()  # executor logs keep modelport's own lines
    t0 = time.perf_counter()
    row: dict[str, Any] = {"source": source, "destination": destination, "ok": False,
                           "error_class": None, "error_message": None, "checks": None,
                           "manifest_sha256": None, "bytes": None, "files": None}
    try:
        row.update(_prepare(source, destination, targets, options))
        row["ok"] = True
    except ModelportError as e:
        report = getattr(e, "report", None)  # TargetCheckFailed carries check's verdicts
        if report is not None and hasattr(report, "targets"):
            row["checks"] = _verdicts(report.targets)
        row["error_class"], row["error_message"] = type(e).__name__, str(e)
    except Exception as e:  # a bug or an environment problem: still this model's row only
        row["error_class"], row["error_message"] = type(e).__name__, f"{e}"[:2000]
    row["seconds"] = round(time.perf_counter() - t0, 3)
    return row


def _prepare(source: str, destination: str, targets: list[str], options: Mapping[str, Any]
             ) -> dict[str, Any]:
    from modelport.package.manifest import MANIFEST
    from modelport.package.upload import UploadOptions
    from modelport.pipeline.prepare import prepare

    kw = {k: v for k, v in options.items() if k in _PREPARE_KEYS}
    # one store for both ends: an s3:// source is read with the same endpoint and keys
    kw["store"] = {k: options.get(k) for k in _STORE_KEYS}
    from modelport._io.urls import location

    if not isinstance(location(destination, what="destination"), str):
        rep = prepare(source, destination, targets, progress=False, **kw)
        data = (Path(destination) / MANIFEST).read_bytes()
    else:
        store = UploadOptions(**{k: v for k, v in options.items() if k in _STORE_KEYS})
        scratch = options.get("scratch_dir") or None
        with tempfile.TemporaryDirectory(prefix="modelport-", dir=scratch) as tmp:
            out = Path(tmp) / "bundle"
            rep = prepare(source, out, targets, upload_url=destination, upload_options=store,
                          progress=False, **kw)
            data = (out / MANIFEST).read_bytes()
        if rep.verify is not None and not rep.verify.ok:
            from modelport.errors import RemoteIntegrityError

            v = rep.verify
            raise RemoteIntegrityError(f"missing {v.missing}, changed {v.changed}",
                                       url=destination, op="verify")
    m = rep.manifest
    return {"checks": _verdicts(m.targets), "manifest_sha256": hashlib.sha256(data).hexdigest(),
            "bytes": sum(f.size for f in m.files), "files": len(m.files)}


def _pairs(jobs: Any) -> list[tuple[str, str]]:
    if hasattr(jobs, "select") and hasattr(jobs, "collect"):  # a Spark DataFrame
        cols = set(jobs.columns)
        if not {"source", "destination"} <= cols:
            from modelport.errors import InputError

            raise InputError(f"the jobs DataFrame has columns {sorted(cols)}",
                             hint="it needs 'source' and 'destination'")
        return [(r["source"], r["destination"]) for r in jobs.select("source", "destination")
                .collect()]
    out = []
    for j in jobs:
        if isinstance(j, Mapping):
            out.append((str(j["source"]), str(j["destination"])))
        else:
            s, d = j
            out.append((str(s), str(d)))
    return out


def prepare_many(spark: Any, jobs: Any, target: str | list[str] = "watsonx-saas", *,
                 endpoint_url: str | None = None, region: str | None = None,
                 profile: str | None = None, scratch_dir: str | None = None,
                 quiet: bool = True, **prepare_options: Any) -> Any:
    """Prepare many models, one Spark task each; a DataFrame with one row per model.

    Args:
        spark: a ``SparkSession`` (``local[*]`` works for notebooks and tests).
        jobs: a DataFrame with ``source`` and ``destination`` columns, or an iterable of
            ``(source, destination)`` pairs or mappings.
        target: one target name or several (``modelport targets`` lists them).
        endpoint_url: the object store of ``s3://`` sources and destinations (its URL).
        region: the object store's region.
        profile: the credentials profile (credentials as boto3 finds them).
        scratch_dir: where executors build bundles bound for object storage (default: the
            executor's temp dir).
        quiet: switch third-party log records and warnings off in the Python workers (the
            torch and torchao noise the CLI hides), as the CLI does.
        **prepare_options: ``dtype``, ``quantize``, ``tokenizer_family``,
            ``accept_tokenizer_guess``, ``force``, ``overwrite`` as for ``prepare``.

    Returns:
        A DataFrame with the columns of :data:`RESULT_FIELDS`, in the order of ``jobs``.

    Example:
        >>> rows = prepare_many(spark, [("/Volumes/m/a", "s3://b/a")], "databricks-custom-gpu")
        >>> rows.filter("not ok").select("source", "error_message").show()
    """
    from modelport.errors import InputError

    unknown = set(prepare_options) - _PREPARE_KEYS
    if unknown:
        raise InputError(f"unknown prepare option(s): {', '.join(sorted(unknown))}",
                         hint=f"known: {', '.join(sorted(_PREPARE_KEYS))}")
    targets = [target] if isinstance(target, str) else list(target)
    pairs = _pairs(jobs)
    options = {**prepare_options, "endpoint_url": endpoint_url, "region": region,
               "profile": profile, "scratch_dir": scratch_dir, "quiet": quiet}
    cols = [n for n, _ in RESULT_FIELDS]
    if not pairs:
        return spark.createDataFrame([], SCHEMA)
    rdd = spark.sparkContext.parallelize(list(enumerate(pairs)), len(pairs))
    rows = rdd.map(lambda ij: (ij[0], run_one(ij[1][0], ij[1][1], targets, options))) \
        .collect()  # small: one row per model
    rows.sort(key=lambda r: r[0])
    return spark.createDataFrame([tuple(r[c] for c in cols) for _, r in rows], SCHEMA)


__all__ = ["RESULT_FIELDS", "SCHEMA", "prepare_many", "run_one"]
