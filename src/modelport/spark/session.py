"""A local Spark session that works from the environment modelport runs in: its Python
workers run this interpreter (the one that has modelport), and a JVM is found where a Debian
or Temurin package puts it when neither ``java`` on ``PATH`` nor ``JAVA_HOME`` names one."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from modelport.errors import InputError

JVM_ROOTS = (Path("/usr/lib/jvm"), Path("/opt/java"), Path("/usr/local/lib/jvm"))
SUPPORTED = (17, 21)  # the Java versions Spark 4 runs on, the first preferred


def _version(home: Path) -> int:
    m = re.search(r"(?:^|[-_.a-z])(\d{1,2})(?:[.\-_]|$)", home.name)
    return int(m.group(1)) if m else 0


def find_java(roots: tuple[Path, ...] = JVM_ROOTS) -> Path | None:
    """The Java home to use: ``JAVA_HOME`` when it holds ``bin/java``, else none needed when
    ``java`` is on ``PATH`` (None), else the JVM under ``roots`` of a version Spark supports
    (17 first, then 21, then the newest other)."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return Path(home)
    if shutil.which("java"):
        return None
    found = [p for r in roots if r.is_dir() for p in sorted(r.iterdir())
             if (p / "bin" / "java").is_file() and not p.is_symlink()]
    if not found:
        raise InputError("no Java runtime: none on PATH, JAVA_HOME unset, none under "
                         f"{', '.join(map(str, roots))} (Spark needs Java 17 or 21)",
                         hint="apt-get install openjdk-17-jre-headless (or a JDK from "
                         "adoptium.net), or set JAVA_HOME")
    rank = {v: i for i, v in enumerate(SUPPORTED)}
    return min(found, key=lambda p: (rank.get(_version(p), len(rank)), -_version(p)))


def ensure_java() -> None:
    """Set ``JAVA_HOME`` for Spark when no JVM is on ``PATH`` and none is named."""
    home = find_java()
    if home is not None:
        os.environ["JAVA_HOME"] = str(home)


def local_session(cores: int | str = "*", app: str = "modelport",
                  conf: dict[str, str] | None = None) -> Any:
    """``SparkSession`` on ``local[cores]`` whose Python workers run this interpreter (Spark
    would start ``python3`` from ``PATH``, which may not have modelport), with a JVM found as
    :func:`find_java` says; ``conf``: more Spark settings (``{"spark.driver.memory": "4g"}``).

    Example:
        >>> spark = modelport.spark.local_session()
        >>> modelport.spark.convert_distributed(spark, "ckpt/", "out/")
    """
    ensure_java()
    os.environ["PYSPARK_PYTHON"] = sys.executable  # read when the context starts
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    b = SparkSession.builder.master(f"local[{cores}]").appName(app) \
        .config("spark.ui.enabled", "false")
    for k, v in (conf or {}).items():
        b = b.config(k, v)
    return b.getOrCreate()


__all__ = ["ensure_java", "find_java", "local_session"]
