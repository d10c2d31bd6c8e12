"""modelport on Spark (``pip install 'modelport[spark]'``): :func:`prepare_many` runs one task
per model, :func:`convert_distributed` one task per output shard, :func:`check_data` checks a
table of fine-tuning data a partition a task. All run on any Spark (Databricks, OCI Data Flow,
IBM Analytics Engine) and locally on ``local[*]``: :func:`local_session` starts one whose
workers run this interpreter, with a JVM found when none is on ``PATH``."""

from __future__ import annotations

from modelport.spark.data import check_data
from modelport.spark.distributed import convert_distributed
from modelport.spark.jobs import RESULT_FIELDS, prepare_many
from modelport.spark.session import local_session

__all__ = ["RESULT_FIELDS", "check_data", "convert_distributed", "local_session",
           "prepare_many"]
