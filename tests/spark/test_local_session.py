"""A local Spark session from the venv: its Python workers run this interpreter (not a
``python3`` from ``PATH``), and a JVM is found under /usr/lib/jvm when neither ``PATH`` nor
``JAVA_HOME`` names one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from modelport.errors import InputError
from modelport.spark.session import find_java

# what Spark's launch scripts run; java and python deliberately not among them
TOOLS = ("bash", "sh", "env", "dirname", "uname", "cat", "ls", "head", "tr", "sed", "grep",
         "readlink", "ps", "basename", "mkdir", "rm", "sleep", "hostname", "find", "awk",
         "cut", "tail", "wc", "expr", "id", "nproc")


def _jvm(root: Path, name: str) -> Path:
    (root / name / "bin").mkdir(parents=True)
    (root / name / "bin" / "java").write_text("")
    return root / name


def test_find_java_prefers_what_spark_supports(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    roots = (tmp_path / "jvm",)
    with pytest.raises(InputError, match="no Java runtime"):
        find_java(roots)
    _jvm(roots[0], "temurin-25-jdk-amd64")
    assert find_java(roots) == roots[0] / "temurin-25-jdk-amd64"
    _jvm(roots[0], "java-21-openjdk-amd64")
    assert find_java(roots) == roots[0] / "java-21-openjdk-amd64"
    _jvm(roots[0], "java-17-openjdk-amd64")
    assert find_java(roots) == roots[0] / "java-17-openjdk-amd64"
    monkeypatch.setenv("JAVA_HOME", str(_jvm(tmp_path, "mine")))
    assert find_java(roots) == tmp_path / "mine"  # JAVA_HOME, when it holds bin/java, wins


def test_local_session_without_java_or_python_on_path(tmp_path: Path) -> None:
    """A shell whose PATH has neither java nor any python, no JAVA_HOME: the session starts
    (the JVM found under /usr/lib/jvm) and its workers import modelport (this interpreter)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for t in TOOLS:
        found = shutil.which(t)
        if found:
            (bin_dir / t).symlink_to(found)
    assert not any((bin_dir / x).exists() for x in ("java", "python3", "python"))
    job = ("import modelport.spark as ms\n"
           "s = ms.local_session(1)\n"
           "print(s.sparkContext.parallelize([0]).map(\n"
           "    lambda _: __import__('modelport').__version__).collect())\n"
           "s.stop()\n")
    env = {"HOME": os.environ.get("HOME", str(tmp_path)), "PATH": str(bin_dir)}
    r = subprocess.run([sys.executable, "-c", job], env=env, capture_output=True, text=True,
                       timeout=300)
    import modelport

    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == repr([modelport.__version__])
