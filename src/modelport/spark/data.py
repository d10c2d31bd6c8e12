"""``check_data`` over a Spark table: fine-tuning data kept as a table (a Delta table in Unity
Catalog on Databricks; any table or DataFrame Spark reads) gets the checks ``check-data``
runs on JSONL, one row a line, each partition checked on its executor and the parts merged
on the driver into the same report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from modelport.package.data_check import DataReport, Scan, finish, load_tokenizer, model_context


def _scan_partition(name: str, model: str | None, mistral: bool):  # type: ignore[no-untyped-def]
    def run(index: int, rows: Any) -> Any:
        tok = load_tokenizer(Path(model)) if model else None
        scan = Scan()
        scan.lines(((f"{name} partition {index} row {k}", (row + "\n").encode())
                    for k, row in enumerate(rows, 1)), tok, mistral)
        yield scan

    return run


def check_data(spark: Any, table: Any, target: str = "databricks", *,
               model: str | Path | None = None, base_model: str | None = None,
               context_length: int | None = None) -> DataReport:
    """Check a table of chat (``messages``: array of ``role``/``content`` structs) or
    instruction (``prompt``, ``response``) rows as Databricks fine-tuning data.

    ``table`` is a table name (``catalog.schema.table``) or a DataFrame. ``model`` must be a
    path every executor reads (a volume); the base model and context length as in
    :func:`modelport.check_data`.
    """
    from modelport.errors import InputError

    if not target.startswith("databricks"):
        raise InputError(f"check-data knows the rules of Databricks fine-tuning, not {target!r}",
                         hint="target='databricks'")
    t0 = time.perf_counter()
    m = model_context(model, context_length, base_model)
    df = spark.table(table) if isinstance(table, str) else table
    name = table if isinstance(table, str) else "dataframe"
    scan = Scan(m.fs)
    for part in df.toJSON().mapPartitionsWithIndex(
            _scan_partition(name, str(model) if model else None, m.mistral)).collect():
        scan.merge(part)
    return finish(scan, [name], name, m.tok is not None, m.ctx, m.bm, t0)


__all__ = ["check_data"]
