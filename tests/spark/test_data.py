"""modelport.spark.check_data over a table read by Spark: the same report as check-data on
the same rows written as JSONL (Delta's jars come from Maven, which this machine cannot
reach: a Parquet table stands in; on Databricks a Delta table is read the same way)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import modelport
from modelport.spark import check_data


def _rows() -> list[dict[str, Any]]:
    good = [{"role": "user", "content": f"question {i}"} for i in range(1)] + [
        {"role": "assistant", "content": "an answer"}]
    rows: list[dict[str, Any]] = [{"messages": good} for _ in range(40)]
    rows[7] = {"messages": [{"role": "assistant", "content": "starts wrong"}]}
    rows[19] = {"messages": [{"role": "user", "content": "no answer"}]}
    rows[33] = {"messages": [{"role": "system", "content": "a"},
                             {"role": "user", "content": "b"},
                             {"role": "system", "content": "late"},
                             {"role": "assistant", "content": "c"}]}
    return rows


def _summary(rep: Any) -> Any:
    return (rep.format, rep.lines, rep.examples, rep.bytes, rep.tokens_estimated,
            sorted((f.kind, f.severity, f.count) for f in rep.findings))


def test_a_table_gets_the_same_report_as_its_jsonl(spark: Any, tmp_path: Path) -> None:
    rows = _rows()
    jsonl = tmp_path / "train.jsonl"
    df = spark.createDataFrame(rows, "messages array<struct<role:string,content:string>>")
    # the JSONL Spark itself writes from the table: byte for byte the rows check_data sees
    lines = df.coalesce(1).toJSON().collect()
    jsonl.write_text("".join(x + "\n" for x in lines))
    assert json.loads(lines[7]) == rows[7]
    df.repartition(4).write.parquet(str(tmp_path / "tbl"))
    spark.read.parquet(str(tmp_path / "tbl")).createOrReplaceTempView("ft_chat")
    got = check_data(spark, "ft_chat", base_model="meta-llama/Meta-Llama-3.1-8B-Instruct")
    want = modelport.check_data(jsonl, base_model="meta-llama/Meta-Llama-3.1-8B-Instruct")
    assert _summary(got) == _summary(want)
    kinds = {f.kind: f for f in got.findings}
    assert kinds["chat.alternation"].count == 1 and kinds["chat.last"].count == 1
    assert kinds["chat.system_position"].count == 1
    assert "ft_chat partition" in kinds["chat.last"].lines[0]
    assert got.sources == ["ft_chat"] and not got.ok


def test_an_instruction_dataframe_and_a_retired_base(spark: Any) -> None:
    df = spark.createDataFrame([("a prompt", "a response")] * 5 + [("only a prompt", None)],
                               "prompt string, response string")
    rep = check_data(spark, df, base_model="databricks/dbrx-instruct")
    kinds = {f.kind: f for f in rep.findings}
    assert rep.format == "instruction" and rep.examples == 5
    assert kinds["instruction.fields"].count == 1
    assert kinds["model.retired"].severity == "error" and "2025-04-30" in \
        kinds["model.retired"].message
